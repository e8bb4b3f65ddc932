"""Every node's ROS 2 parameters are declared from its config dataclasses (issue #21): each
parameter carries its field's description, its range (an IntegerRange / FloatingPointRange that
rclpy enforces, and the words in additional_constraints) and its read-only flag, read back over
the real /describe_parameters and /list_parameters services of running nodes; and a node
started with a value out of range, or of the wrong type, stops with one line naming it."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest

os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("MUJOCO_GL", "egl")

from rclpy.node import Node  # noqa: E402
from rclpy.parameter_client import AsyncParameterClient  # noqa: E402

from robot_rl.controllers.impedance import UPPER_BOUNDS, ImpedanceConfig  # noqa: E402
from robot_rl.controllers.limits import SafetyBox  # noqa: E402
from robot_rl.controllers.node import ControllerNode, ControllerNodeConfig, LooseningSwitch, ResetEnvelope  # noqa: E402
from robot_rl.drivers.franka_node import FrankaHandConfig, FrankaLoopConfig, FrankaNodeConfig  # noqa: E402
from robot_rl.drivers.ft_node import FtSensorNodeConfig  # noqa: E402
from robot_rl.drivers.keyboard_node import KeyboardNodeConfig  # noqa: E402
from robot_rl.drivers.realsense_node import CameraOutputConfig, ColorStreamConfig, RealSenseNodeConfig  # noqa: E402
from robot_rl.drivers.robotiq_node import RobotiqNodeConfig  # noqa: E402
from robot_rl.drivers.ros_common import declare_config  # noqa: E402
from robot_rl.drivers.spacemouse_node import SpaceMouseNodeConfig  # noqa: E402
from robot_rl.drivers.widowx_node import WidowXNodeConfig  # noqa: E402
from robot_rl.config import Range, help_of, rule_of  # noqa: E402
from robot_rl.sim.twin_node import TwinNode, TwinNodeConfig  # noqa: E402
from robot_rl.tasks.ros.actor_node import ActorNodeConfig  # noqa: E402
from robot_rl.tasks.ros.learner_node import LearnerNodeConfig  # noqa: E402
from robot_rl.tasks.ros.rl_graph import RunParams  # noqa: E402
from tests.conftest import wait_future  # noqa: E402
from tests.ros.conftest import Graph  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONTROLLER = (ControllerNodeConfig, SafetyBox, LooseningSwitch, ImpedanceConfig, ResetEnvelope)
TWIN = (TwinNodeConfig, ImpedanceConfig, ResetEnvelope, LooseningSwitch)
DRIVERS = (FrankaNodeConfig, FrankaLoopConfig, FrankaHandConfig, FtSensorNodeConfig, KeyboardNodeConfig,
           RealSenseNodeConfig, ColorStreamConfig, CameraOutputConfig, RobotiqNodeConfig, SpaceMouseNodeConfig,
           WidowXNodeConfig)
NODE_CONFIGS = {*CONTROLLER, *TWIN, RunParams, ActorNodeConfig, LearnerNodeConfig, *DRIVERS}


def _numeric(typ) -> bool:
    return typ in (int, float) or (typing.get_origin(typ) is tuple and float in typing.get_args(typ))


def _call(future, timeout: float = 10.0):
    return wait_future(future, timeout, "no answer from the parameter service")


@pytest.fixture(scope="module")
def graph():
    g = Graph(probe_name="declarations_probe")
    try:
        yield g
    finally:
        g.shutdown()


def _described(graph, node_name: str) -> dict:
    """name -> ParameterDescriptor of every parameter of a running node, over its services."""
    client = AsyncParameterClient(graph.probe, node_name)
    assert client.wait_for_services(timeout_sec=10.0), f"no parameter services on {node_name}"
    names = list(_call(client.list_parameters()).result.names)
    return {d.name: d for d in _call(client.describe_parameters(names)).descriptors}


def _expected(configs) -> dict:
    return {f.name: f for cls in configs for f in dataclasses.fields(cls)}


def test_every_node_setting_has_a_description_and_every_number_a_range():
    for cls in NODE_CONFIGS:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            assert help_of(f), f"{cls.__name__}.{f.name} has no description"
            if _numeric(hints[f.name]):
                assert isinstance(rule_of(f), Range), f"{cls.__name__}.{f.name} has no range"


# What rclpy declares on every node by itself.
RCLPY_OWN = {"use_sim_time", "start_type_description_service"}


@pytest.mark.parametrize("make, name, overrides, configs", [
    (ControllerNode, "/decl/controller", {}, CONTROLLER),
    (TwinNode, "/decl/twin", {"cameras": [""]}, TWIN),
], ids=["controller", "twin"])
def test_a_running_nodes_parameters_are_its_fields_with_description_range_and_read_only(
        graph, make, name, overrides, configs):
    graph.add(make(**graph.kwargs("/decl", **overrides)))
    described = _described(graph, name)
    expected = _expected(configs)
    # The node declares exactly its fields: no drift either way.
    assert set(described) - RCLPY_OWN == set(expected)
    for pname, f in expected.items():
        d, rule = described[pname], rule_of(f)
        assert d.description == help_of(f), pname
        assert d.read_only == f.metadata.get("read_only", False), pname
        if isinstance(rule, Range):
            assert rule.describe() in d.additional_constraints, pname
        ranges = list(d.floating_point_range) + list(d.integer_range)
        if isinstance(rule, Range) and not isinstance(f.default, tuple):   # ROS ranges are per scalar
            assert [(r.from_value, r.to_value) for r in ranges] == [(rule.low, rule.high)], pname
    stiffness = described["translational_stiffness"].floating_point_range[0]
    assert (stiffness.from_value, stiffness.to_value) == (0.0, UPPER_BOUNDS["translational_stiffness"])
    if "twin" in name:
        size = described["image_size"].integer_range[0]
        assert (size.from_value, size.to_value) == (1, 4096)
    else:
        assert described["base_frame"].read_only and described["allow_loosening"].read_only
        assert not described["box_high"].read_only             # tightened at run time
        assert described["box_high"].additional_constraints == "in [-2, 2]"


@pytest.mark.parametrize("config", [RunParams, ActorNodeConfig, LearnerNodeConfig, *DRIVERS],
                         ids=lambda c: c.__name__)
def test_each_nodes_settings_declare_with_description_and_range(graph, config):
    """The actor, learner and driver nodes declare these dataclasses as below (the drivers need
    their devices to start; their peers' tests run them); the actor's and learner's start-up
    refusals are checked on the real processes below."""
    node = graph.add(Node(f"decl_{config.__name__.lower()}", context=graph.context, namespace="/decl"))
    assert declare_config(node, config()) == config()
    for f in dataclasses.fields(config):
        d = node.describe_parameter(f.name)
        assert d.description == help_of(f)
        if isinstance(rule_of(f), Range) and not isinstance(getattr(config(), f.name), (tuple, list)):
            r = (list(d.floating_point_range) + list(d.integer_range))[0]
            assert (r.from_value, r.to_value) == (rule_of(f).low, rule_of(f).high), f.name


STARTS = [   # one process per entry point kind: the imports (torch, mujoco) dominate the time
    ("robot_rl.tasks.ros.actor_node", "pace_hz:=-1.0", "robot-rl-actor: cannot start: pace_hz must be in [0, 10000], got -1.0"),
    ("robot_rl.tasks.ros.learner_node", "heartbeat_every_s:=fast", "robot-rl-learner: cannot start: heartbeat_every_s: "
     "Trying to set parameter 'heartbeat_every_s' to 'fast' of type 'STRING', expecting type 'DOUBLE'"),
    ("robot_rl.controllers.node", "command_timeout:=100.0",
     "error: controller /controller: command_timeout must be in (0, 60] s, got 100.0"),
]


def test_a_bad_start_up_value_stops_each_node_process_with_one_line_naming_it():
    """The real entry points, started together."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [(subprocess.Popen([sys.executable, "-m", module, "--ros-args", "-p", param],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), line)
             for module, param, line in STARTS]
    try:
        for proc, line in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 2, err
            assert [x for x in err.strip().splitlines() if x.strip()] == [line], err
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize("config, override, message", [
    (ActorNodeConfig, ("spool_fsync", "always"), "spool_fsync must be one of ['never', 'episode', 'step'], got 'always'"),
    (ActorNodeConfig, ("max_unacked", 0), "max_unacked must be in [1, 2147483647], got 0"),
    (RunParams, ("seed", -7), "seed must be in [-1, 4294967295], got -7"),
    (RunParams, ("obs", "rgb"), "obs must be one of ['', 'state', 'pixels'], got 'rgb'"),
    (LearnerNodeConfig, ("weights_every_s", 1), "weights_every_s: Trying to set parameter 'weights_every_s' "
                                                "to '1' of type 'INTEGER', expecting type 'DOUBLE'"),
])
def test_a_bad_override_of_an_actor_or_learner_setting_is_one_line_naming_it(graph, config, override, message):
    node = graph.add(Node(f"bad_{override[0]}", context=graph.context, namespace="/bad",
                          parameter_overrides=graph.kwargs("/bad", **dict([override]))["parameter_overrides"]))
    with pytest.raises(ValueError) as err:
        declare_config(node, config())
    assert str(err.value) == message


def test_the_twin_refuses_a_bad_start_up_value_with_one_line(graph):
    with pytest.raises(ValueError) as err:
        TwinNode(**graph.kwargs("/bad", cameras=[""], image_size=0))
    assert str(err.value) == "twin /bad/twin: image_size must be in [1, 4096], got 0"
