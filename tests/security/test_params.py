"""Probe suite: hostile parameter changes against the safety limits (issue #19).

Every change travels over the REAL parameter services (rclpy AsyncParameterClient on a second
node, i.e. the set_parameters / set_parameters_atomically services) to a real controller node
started with the shipped launch/franka.yaml limits, and to a real twin node (which exposes
the same impedance parameters). Each loosening, non-finite, unordered, non-unit, out-of-bound,
wrongly typed or read-only change must be refused and leave the node's limits exactly as they
were; tightening must be accepted (and moving back up to the start-up values too). Start-up
validation: building a node with bad parameter overrides fails with one clear error line.

Cases: 49 hostile run-time changes on the controller (27 loosening, 7 non-finite, 3 unordered,
2 non-unit, 10 malformed, read-only or wrongly typed), 6 on the twin, 13 bad start-ups, plus
the tightening, allow_loosening, logging, twin start-up and command-line tests (74 in all).
Fixtures stay in this file (other helpers write other files in tests/security/).
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

# A domain of our own so parallel runs on one machine don't cross-talk (as tests/ros does).
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("MUJOCO_GL", "egl")

from rclpy.parameter import Parameter  # noqa: E402
from rclpy.parameter_client import AsyncParameterClient  # noqa: E402

from robot_rl.controllers.impedance import ImpedanceConfig  # noqa: E402
from robot_rl.controllers.node import ControllerNode  # noqa: E402
from robot_rl.tasks.ros.rig import load_rig  # noqa: E402
from tests.conftest import wait_future  # noqa: E402
from tests.ros.conftest import Graph as RosGraph  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# The shipped limits of the real Franka graph, without the driver (none here).
LAUNCH = next(n.parameters for n in load_rig(ROOT / "launch/franka.yaml").nodes if n.fqn == "/franka/controller")
# The strict controller: the launch values without their reset profile (its envelope is tested
# on its own below), so every loosening past the start-up values must be refused.
START = {k: v for k, v in LAUNCH.items() if k not in ("driver_node", "reset_profile")}
LIMIT_NAMES = ("box_low", "box_high", "rpy_low", "rpy_high", "nominal_quat", "command_timeout",
               *asdict(ImpedanceConfig()).keys(), "allow_loosening", "base_frame", "driver_node")
NAN, INF = math.nan, math.inf


class Graph(RosGraph):
    """tests/ros's graph with the probe as the 'attacker' and a parameter client for it."""

    def __init__(self):
        super().__init__(probe_name="security_probe")

    def client(self, node_name: str) -> AsyncParameterClient:
        client = AsyncParameterClient(self.probe, node_name)
        assert client.wait_for_services(timeout_sec=10.0), f"no parameter services on {node_name}"
        return client


def _call(future, timeout: float = 10.0):
    return wait_future(future, timeout, "no answer from the parameter service")


def set_params(client, params, atomically: bool = False) -> list:
    """Results of one set_parameters (or set_parameters_atomically) request."""
    if atomically:
        return [_call(client.set_parameters_atomically(params)).result]
    return list(_call(client.set_parameters(params)).results)


def snapshot(node) -> dict:
    """Everything that limits the robot: the parameters and what the node enforces."""
    params = {}
    for name in LIMIT_NAMES:
        if node.has_parameter(name):
            value = node.get_parameter(name).value
            params[name] = list(value) if hasattr(value, "tolist") else value
    enforced = {"impedance": asdict(node.impedance)}
    if hasattr(node, "limits"):
        enforced["limits"] = asdict(node.limits)
        enforced["arrays"] = [node.box_low.tolist(), node.box_high.tolist(), node.rpy_low.tolist(),
                              node.rpy_high.tolist(), node.nominal_quat.tolist(), node.command_timeout]
    return {"params": params, **enforced}


@pytest.fixture(scope="module")
def graph():
    with Graph() as g:
        yield g


@pytest.fixture(scope="module")
def controller(graph):
    """A controller node with the shipped limits (allow_loosening false), and a client on the
    probe. Shared by the module: each hostile test asserts the node unchanged afterwards."""
    node = graph.add(ControllerNode(**graph.kwargs("/franka", **START)))
    return node, graph.client("/franka/controller")


@pytest.fixture(scope="module")
def twin(graph):
    from robot_rl.sim.twin_node import TwinNode

    node = graph.add(TwinNode(**graph.kwargs("/franka", cameras=[""])))
    return node, graph.client("/franka/twin")


# Start-up values (launch/franka.yaml): box [0.35, -0.2, 0.015]..[0.65, 0.2, 0.35],
# rpy -/+[0.3, 0.3, 1.0], nominal [1, 0, 0, 0], timeout 0.5, SERL's compliant gains.
# (parameter, hostile value, what the refusal's reason says)
LOOSER, FIXED = "looser than the start-up", "fixed at run time"
# A number outside a parameter's declared range (its descriptor's FloatingPointRange) is
# refused by rclpy itself, before the node's callback, with rclpy's reason.
RANGE = "out of range Min: "
LOOSENING = [
    ("box_high", [100.0, 100.0, 100.0], "within [-2, 2]"),    # issue #19's example
    ("box_high", [0.66, 0.2, 0.35], LOOSER),                  # 1 cm further out in x
    ("box_low", [0.35, -0.2, 0.0], LOOSER),                   # 1.5 cm lower: into the table
    ("box_low", [0.35, -0.21, 0.015], LOOSER),
    ("rpy_high", [0.3, 0.3, 1.5], LOOSER),
    ("rpy_low", [-0.5, -0.3, -1.0], LOOSER),
    ("nominal_quat", [0.0, 1.0, 0.0, 0.0], FIXED),            # unit, but turns the rpy window
    ("nominal_quat", [0.0, 0.0, 0.0, 1.0], FIXED),            # TCP up instead of down
    ("command_timeout", 2.0, LOOSER),                         # the watchdog waits longer
    ("translational_clip_pos", [10.0, 10.0, 10.0], "must be <= 0.1"),   # issue #19's example
    ("translational_clip_pos", [0.02, 0.01, 0.01], LOOSER),
    ("translational_clip_neg", [0.01, 0.01, 0.05], LOOSER),
    ("rotational_clip_neg", [0.06, 0.05, 0.05], LOOSER),
    ("rotational_clip_pos", [0.05, 0.05, 1.0], LOOSER),
    ("torque_rate_limit", 1e6, RANGE),            # issue #19's example
    ("torque_rate_limit", 2.0, LOOSER),
    ("translational_stiffness", 3000.0, LOOSER),
    ("rotational_stiffness", 1e12, RANGE),
    ("translational_damping", 100.0, LOOSER),
    ("rotational_damping", 10.0, LOOSER),
    ("translational_ki", 10.0, LOOSER),
    ("rotational_ki", 1.0, LOOSER),
    ("integral_limit", 20.0, LOOSER),
    ("nullspace_stiffness", 1.0, LOOSER),
    ("nullspace_pinv_damping", 0.1, LOOSER),                  # less damping of the pseudo-inverse
    ("filter_factor", 0.1, LOOSER),                           # targets jump 20x faster
    ("dt", 0.002, FIXED),                                     # the loop's own
]
NON_FINITE = [
    ("box_high", [NAN, 0.2, 0.35], "not finite"),
    ("box_low", [0.35, -INF, 0.015], "not finite"),
    ("rpy_high", [0.3, INF, 1.0], "not finite"),
    ("nominal_quat", [NAN, 0.0, 0.0, 1.0], "not finite"),
    ("command_timeout", NAN, RANGE),
    ("translational_stiffness", NAN, RANGE),
    ("torque_rate_limit", INF, RANGE),
]
UNORDERED = [
    ("box_low", [0.7, -0.2, 0.015], "box_low must be < box_high"),   # x tightens past box_high
    ("box_high", [0.65, 0.2, 0.01], "box_low must be < box_high"),   # z below box_low
    ("rpy_low", [0.4, -0.3, -1.0], "rpy_low must be <= rpy_high"),
]
NON_UNIT = [
    ("nominal_quat", [0.0, 0.0, 0.0, 0.0], "unit quaternion"),       # issue #19's example
    ("nominal_quat", [1.0, 1.0, 0.0, 0.0], "unit quaternion"),
]
MALFORMED = [
    ("translational_stiffness", -1.0, RANGE),
    ("command_timeout", 0.0, "must be in (0, 60]"),
    ("filter_factor", 0.0, "must be in (0, 1]"),
    ("translational_clip_pos", [0.01, 0.01], "needs 3 values"),
    ("box_high", [0.6, 0.1], "must be 3 numbers"),
    ("box_high", "far away", "Wrong parameter type"),         # rclpy's descriptor check
    ("allow_loosening", True, "read-only"),                   # start-up only
    ("base_frame", "world", "read-only"),                     # poses would be re-interpreted
    ("driver_node", "/evil/driver", "read-only"),             # gains would go elsewhere
    ("box_high", None, "cannot be undeclared"),               # NOT_SET would undeclare it
]
HOSTILE = LOOSENING + NON_FINITE + UNORDERED + NON_UNIT + MALFORMED


@pytest.mark.parametrize("name, value, reason", HOSTILE, ids=[f"{n}={v}" for n, v, _ in HOSTILE])
def test_hostile_change_is_refused_and_changes_nothing(controller, name, value, reason):
    node, client = controller
    before = snapshot(node)
    param = Parameter(name) if value is None else Parameter(name, value=value)
    (result,) = set_params(client, [param])
    assert not result.successful, f"{name}={value} was accepted"
    assert reason in result.reason
    assert snapshot(node) == before


def test_a_tightening_and_a_loosening_together_are_refused_together(controller):
    node, client = controller
    before = snapshot(node)
    (result,) = set_params(client, [Parameter("box_high", value=[0.6, 0.15, 0.3]),
                                    Parameter("translational_clip_pos", value=[0.02, 0.02, 0.02])],
                           atomically=True)
    assert not result.successful and "translational_clip_pos[0] 0.02 is looser" in result.reason
    assert snapshot(node) == before


def test_tightening_is_accepted_and_enforced_then_back_to_the_start_up_values(controller):
    node, client = controller
    before = snapshot(node)
    tighter = {"box_low": [0.4, -0.1, 0.05], "box_high": [0.6, 0.15, 0.3], "rpy_low": [-0.2, -0.3, -0.5],
               "rpy_high": [0.1, 0.3, 1.0], "nominal_quat": [-1.0, 0.0, 0.0, 0.0],  # -q: same rotation
               "command_timeout": 0.3, "translational_stiffness": 1000.0, "translational_clip_pos": [0.005] * 3,
               "rotational_clip_neg": [0.02, 0.05, 0.05], "torque_rate_limit": 0.5, "filter_factor": 0.001,
               "nullspace_pinv_damping": 0.3}
    results = set_params(client, [Parameter(k, value=v) for k, v in tighter.items()])
    assert all(r.successful for r in results), [r.reason for r in results]
    assert node.box_high.tolist() == [0.6, 0.15, 0.3] and node.box_low.tolist() == [0.4, -0.1, 0.05]
    assert node.command_timeout == 0.3 and node.impedance.torque_rate_limit == 0.5
    assert node.impedance.translational_clip_pos == (0.005, 0.005, 0.005)
    # Back up to (not past) the launch file's values: within the start-up envelope, accepted.
    results = set_params(client, [Parameter(k, value=before["params"][k]) for k in tighter])
    assert all(r.successful for r in results), [r.reason for r in results]
    after = snapshot(node)
    after["params"]["nominal_quat"] = before["params"]["nominal_quat"]  # the same rotation, typed back
    assert after == before


def test_refusals_are_logged_with_the_nodes_that_could_have_asked(controller, capfd):
    node, client = controller
    (result,) = set_params(client, [Parameter("box_high", value=[100.0, 100.0, 100.0])])
    (read_only,) = set_params(client, [Parameter("allow_loosening", value=True)])
    assert not result.successful and not read_only.successful
    err = capfd.readouterr().err
    refused = [line for line in err.splitlines() if "parameter change refused" in line]
    assert any("box_high=[100.0, 100.0, 100.0]" in line and "/security_probe" in line for line in refused), err
    assert any("allow_loosening=True" in line and "read-only" in line for line in refused), err


def test_allow_loosening_at_start_up_permits_loosening_within_the_bounds(graph):
    node = graph.add(ControllerNode(**graph.kwargs("/lab", **{**START, "allow_loosening": True})))
    client = graph.client("/lab/controller")
    results = set_params(client, [Parameter("box_high", value=[0.7, 0.3, 0.5]),
                                  Parameter("translational_clip_pos", value=[0.02, 0.02, 0.02])])
    assert all(r.successful for r in results), [r.reason for r in results]
    assert node.box_high.tolist() == [0.7, 0.3, 0.5]
    # Validity still holds: out of bounds, non-finite and non-unit are refused.
    for name, value in [("box_high", [100.0, 100.0, 100.0]), ("torque_rate_limit", 1e6),
                        ("nominal_quat", [0.0, 0.0, 0.0, 0.0]), ("box_low", [NAN, 0.0, 0.0])]:
        (result,) = set_params(client, [Parameter(name, value=value)])
        assert not result.successful, f"{name}={value} was accepted"
    # And the switch itself stays as launched.
    (result,) = set_params(client, [Parameter("allow_loosening", value=False)])
    assert not result.successful and node.allow_loosening


def test_a_reset_profile_widens_the_envelope_to_the_precision_gains_and_no_further(graph):
    """reset_profile: precision (as the shipped rigs declare it) lets a Cartesian reset switch to
    ImpedanceConfig.precision() with an integral term and back; anything past it is refused."""
    assert LAUNCH["reset_profile"] == "precision"
    node = graph.add(ControllerNode(**graph.kwargs("/reset", **{**START, "reset_profile": "precision"})))
    client = graph.client("/reset/controller")
    precise = ImpedanceConfig.precision().replace(translational_ki=1000.0)
    names = ("rotational_stiffness", "rotational_damping", "translational_clip_pos", "translational_clip_neg",
             "rotational_clip_pos", "rotational_clip_neg", "translational_ki")
    to_param = lambda n, v: Parameter(n, value=list(v) if isinstance(v, tuple) else float(v))  # noqa: E731
    results = set_params(client, [to_param(n, getattr(precise, n)) for n in names])
    assert all(r.successful for r in results), [r.reason for r in results]
    assert node.impedance.rotational_stiffness == 250.0 and node.impedance.translational_ki == 1000.0
    for name, value in [("rotational_clip_pos", [0.6, 0.5, 0.5]), ("rotational_stiffness", 300.0),
                        ("translational_ki", 2000.0), ("translational_stiffness", 3000.0)]:
        (result,) = set_params(client, [Parameter(name, value=value)])
        assert not result.successful and "looser than the start-up" in result.reason, (name, result.reason)
    back = ImpedanceConfig()      # and back to the training gains
    results = set_params(client, [to_param(n, getattr(back, n)) for n in names])
    assert all(r.successful for r in results), [r.reason for r in results]
    (result,) = set_params(client, [Parameter("reset_profile", value="")])
    assert not result.successful                      # start-up only
    with pytest.raises(ValueError, match="reset_profile must be one of"):
        ControllerNode(**graph.kwargs("/bad", **{**START, "reset_profile": "yolo"}))


TWIN_HOSTILE = [("translational_stiffness", 3000.0), ("translational_clip_pos", [10.0, 10.0, 10.0]),
                ("torque_rate_limit", 1e6), ("rotational_damping", NAN), ("allow_loosening", True),
                ("filter_factor", 1.0)]


@pytest.mark.parametrize("name, value", TWIN_HOSTILE, ids=[f"{n}={v}" for n, v in TWIN_HOSTILE])
def test_twin_refuses_the_same_hostile_changes(twin, name, value):
    node, client = twin
    before, law = snapshot(node), asdict(node.twin.controller.cfg)
    (result,) = set_params(client, [Parameter(name, value=value)])
    assert not result.successful, f"{name}={value} was accepted"
    assert snapshot(node) == before and asdict(node.twin.controller.cfg) == law


BAD_START = [
    ({"box_high": [INF, 0.3, 0.5]}, "box_high is not finite"),
    ({"box_low": [0.3, NAN, 0.0]}, "box_low is not finite"),
    ({"box_low": [0.8, -0.3, 0.0]}, "box_low must be < box_high"),
    ({"rpy_low": [0.6, -0.5, -3.2]}, "rpy_low must be <= rpy_high"),
    ({"box_high": [100.0, 0.3, 0.5]}, "box_high must be within [-2, 2]"),
    ({"nominal_quat": [0.0, 0.0, 0.0, 0.0]}, "nominal_quat must be a unit quaternion"),
    ({"nominal_quat": [1.0, 1.0, 0.0, 0.0]}, "nominal_quat must be a unit quaternion"),
    ({"command_timeout": -1.0}, "command_timeout must be in (0, 60]"),
    ({"translational_stiffness": 1e12}, "translational_stiffness must be <= 5000"),
    ({"torque_rate_limit": 1e9}, "torque_rate_limit must be <= 1000"),
    ({"translational_clip_pos": [10.0, 10.0, 10.0]}, "translational_clip_pos must be <= 0.1"),
    ({"rotational_damping": INF}, "rotational_damping is not finite"),
    ({"box_high": [1, 1, 1]}, "box_high"),       # integers for a double array: rclpy's type check
]


@pytest.mark.parametrize("overrides, message", BAD_START, ids=[str(o) for o, _ in BAD_START])
def test_bad_start_up_parameters_fail_with_one_clear_line(graph, overrides, message):
    with pytest.raises(ValueError) as err:
        ControllerNode(**graph.kwargs("/bad", **overrides))
    text = str(err.value)
    assert "\n" not in text and text.startswith("controller /bad/controller: ") and message in text, text


def test_the_twin_refuses_bad_start_up_gains_with_one_line(graph):
    from robot_rl.sim.twin_node import TwinNode

    with pytest.raises(ValueError) as err:
        TwinNode(**graph.kwargs("/bad", cameras=[""], torque_rate_limit=1e9))
    assert str(err.value) == "twin /bad/twin: ImpedanceConfig.torque_rate_limit must be <= 1000, got 1000000000.0"


def test_the_controller_command_refuses_bad_limits_with_one_line_and_status_2():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "robot_rl.controllers.node", "--ros-args", "-r", "__ns:=/cli",
                           "-p", "nominal_quat:=[0.0, 0.0, 0.0, 0.0]"],
                          capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: controller /cli/controller: nominal_quat must be a unit quaternion (x, y, z, w; "
        "|norm - 1| <= 0.001), got [0.0, 0.0, 0.0, 0.0] (norm 0)"]
