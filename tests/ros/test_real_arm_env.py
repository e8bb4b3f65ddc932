"""The actor's env as it runs on a real arm, against the twin node standing in for the robot:
no ground-truth topic (task/state) and a Cartesian reset through the impedance controller."""
from __future__ import annotations

import numpy as np
import pytest

from robot_rl.controllers.rotations import quat_to_matrix as quat_to_rot
from robot_rl.tasks.ros.backend import _log_so3, make_ros_env


def test_env_without_task_state_resets_and_steps(twin_graph):
    # What hardware has: proprio, wrench, gripper, cameras - nobody reads task/state.
    env = make_ros_env("pick_cube", obs="pixels", seed=0, task_state=False)
    try:
        assert "task/state" not in env.robot._history
        obs, info = env.reset()
        assert set(obs) == {"state", "wrist", "front"} and obs["wrist"].shape == (128, 128, 3)
        obs, reward, terminated, truncated, info = env.step(np.zeros(7, np.float32))
        # No ground truth: no reward and no success from the env (the classifier or the operator give them).
        assert reward == 0.0 and not terminated and info["ground_truth"] is False
        assert env.robot.task_state() == {}
    finally:
        env.close()


def test_cartesian_reset_lands_on_the_task_reset_pose(twin_graph):
    twin = twin_graph.twin
    env = make_ros_env("pick_cube", obs="state", seed=3, task_state=True,
                       robot_options={"reset_mode": "cartesian", "gains_node": "/franka/twin",
                                      "reset_tolerance_pos": 0.003},
                       tcp_start_xy_range=0.03, tcp_start_yaw_range=0.3)
    try:
        before = float(twin.get_parameter("translational_clip_pos").value[0])
        for _ in range(2):
            wanted = env.task.sample_reset(np.random.default_rng(7))
            env.reset(options=wanted)
            state = env.last_state
            # Within the tolerance when it arrived, +1 mm of settling in the observation after.
            assert np.linalg.norm(state.tcp_pos - wanted["tcp_pos"]) <= 0.004
            angle = np.linalg.norm(_log_so3(quat_to_rot(state.tcp_quat).T @ quat_to_rot(wanted["tcp_quat"])))
            assert angle <= 0.05
            # Move away, so the next reset is a real move.
            for _ in range(5):
                env.step(np.array([1.0, -1.0, 1.0, 0, 0, 0.5, 0], np.float32))
        # The precision gains were set back after the move.
        assert float(twin.get_parameter("translational_clip_pos").value[0]) == pytest.approx(before)
        assert float(twin.get_parameter("translational_ki").value) == 0.0
    finally:
        env.close()


def test_bad_reset_settings_are_refused(twin_graph):
    with pytest.raises(ValueError, match="reset_mode must be"):
        make_ros_env("pick_cube", robot_options={"reset_mode": "teleport"})


def test_a_task_observes_the_external_f_t_sensor_when_it_says_so(twin_graph):
    """wrench_topic: ft/wrench reads the rig's F/T sensor node (/franka/ft/wrench) instead of the
    arm's estimate (/franka/wrench), which the twin publishes as ~0 in free space."""
    import threading
    import time

    from geometry_msgs.msg import WrenchStamped

    pub = twin_graph.probe.create_publisher(WrenchStamped, "/franka/ft/wrench", 10)
    stop = threading.Event()

    def stream():          # a 100 Hz sensor pressing 5 N, stamped now like a driver
        while not stop.is_set():
            msg = WrenchStamped()
            msg.header.stamp = twin_graph.probe.get_clock().now().to_msg()
            msg.header.frame_id = "fr3_link0"
            msg.wrench.force.z = 5.0
            pub.publish(msg)
            time.sleep(0.01)

    thread = threading.Thread(target=stream, daemon=True)
    thread.start()
    try:
        for topic, expect in (("ft/wrench", 5.0), ("wrench", 0.0)):
            env = make_ros_env("pick_cube", obs="pixels", seed=0, task_state=False, wrench_topic=topic)
            try:
                obs, _ = env.reset()
                assert env.robot.config.wrench_topic == topic
                force = obs["state"][13:16]             # tcp_force, reset frame (norm is frame-free)
                assert abs(np.linalg.norm(force) - expect) < 1.0, (topic, force)
            finally:
                env.close()
    finally:
        stop.set()
        thread.join(timeout=2.0)
        twin_graph.probe.destroy_publisher(pub)
    with pytest.raises(ValueError, match="wrench_topic must be"):
        make_ros_env("pick_cube", obs="pixels", task_state=False, wrench_topic="/elsewhere")
