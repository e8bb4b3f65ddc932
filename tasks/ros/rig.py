"""Rig files: the nodes a lab runs, each with its parameters, as one YAML file.

    nodes:
      - kind: franka                 # a node kind (NODE_KINDS below; `robot-rl up --kinds`)
        namespace: /franka           # default: the kind's
        remap: {equilibrium_pose: controller/equilibrium_pose}
        parameters: {robot_ip: 172.16.0.2, ...}
      - kind: realsense
        name: wrist_camera           # default: the kind's node name; two of a kind need names
        parameters: {serial_no: "123456789012", camera_name: wrist, outputs: [wrist]}
      - kind: spacemouse
        optional: true               # no device attached: skipped, the rest runs

`robot-rl up RIG` (tasks/ros/bringup.py) and the launch files (launch/rig_launch.py) read the same
file; the shipped profiles (launch/twin.yaml, franka.yaml, widowx.yaml, widowx_twin.yaml) are
rig files. Each node gets its parameters as a standard ROS 2 params file keyed by its fully
qualified name (`to_params_file`), so types follow YAML exactly as with `--params-file`.
A rig is validated on load: every error names the file, the node and the field.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class NodeKind:
    executable: str       # console entry point (setup.py)
    module: str           # module with main() and the node class
    node_class: str
    name: str             # the node's default name (its class's)
    namespace: str
    what: str


NODE_KINDS: dict[str, NodeKind] = {
    "twin": NodeKind("robot-rl-twin", "robot_rl.sim.twin_node", "TwinNode", "twin", "/franka",
                     "MuJoCo twin: the arm driver's and the cameras' topics"),
    "franka": NodeKind("robot-rl-franka", "robot_rl.drivers.franka_node", "FrankaNode", "franka", "/franka",
                       "Franka driver: 1 kHz impedance law over pylibfranka, the hand"),
    "widowx": NodeKind("robot-rl-widowx", "robot_rl.drivers.widowx_node", "WidowXNode", "widowx", "/widowx",
                       "WidowX driver over dynamixel-sdk"),
    "controller": NodeKind("robot-rl-controller", "robot_rl.controllers.node", "ControllerNode", "controller",
                           "/franka", "safety box, watchdog, live gains for the driver"),
    "realsense": NodeKind("robot-rl-realsense", "robot_rl.drivers.realsense_node", "RealSenseNode",
                          "realsense_camera", "/", "RealSense camera: /cameras/<name>/..."),
    "robotiq": NodeKind("robot-rl-robotiq", "robot_rl.drivers.robotiq_node", "RobotiqNode", "robotiq_gripper",
                        "/franka", "Robotiq 2F-85 over Modbus RTU/TCP: gripper/command, gripper/state"),
    # An external F/T sensor publishes in its own namespace (/franka/ft/wrench), beside the
    # arm's own estimate (/franka/wrench); the task file says which one it observes.
    "ft": NodeKind("robot-rl-ft", "robot_rl.drivers.ft_node", "FtSensorNode", "ft_sensor", "/franka/ft",
                   "F/T sensor (Robotiq FT-300, ATI Net F/T): <namespace>/wrench"),
    "spacemouse": NodeKind("robot-rl-spacemouse", "robot_rl.drivers.spacemouse_node", "SpaceMouseNode",
                           "spacemouse", "/", "SpaceMouse teleop: /spacemouse/twist, /spacemouse/joy"),
    "keyboard": NodeKind("robot-rl-keyboard", "robot_rl.drivers.keyboard_node", "KeyboardNode", "keyboard_teleop",
                         "/", "keyboard teleop: /spacemouse/twist, /spacemouse/joy"),
}
_NODE_KEYS = {"kind", "name", "namespace", "optional", "remap", "parameters", "what"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAMESPACE = re.compile(r"^/([A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*)?$")


class RigError(ValueError):
    """A rig file that cannot start a graph; the message names the file, node and field."""


@dataclass(frozen=True)
class NodeSpec:
    executable: str
    module: str
    node_class: str
    name: str
    namespace: str
    optional: bool = False  # a missing device (exit status 2 / DeviceNotFoundError) is skipped
    what: str = ""
    remappings: tuple[tuple[str, str], ...] = ()   # (from, to) topic names, as in the launch file
    parameters: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def fqn(self) -> str:
        return f"{self.namespace.rstrip('/')}/{self.name}"

    def ros_args(self) -> list[str]:
        """Node-specific remappings in ROS 2 command-line form."""
        return [a for src, dst in self.remappings for a in ("-r", f"{src}:={dst}")]


@dataclass(frozen=True)
class Rig:
    path: Path
    nodes: tuple[NodeSpec, ...]

    def params(self) -> dict[str, Any]:
        """The rig as a ROS 2 params-file document: fully qualified name -> ros__parameters."""
        return {n.fqn: {"ros__parameters": dict(n.parameters)} for n in self.nodes if n.parameters}

    def to_params_file(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(yaml.safe_dump(self.params(), sort_keys=False))
        return path


def _node(raw: Any, where: str) -> NodeSpec:
    if not isinstance(raw, dict):
        raise RigError(f"{where}: a node is a mapping with at least 'kind', got {raw!r}")
    unknown = set(raw) - _NODE_KEYS
    if unknown:
        raise RigError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(_NODE_KEYS)}")
    kind = raw.get("kind")
    if kind not in NODE_KINDS:
        raise RigError(f"{where}.kind: {kind!r} is not a node kind; kinds: {sorted(NODE_KINDS)}")
    k = NODE_KINDS[kind]
    name, namespace = raw.get("name", k.name), raw.get("namespace", k.namespace)
    if not isinstance(name, str) or not _NAME.match(name):
        raise RigError(f"{where}.name: {name!r} is not a ROS node name (letters, digits, _)")
    if not isinstance(namespace, str) or not _NAMESPACE.match(namespace.rstrip("/") or "/"):
        raise RigError(f"{where}.namespace: {namespace!r} is not an absolute ROS namespace like /franka")
    optional = raw.get("optional", False)
    if not isinstance(optional, bool):
        raise RigError(f"{where}.optional: must be true or false, got {optional!r}")
    remap = raw.get("remap") or {}
    if not isinstance(remap, dict) or not all(isinstance(a, str) and isinstance(b, str) and a and b
                                              for a, b in remap.items()):
        raise RigError(f"{where}.remap: must map topic names to topic names, got {remap!r}")
    params = raw.get("parameters") or {}
    if not isinstance(params, dict) or not all(isinstance(p, str) for p in params):
        raise RigError(f"{where}.parameters: must map parameter names to values, got {params!r}")
    for p, value in params.items():
        if isinstance(value, dict) or value is None:
            raise RigError(f"{where}.parameters.{p}: {value!r} is not a ROS parameter value "
                           "(a number, string, bool or a list of one type)")
    return NodeSpec(k.executable, k.module, k.node_class, name, namespace, optional,
                    str(raw.get("what", k.what)), tuple(remap.items()), dict(params))


def parse_rig(data: Any, path: str | Path = "<rig>") -> Rig:
    path = Path(path)
    if not isinstance(data, dict) or set(data) != {"nodes"} or not isinstance(data["nodes"], list):
        raise RigError(f"{path}: a rig file holds one key, 'nodes', a list of nodes "
                       f"(got {sorted(data) if isinstance(data, dict) else type(data).__name__})")
    if not data["nodes"]:
        raise RigError(f"{path}: 'nodes' is empty: a rig starts at least one node")
    nodes = tuple(_node(raw, f"{path}: nodes[{i}]") for i, raw in enumerate(data["nodes"]))
    seen: dict[str, int] = {}
    for i, n in enumerate(nodes):
        if n.fqn in seen:
            raise RigError(f"{path}: nodes[{i}] and nodes[{seen[n.fqn]}] are both {n.fqn}: "
                           "give one of them another 'name' or 'namespace'")
        seen[n.fqn] = i
    return Rig(path, nodes)


def load_rig(path: str | Path) -> Rig:
    from robot_rl.tasks.yaml_file import read_yaml
    return parse_rig(read_yaml(path, RigError, "rig file"), path)
