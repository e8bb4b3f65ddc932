"""The controller node in front of a driver - here the twin node standing in for the Franka
driver, as it would in the hardware graph (env -> controller -> driver): targets validated and
clipped to the safety box, the watchdog holds, and gains set on the controller reach the driver."""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from std_msgs.msg import String

from robot_rl.controllers.rotations import quat_multiply
from robot_rl.controllers.node import COMMAND_QOS, LATCHED_QOS, ControllerNode, clip_to_box, pose_from_msg, pose_msg

BOX = dict(box_low=[0.4, -0.1, 0.05], box_high=[0.6, 0.1, 0.3], rpy_low=[-0.2, -0.2, -0.5],
           rpy_high=[0.2, 0.2, 0.5])


def _wait(predicate, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _driver_graph(graph, command_timeout: float):
    from robot_rl.sim.twin_node import TwinNode

    graph.twin = graph.add(TwinNode(**graph.kwargs(equilibrium_topic="controller/equilibrium_pose",
                                                   cameras=[""])))
    graph.controller = graph.add(ControllerNode(**graph.kwargs(
        driver_node="/franka/twin", command_timeout=command_timeout, **BOX)))
    return graph


@pytest.fixture
def driver_graph(graph):
    """A short watchdog, for the test of the watchdog itself."""
    return _driver_graph(graph, command_timeout=0.3)


@pytest.fixture
def patient_driver_graph(graph):
    """A watchdog that stays out of the way, so that a slow machine cannot fire it between the
    steps of a test about something else."""
    return _driver_graph(graph, command_timeout=60.0)


def test_targets_are_validated_and_clipped_to_the_safety_box(patient_driver_graph):
    g = patient_driver_graph
    out = g.inbox(PoseStamped, "/franka/controller/equilibrium_pose")
    pub = g.probe.create_publisher(PoseStamped, "/franka/equilibrium_pose", COMMAND_QOS)
    g.wait_matched(pub)
    quat = np.array([1.0, 0.0, 0.0, 0.0])                          # nominal: TCP pointing down
    tilt = np.array([math.sin(0.3), 0.0, 0.0, math.cos(0.3)])      # roll 0.6 rad: beyond 0.2
    q = quat_multiply(quat, tilt)
    pub.publish(pose_msg([0.9, 0.0, 0.2], q, "fr3_link0", g.probe.get_clock().now().to_msg()))
    out.wait_count(1)
    pos, sent_q = pose_from_msg(out.msgs[-1])
    np.testing.assert_allclose(pos, [0.6, 0.0, 0.2])
    exp_pos, exp_q = clip_to_box([0.9, 0.0, 0.2], q, BOX["box_low"], BOX["box_high"], BOX["rpy_low"],
                                 BOX["rpy_high"], [1.0, 0.0, 0.0, 0.0])
    assert min(np.linalg.norm(sent_q - exp_q), np.linalg.norm(sent_q + exp_q)) < 1e-9
    angle = 2 * math.acos(min(1.0, abs(float(np.dot(sent_q, quat)))))
    assert angle == pytest.approx(0.2, abs=1e-6)                    # roll clipped to its limit
    # The driver (the twin) got exactly the clipped target.
    _wait(lambda: np.allclose(g.twin.twin.controller.target[0], [0.6, 0.0, 0.2]), what="driver target")

    n, rejected = len(out), g.controller.rejected
    now = g.probe.get_clock().now().to_msg()
    pub.publish(pose_msg([math.inf, 0.0, 0.2], quat, "fr3_link0", now))
    pub.publish(pose_msg([0.5, 0.0, 0.2], [0.0, 0.0, 0.0, 0.0], "fr3_link0", now))
    pub.publish(pose_msg([0.5, 0.0, 0.2], quat, "camera", now))
    _wait(lambda: g.controller.rejected == rejected + 3, what="3 rejections")
    time.sleep(0.1)
    assert len(out) == n                                             # nothing went down
    np.testing.assert_allclose(g.twin.twin.controller.target[0], [0.6, 0.0, 0.2])

    # The box is a live parameter too; an inverted one is refused.
    client = AsyncParameterClient(g.probe, "/franka/controller")
    assert client.wait_for_services(timeout_sec=5.0)
    future = client.set_parameters([Parameter("box_high", value=[0.55, 0.1, 0.3])])
    _wait(future.done, what="set_parameters")
    assert future.result().results[0].successful
    future = client.set_parameters([Parameter("box_low", value=[0.7, -0.1, 0.05])])
    _wait(future.done, what="set_parameters")
    (refused,) = future.result().results
    assert not refused.successful and "box_low must be < box_high" in refused.reason
    pub.publish(pose_msg([0.9, 0.0, 0.2], quat, "fr3_link0", g.probe.get_clock().now().to_msg()))
    out.wait_count(n + 1)
    np.testing.assert_allclose(pose_from_msg(out.msgs[-1])[0], [0.55, 0.0, 0.2])
    g.probe.destroy_publisher(pub)


def test_watchdog_holds_the_measured_pose_when_commands_stop(driver_graph):
    g = driver_graph
    out = g.inbox(PoseStamped, "/franka/controller/equilibrium_pose")
    pub = g.probe.create_publisher(PoseStamped, "/franka/equilibrium_pose", COMMAND_QOS)
    g.wait_matched(pub)
    tcp = g.twin.twin.data.site_xpos[g.twin.twin._tcp].copy()
    far = tcp + np.array([0.08, 0.0, 0.0])                           # a long way for one command
    pub.publish(pose_msg(far, [1.0, 0.0, 0.0, 0.0], "fr3_link0", g.probe.get_clock().now().to_msg()))
    out.wait_count(1)
    t_cmd = time.monotonic()
    out.wait_count(2, timeout=3.0)                                   # the watchdog's hold
    assert 0.25 <= out.times[1] - t_cmd <= 1.0
    held, _ = pose_from_msg(out.msgs[1])
    assert np.linalg.norm(held - far) > 0.02                        # not the stale target...
    assert g.controller.holding
    time.sleep(0.5)
    assert len(out) == 2                                             # ...sent once, then quiet
    g.probe.destroy_publisher(pub)


def test_gains_set_on_the_controller_reach_the_driver(driver_graph):
    g = driver_graph
    config = g.inbox(String, "/franka/controller/impedance", LATCHED_QOS)
    config.wait_count(1)
    assert json.loads(config.msgs[-1].data)["translational_stiffness"] == 2000.0
    client = AsyncParameterClient(g.probe, "/franka/controller")
    assert client.wait_for_services(timeout_sec=5.0)
    future = client.set_parameters([Parameter("translational_stiffness", value=1200.0),
                                    Parameter("rotational_clip_pos", value=[0.04, 0.04, 0.04])])
    _wait(future.done, what="set_parameters")
    assert all(r.successful for r in future.result().results)
    _wait(lambda: (g.twin.twin.controller.cfg.translational_stiffness == 1200.0
                   and g.twin.twin.controller.cfg.rotational_clip_pos == (0.04, 0.04, 0.04)),
          5.0, "forwarded gains")
    assert g.twin.get_parameter("translational_stiffness").value == 1200.0
    _wait(lambda: json.loads(config.msgs[-1].data)["translational_stiffness"] == 1200.0, what="config topic")
    future = client.set_parameters([Parameter("translational_damping", value=math.nan)])
    _wait(future.done, what="set_parameters")
    (result,) = future.result().results
    # NaN is outside the parameter's declared range: rclpy refuses it before the node's callback.
    assert not result.successful and "translational_damping out of range" in result.reason
    assert g.controller.impedance.translational_damping == 89.0
