"""The Franka ROS 2 node against franky-sim: topics, rates, services, live parameters, hand.

A real rclpy graph (the `ros` fixture of tests/drivers/conftest.py: private context, own
domain) talks to the node; the node runs its real loop and hand processes against franky-sim
on a loopback address of its own.
"""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

pytest.importorskip("pylibfranka")
pytest.importorskip("franky_sim")

from builtin_interfaces.msg import Time  # noqa: E402
from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64, String  # noqa: E402

from robot_rl.controllers.node import pose_msg as controller_pose_msg  # noqa: E402
from robot_rl.drivers.franka_node import FrankaNode  # noqa: E402
from robot_rl.drivers.franka_sim import FrankySim  # noqa: E402
from tests.conftest import call_trigger  # noqa: E402


def pose_msg(pos, quat) -> PoseStamped:
    return controller_pose_msg(pos, quat, "fr3_link0", Time())


@pytest.mark.slow
def test_node_streams_state_follows_targets_and_serves_reset(ros):
    sim = FrankySim()
    try:
        node = ros.add(FrankaNode(**ros.kwargs(robot_ip=sim.hostname, realtime_config="ignore",
                                               translational_ki=2000.0, integral_limit=15.0)))
        joints = ros.inbox(JointState, "/franka/joint_states")
        poses = ros.inbox(PoseStamped, "/franka/ee_pose")
        ros.inbox(TwistStamped, "/franka/ee_twist").wait_for(timeout=10.0)
        wrench = ros.inbox(WrenchStamped, "/franka/wrench").wait_for(timeout=10.0)
        status = ros.inbox(String, "/franka/status")
        grip = ros.inbox(JointState, "/franka/gripper/state")

        # >= 100 Hz per the topic contract (the node aims at 200).
        poses.wait_for(timeout=10.0)
        n0, t0 = len(joints), time.monotonic()
        time.sleep(2.0)
        rate = (len(joints) - n0) / (time.monotonic() - t0)
        assert rate >= 100.0, f"joint_states at {rate:.0f} Hz"
        js = joints.msgs[-1]
        assert list(js.name) == [f"fr3_joint{i}" for i in range(1, 8)] and len(js.position) == 7
        assert wrench.header.frame_id == "fr3_link0"

        # equilibrium_pose drives the arm.
        start = poses.msgs[-1].pose
        p0 = np.array([start.position.x, start.position.y, start.position.z])
        q0 = np.array([start.orientation.x, start.orientation.y, start.orientation.z, start.orientation.w])
        pub = ros.probe.create_publisher(PoseStamped, "/franka/equilibrium_pose", 10)
        ros.wait_matched(pub)
        target = p0 + np.array([0.0, 0.03, -0.03])

        def position(m):
            return np.array([m.pose.position.x, m.pose.position.y, m.pose.position.z])

        deadline = time.monotonic() + 20.0
        while np.linalg.norm(position(poses.msgs[-1]) - target) > 0.005:
            assert time.monotonic() < deadline, f"ee_pose {position(poses.msgs[-1])} never reached {target}"
            pub.publish(pose_msg(target, q0))
            time.sleep(0.05)

        # A NaN target is rejected and reported; the arm holds.
        pub.publish(pose_msg([math.nan, 0.0, 0.3], q0))
        rej = status.wait_for(lambda m: json.loads(m.data)["event"] == "target_rejected", timeout=5.0)
        assert "not finite" in json.loads(rej.data)["reason"]
        assert np.linalg.norm(position(poses.msgs[-1]) - target) < 0.01

        # Live parameters: a valid gain is taken, a negative one refused.
        ok = node.set_parameters([Parameter("translational_stiffness", value=1500.0)])[0]
        assert ok.successful, ok.reason
        bad = node.set_parameters([Parameter("translational_stiffness", value=-1.0)])[0]
        # Outside the gain's declared range (ImpedanceConfig's [0, bound]): rclpy refuses it first.
        assert not bad.successful and "translational_stiffness out of range" in bad.reason
        bad = node.set_parameters([Parameter("safety_box_min", value=[0.9, 0.9, 0.9])])[0]
        assert not bad.successful
        # Safety limits only tighten at run time (allow_loosening is false): a wider box, a
        # stiffer spring than the start-up one, a wider clip, raised reflex thresholds: refused.
        start_box = list(node.get_parameter("safety_box_max").value)
        for name, value in (("safety_box_max", [v + 0.5 for v in start_box]),
                            ("translational_stiffness", 4000.0),
                            ("translational_clip_pos", [0.05, 0.05, 0.05]),
                            ("upper_force_thresholds", [100.0] * 6)):
            bad = node.set_parameters([Parameter(name, value=value)])[0]
            assert not bad.successful and "looser than the start-up" in bad.reason, (name, bad.reason)
        assert list(node.get_parameter("safety_box_max").value) == start_box

        # reset: joint-space move home, then impedance again.
        res = call_trigger(ros.probe, "/franka/reset", timeout=90.0)
        assert res.success, res.message
        home = np.array(node.get_parameter("home_joint_positions").value)
        # (the probe may still be delivering joint states from during the move)
        joints.wait_for(lambda m: np.max(np.abs(np.array(m.position) - home)) < 0.03, timeout=3.0,
                        start=len(joints))
        res = call_trigger(ros.probe, "/franka/recover", timeout=60.0)
        assert res.success, res.message  # nothing to recover: it just resumes impedance

        # The hand follows gripper/command (0 open .. 1 closed) and reports on gripper/state.
        gpub = ros.probe.create_publisher(Float64, "/franka/gripper/command", 10)
        ros.wait_matched(gpub)
        gpub.publish(Float64(data=1.0))
        closed = grip.wait_for(lambda m: m.position[0] > 0.9, timeout=15.0, start=len(grip))
        assert list(closed.name) == ["fr3_finger_joint1"]
        gpub.publish(Float64(data=0.0))
        grip.wait_for(lambda m: m.position[0] < 0.05, timeout=15.0, start=len(grip))
        events = [json.loads(m.data)["event"] for m in status.msgs]
        assert "fault" not in events and "gripper_fault" not in events
    finally:
        sim.stop()
