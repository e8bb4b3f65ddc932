"""The controller node: the reference-side half of impedance control for hardware drivers.

Split with a driver (e.g. the Franka driver, which runs the 1 kHz law of
controllers.impedance in its own real-time process):

    env --equilibrium_pose--> controller node --controller/equilibrium_pose--> driver (1 kHz law)
                                            \\-controller/impedance (JSON, latched)--> driver

* This node validates every equilibrium pose (frame, finite, unit quaternion), clips it to the
  safety box (position per axis in the base frame; roll-pitch-yaw relative to
  `nominal_quat`, as tasks.spec.TaskSpec) and only then forwards it. A rejected message is
  logged and dropped: the driver keeps the last good target, so the robot holds.
* Watchdog: when no command arrives for `command_timeout` s, it sends the measured pose
  (`ee_pose`, clipped) once as the target, so the arm stops where it is instead of finishing
  a stale motion; it resumes with the next command.
* The safety box and the law's gains, clips and limits (every
  controllers.impedance.ImpedanceConfig field) are live ROS 2 parameters of this node - the
  one place to set them. They are validated at start-up (a bad one stops the node with one
  error line) and on every change (controllers.limits: finite, ordered, a unit quaternion,
  within the documented upper bounds), and at run time they may only be tightened relative
  to the start-up values, unless the node was started with `allow_loosening: true` (a
  read-only, start-up-only parameter). A refused change is answered with the reason and
  logged with the nodes that hold a parameter client for this node: rclpy does not tell a
  parameter callback which client called, so that list is the most ROS gives. An accepted
  impedance change is then
  - forwarded to the driver node's parameters of the same names (`driver_node`, e.g.
    /franka/franka, whose parameters take them into its 1 kHz loop); all of them once when
    the driver's parameter service appears, the changed ones after each change; a driver
    that refuses one is logged;
  - and published on `controller/impedance` as a JSON object of the full config
    (transient-local: a driver that starts later still gets it), for drivers that take the
    config from a topic (`CartesianImpedanceController.set_config(ImpedanceConfig(**json))`).

The message helpers at the top are the one packing of the state topics (`joint_state_msg`,
`pose_msg`, `twist_msg`, `wrench_msg`: the drivers and the twin node publish through them) and
the one validation of equilibrium poses (`pose_from_msg`, `check_pose`: the twin node and the
env's ROS backend use them too).

rclpy is imported here only (controllers/ keeps ROS out of every other module).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from robot_rl.controllers.impedance import UPPER_BOUNDS, ImpedanceConfig
from robot_rl.controllers.limits import UNIT_QUAT_TOLERANCE, SafetyBox, envelope, loosenings
from robot_rl.controllers.rotations import matrix_to_quat, matrix_to_rpy, quat_to_matrix, rpy_to_matrix
from robot_rl.drivers.ros_common import declare_config, range_problem, run_node
from robot_rl.config import Range, Text, param

# Reliable, keep-last: commands and states that must not silently vanish.
COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# Reliable and latched: a late joiner gets the last value (configs, reset options).
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)


# ---------------------------------------------------------------- message helpers
def stamp_seconds(t: Time) -> float:
    return t.sec + t.nanosec * 1e-9


def pose_from_msg(msg: PoseStamped) -> tuple[np.ndarray, np.ndarray]:
    p, q = msg.pose.position, msg.pose.orientation
    return np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w])


def pose_msg(pos, quat, frame_id: str, stamp: Time) -> PoseStamped:
    msg = PoseStamped()
    msg.header.frame_id, msg.header.stamp = frame_id, stamp
    p, q = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = (float(v) for v in pos)
    q.x, q.y, q.z, q.w = (float(v) for v in quat)
    return msg


def _floats(values) -> list[float]:
    # ndarray.tolist() gives Python floats at C speed: these run at the drivers' 200 Hz.
    return values.tolist() if isinstance(values, np.ndarray) else [float(v) for v in values]


def joint_state_msg(names, position, velocity, effort, stamp: Time, frame_id: str = "") -> JointState:
    msg = JointState()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.name = list(names)
    msg.position, msg.velocity, msg.effort = _floats(position), _floats(velocity), _floats(effort)
    return msg


def _set_vectors(first, second, values6) -> None:
    first.x, first.y, first.z, second.x, second.y, second.z = _floats(values6)


def twist_msg(twist6, frame_id: str, stamp: Time) -> TwistStamped:
    """TwistStamped of (vx, vy, vz, wx, wy, wz)."""
    msg = TwistStamped()
    msg.header.frame_id, msg.header.stamp = frame_id, stamp
    _set_vectors(msg.twist.linear, msg.twist.angular, twist6)
    return msg


def wrench_msg(wrench6, frame_id: str, stamp: Time) -> WrenchStamped:
    """WrenchStamped of (fx, fy, fz, tx, ty, tz)."""
    msg = WrenchStamped()
    msg.header.frame_id, msg.header.stamp = frame_id, stamp
    _set_vectors(msg.wrench.force, msg.wrench.torque, wrench6)
    return msg


def check_pose(msg: PoseStamped, base_frame: str) -> tuple[np.ndarray, np.ndarray]:
    """(pos, unit quat xyzw) of an equilibrium pose, or ValueError saying what is wrong with it."""
    if msg.header.frame_id != base_frame:
        raise ValueError(f"frame_id {msg.header.frame_id!r} is not the base frame {base_frame!r}")
    pos, quat = pose_from_msg(msg)
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(quat))):
        raise ValueError(f"non-finite pose: position {pos.tolist()}, orientation {quat.tolist()}")
    norm = float(np.linalg.norm(quat))
    if abs(norm - 1.0) > UNIT_QUAT_TOLERANCE:
        raise ValueError(f"orientation {quat.tolist()} is not a unit quaternion (norm {norm:.4f})")
    return pos, quat / norm


# ---------------------------------------------------------------- safety box
def clip_to_box(pos, quat, box_low, box_high, rpy_low, rpy_high, nominal_quat):
    """Position per axis into [box_low, box_high]; orientation's rpy relative to nominal_quat
    into [rpy_low, rpy_high]. Same semantics as RobotEnv.clip_to_safety_box."""
    pos = np.clip(np.asarray(pos, dtype=float), box_low, box_high)
    nominal = quat_to_matrix(np.asarray(nominal_quat, dtype=float))
    rpy = matrix_to_rpy(nominal.T @ quat_to_matrix(np.asarray(quat, dtype=float)))
    rpy = np.clip(rpy, rpy_low, rpy_high)
    return pos, matrix_to_quat(nominal @ rpy_to_matrix(rpy))


# ---------------------------------------------------------------- live limit parameters
@dataclass
class ControllerNodeConfig:
    """The controller node's start-up-only parameters (the box, the gains and the loosening
    switch are declared from SafetyBox, ImpedanceConfig and StartupEnvelope)."""
    base_frame: str = param("fr3_link0", "frame of every pose (robot base)", Text(), read_only=True)
    driver_node: str = param("", "node whose parameters get the gains ('' = none), e.g. /franka/franka",
                             Text(allow_empty=True), read_only=True)


RESET_PROFILES = ("", "precision")


@dataclass
class ResetEnvelope:
    """The gain profile a run-time change may switch to for resets (read-only parameters)."""
    reset_profile: str = param("", "start-up only: a gain profile run-time changes may switch to for "
                               "resets ('' none, 'precision': wide clips, stiffer rotation)",
                               Text(allow_empty=True, choices=RESET_PROFILES), read_only=True)
    reset_translational_ki: float = param(1000.0, "start-up only: the largest translational_ki the "
                                          "reset profile allows",
                                          Range(0.0, UPPER_BOUNDS["translational_ki"]), read_only=True)


@dataclass
class LooseningSwitch:
    allow_loosening: bool = param(False, "start-up only: let run-time parameter changes loosen the "
                                  "safety limits beyond their start-up values (default false: tighten "
                                  "only)", read_only=True)


def declare_impedance_parameters(node: Node, cfg: ImpedanceConfig) -> ImpedanceConfig:
    """Declares one parameter per ImpedanceConfig field (tuples as double arrays, help and range
    from the field) and returns the config they hold (defaults from `cfg`, overridden by a
    params file or the command line); ValueError (from ImpedanceConfig.validate, naming the
    field) when those values are bad. Tighten-only at run time unless allow_loosening."""
    return declare_config(node, cfg, make=ImpedanceConfig)


def declare_safety_box(node: Node) -> SafetyBox:
    """The box parameters, checked (SafetyBox.checked names the field and the bound)."""
    return declare_config(node, SafetyBox(), make=SafetyBox.checked)


def declare_reset_envelope(node: Node, start: ImpedanceConfig) -> ImpedanceConfig:
    """The gains a run-time change may reach: the start-up gains, widened to the reset profile
    the launch file names (start-up only). `reset_profile: precision` lets a Cartesian reset
    switch to ImpedanceConfig.precision() plus an integral term of up to
    `reset_translational_ki` and back (tasks/ros/backend.py, gains_node); '' allows nothing
    beyond the start-up gains. Either way nothing past the profile is accepted."""
    env = declare_config(node, ResetEnvelope())
    if not env.reset_profile:
        return start
    reset = ImpedanceConfig.precision().replace(translational_ki=float(env.reset_translational_ki))
    reset.validate()
    return envelope(start, reset)


def declare_allow_loosening(node: Node) -> bool:
    """The start-up-only switch that lets run-time changes loosen the limits (read-only after)."""
    return declare_config(node, LooseningSwitch()).allow_loosening


def parameter_clients(node: Node) -> list[str]:
    """Nodes on the graph holding a client of this node's set_parameters services: the most ROS
    tells about who asked for a change (rclpy gives a parameter callback no caller identity;
    a call from inside this process has no client and does not appear)."""
    ours = f"{node.get_fully_qualified_name()}/set_parameters"
    found = []
    for name, namespace in node.get_node_names_and_namespaces():
        try:
            clients = node.get_client_names_and_types_by_node(name, namespace)
        except Exception:  # the node left the graph between the two queries
            continue
        if any(c in (ours, ours + "_atomically") for c, _ in clients):
            found.append(f"{namespace.rstrip('/')}/{name}")
    return sorted(found)


def refuse_change(node: Node, params, reason: str) -> SetParametersResult:
    """Logs a refused parameter change (what was asked, why, who may have asked) and answers it."""
    asked = ", ".join(f"{p.name}={_shown(p.value)}" for p in params)
    callers = parameter_clients(node)
    node.get_logger().error(
        f"parameter change refused: {asked}: {reason}; asked by one of the nodes with a parameter "
        f"client for this node: {callers or 'none (an in-process call)'} (rclpy does not name the caller)")
    return SetParametersResult(successful=False, reason=reason)


def log_descriptor_refusals(node: Node) -> None:
    """rclpy refuses read-only parameters, wrong types and values outside a parameter's range
    itself, before any on-set callback;
    this pre-set callback logs those attempts the same way, so every refusal is logged."""
    def pre_set(params):
        for p in params:
            if not node.has_parameter(p.name):
                continue  # undeclared: rclpy answers ParameterNotDeclared
            current = node.get_parameter(p.name)
            if node.describe_parameter(p.name).read_only:
                refuse_change(node, [p], f"{p.name} is read-only (set at start-up only)")
            elif p.type_ not in (current.type_, Parameter.Type.NOT_SET):
                refuse_change(node, [p], f"{p.name} must be a {current.type_.name}, got {p.type_.name}")
            elif (problem := range_problem(node.describe_parameter(p.name), p.value)) is not None:
                refuse_change(node, [p], f"{p.name} {problem} (the parameter's range)")
        return params
    node.add_pre_set_parameters_callback(pre_set)


def _shown(value) -> str:
    return str(list(value)) if hasattr(value, "tolist") or isinstance(value, (list, tuple)) else repr(value)


def impedance_from_parameters(current: ImpedanceConfig, params) -> ImpedanceConfig | None:
    """The config after a parameter change, None when no impedance field changed;
    raises ValueError (from ImpedanceConfig.validate) when the new values are bad."""
    names = {f.name for f in fields(ImpedanceConfig)}
    changes = {}
    for p in params:
        if p.name in names:
            value = p.value
            if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
                value = tuple(float(v) for v in value)
            elif isinstance(value, (int, float)):
                value = float(value)
            else:
                raise ValueError(f"{p.name} must be a number (or 3 numbers), got {value!r}")
            changes[p.name] = value
    return current.replace(**changes) if changes else None


# ---------------------------------------------------------------- the node
class ControllerNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__("controller", **node_kwargs)

        try:
            driver = self._declare_limits()
        except ValueError as err:  # one line naming the parameter; the node never runs
            name = self.get_fully_qualified_name()
            self.destroy_node()
            raise ValueError(f"controller {name}: {err}") from None
        self.add_on_set_parameters_callback(self._on_parameters)
        log_descriptor_refusals(self)
        self._driver = AsyncParameterClient(self, driver) if driver else None
        # Everything once, when the driver appears; later only what changes. dt is the loop's own.
        self._to_forward = {k: v for k, v in asdict(self.impedance).items() if k != "dt"}
        if self._driver is not None:
            self.create_timer(0.5, self._forward_gains)

        self.target_pub = self.create_publisher(PoseStamped, "controller/equilibrium_pose", COMMAND_QOS)
        self.config_pub = self.create_publisher(String, "controller/impedance", LATCHED_QOS)
        self.create_subscription(PoseStamped, "equilibrium_pose", self._on_command, COMMAND_QOS)
        self.create_subscription(PoseStamped, "ee_pose", self._on_ee_pose, 10)
        self.measured: tuple[np.ndarray, np.ndarray] | None = None
        self.last_command = None           # time.monotonic() of the last accepted command
        self.holding = False
        self.rejected = 0
        self._publish_config()
        self.create_timer(0.05, self._watchdog)

    def _declare_limits(self) -> str:
        """Declares the frame, the box and the gains, checks them, keeps the start-up values
        (the envelope run-time changes stay inside) and returns the driver node's name."""
        own = declare_config(self, ControllerNodeConfig())
        self.base_frame = own.base_frame
        self._apply_limits(declare_safety_box(self))
        self.allow_loosening = declare_allow_loosening(self)
        self.impedance = declare_impedance_parameters(self, ImpedanceConfig())
        self.start_limits = self.limits
        self.start_impedance = declare_reset_envelope(self, self.impedance)
        return own.driver_node

    def _apply_limits(self, limits: SafetyBox) -> None:
        self.limits = limits
        # numpy copies once per change, not per command
        arrays = limits.arrays()
        self.box_low, self.box_high = arrays["box_low"], arrays["box_high"]
        self.rpy_low, self.rpy_high, self.nominal_quat = arrays["rpy_low"], arrays["rpy_high"], arrays["nominal_quat"]
        self.command_timeout = limits.command_timeout

    # -- commands
    def _on_command(self, msg: PoseStamped) -> None:
        try:
            pos, quat = check_pose(msg, self.base_frame)
        except ValueError as err:
            self.rejected += 1
            self.get_logger().error(f"equilibrium_pose rejected, holding the last target: {err}")
            return
        self.last_command, self.holding = time.monotonic(), False
        self._send(pos, quat, msg.header.stamp)

    def _send(self, pos, quat, stamp) -> None:
        pos, quat = clip_to_box(pos, quat, self.box_low, self.box_high, self.rpy_low,
                                self.rpy_high, self.nominal_quat)
        self.target_pub.publish(pose_msg(pos, quat, self.base_frame, stamp))

    def _on_ee_pose(self, msg: PoseStamped) -> None:
        try:
            self.measured = check_pose(msg, self.base_frame)
        except ValueError as err:
            self.get_logger().error(f"ee_pose ignored: {err}", throttle_duration_sec=1.0)

    def _watchdog(self) -> None:
        if self.last_command is None or self.holding:
            return
        if time.monotonic() - self.last_command > self.command_timeout:
            self.holding = True
            if self.measured is not None:
                self._send(*self.measured, self.get_clock().now().to_msg())
            self.get_logger().warn(f"no equilibrium_pose for {self.command_timeout} s: holding "
                                   "the measured pose until commands resume")

    # -- live parameters
    def _on_parameters(self, params) -> SetParametersResult:
        """All of a request is checked before any of it applies: valid, then no looser than
        at start-up (unless allow_loosening); a refusal changes nothing and is logged."""
        box_fields = {f for f in asdict(self.limits)}
        box_changes = {p.name: p.value for p in params if p.name in box_fields}
        try:
            limits = (SafetyBox.checked(**{**asdict(self.limits), **box_changes}) if box_changes
                      else self.limits)
            new = impedance_from_parameters(self.impedance, params)
        except (ValueError, TypeError) as err:
            return refuse_change(self, params, str(err))
        if not self.allow_loosening:
            looser = loosenings(self.start_limits, limits)
            if new is not None:
                looser += loosenings(self.start_impedance, new)
            if looser:
                return refuse_change(self, params, "; ".join(looser)
                                     + " (only tightening at run time; allow_loosening is false)")
        if new is not None:
            self._to_forward.update({k: v for k, v in asdict(new).items()
                                     if v != getattr(self.impedance, k) and k != "dt"})
            self.impedance = new
            self._publish_config()
        self._apply_limits(limits)
        return SetParametersResult(successful=True)

    def _forward_gains(self) -> None:
        if not self._to_forward or not self._driver.services_are_ready():
            return
        sent, self._to_forward = self._to_forward, {}
        params = [Parameter(k, value=list(v) if isinstance(v, tuple) else v) for k, v in sent.items()]
        future = self._driver.set_parameters(params)

        def done(fut) -> None:
            results = fut.result().results if fut.result() is not None else []
            refused = [f"{p.name}: {r.reason}" for p, r in zip(params, results) if not r.successful]
            if refused or not results:
                self.get_logger().error(f"driver {self._driver.remote_node_name} refused gains: "
                                        f"{refused or 'no answer'}")
        future.add_done_callback(done)

    def _publish_config(self) -> None:
        self.config_pub.publish(String(data=json.dumps(asdict(self.impedance))))


def main(args: list[str] | None = None) -> int:
    return run_node(ControllerNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
