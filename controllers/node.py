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
* Gains, clips and limits of the law (every controllers.impedance.ImpedanceConfig field) are
  live ROS 2 parameters of this node - the one place to set them. A change is validated by
  ImpedanceConfig (rejected with the reason otherwise), then
  - forwarded to the driver node's parameters of the same names (`driver_node`, e.g.
    /franka/franka, whose parameters take them into its 1 kHz loop); all of them once when
    the driver's parameter service appears, the changed ones after each change; a driver
    that refuses one is logged;
  - and published on `controller/impedance` as a JSON object of the full config
    (transient-local: a driver that starts later still gets it), for drivers that take the
    config from a topic (`CartesianImpedanceController.set_config(ImpedanceConfig(**json))`).

The pose helpers at the top (`pose_from_msg`, `check_pose`, ...) are the one validation of
equilibrium poses; the twin node and the env's ROS backend use them too.

rclpy is imported here only (controllers/ keeps ROS out of every other module).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, fields

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from controllers.impedance import ImpedanceConfig
from controllers.rotations import quat_to_matrix

UNIT_QUAT_TOLERANCE = 1e-3   # |norm - 1| accepted (float32 round trips, hand-typed values)

# Reliable, keep-last: commands and states that must not silently vanish.
COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# Reliable and latched: a late joiner gets the last value (configs, reset options).
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)


# ---------------------------------------------------------------- message helpers
def to_stamp(seconds: float) -> Time:
    sec = int(math.floor(seconds))
    return Time(sec=sec, nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))


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
def _rpy_to_matrix(r: float, p: float, y: float) -> np.ndarray:
    """R = Rz(yaw) Ry(pitch) Rx(roll), the ROS convention (as tasks.frames)."""
    cr, sr, cp, sp, cy, sy = math.cos(r), math.sin(r), math.cos(p), math.sin(p), math.cos(y), math.sin(y)
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]])


def _matrix_to_rpy(m: np.ndarray) -> np.ndarray:
    pitch = math.asin(max(-1.0, min(1.0, -m[2, 0])))
    return np.array([math.atan2(m[2, 1], m[2, 2]), pitch, math.atan2(m[1, 0], m[0, 0])])


def _matrix_to_quat(m: np.ndarray) -> np.ndarray:
    w = math.sqrt(max(0.0, 1.0 + m[0, 0] + m[1, 1] + m[2, 2])) / 2.0
    x = math.copysign(math.sqrt(max(0.0, 1.0 + m[0, 0] - m[1, 1] - m[2, 2])) / 2.0, m[2, 1] - m[1, 2])
    y = math.copysign(math.sqrt(max(0.0, 1.0 - m[0, 0] + m[1, 1] - m[2, 2])) / 2.0, m[0, 2] - m[2, 0])
    z = math.copysign(math.sqrt(max(0.0, 1.0 - m[0, 0] - m[1, 1] + m[2, 2])) / 2.0, m[1, 0] - m[0, 1])
    q = np.array([x, y, z, w])
    return q / np.linalg.norm(q)


def clip_to_box(pos, quat, box_low, box_high, rpy_low, rpy_high, nominal_quat):
    """Position per axis into [box_low, box_high]; orientation's rpy relative to nominal_quat
    into [rpy_low, rpy_high]. Same semantics as RobotEnv.clip_to_safety_box."""
    pos = np.clip(np.asarray(pos, dtype=float), box_low, box_high)
    nominal = quat_to_matrix(np.asarray(nominal_quat, dtype=float))
    rpy = _matrix_to_rpy(nominal.T @ quat_to_matrix(np.asarray(quat, dtype=float)))
    rpy = np.clip(rpy, rpy_low, rpy_high)
    return pos, _matrix_to_quat(nominal @ _rpy_to_matrix(*rpy))


# ---------------------------------------------------------------- live impedance parameters
def declare_impedance_parameters(node: Node, cfg: ImpedanceConfig) -> ImpedanceConfig:
    """Declares one parameter per ImpedanceConfig field (tuples as double arrays) and returns the
    config they hold (defaults from `cfg`, overridden by a params file or the command line)."""
    values = {}
    for f in fields(ImpedanceConfig):
        default = getattr(cfg, f.name)
        default = [float(v) for v in default] if isinstance(default, tuple) else float(default)
        node.declare_parameter(f.name, default, ParameterDescriptor(
            description=f"impedance law: {f.name} (controllers.impedance.ImpedanceConfig)"))
        values[f.name] = node.get_parameter(f.name).value
    return ImpedanceConfig(**values)


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

        def declare(name, default, description):
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
            return self.get_parameter(name).value

        self.base_frame = declare("base_frame", "fr3_link0", "frame of every pose (robot base)")
        self.box_low = np.array(declare("box_low", [0.3, -0.3, 0.0], "safety box min xyz (m)"))
        self.box_high = np.array(declare("box_high", [0.7, 0.3, 0.5], "safety box max xyz (m)"))
        self.rpy_low = np.array(declare("rpy_low", [-0.5, -0.5, -3.2],
                                        "min roll-pitch-yaw relative to nominal_quat (rad)"))
        self.rpy_high = np.array(declare("rpy_high", [0.5, 0.5, 3.2],
                                         "max roll-pitch-yaw relative to nominal_quat (rad)"))
        self.nominal_quat = np.array(declare("nominal_quat", [1.0, 0.0, 0.0, 0.0],
                                             "reference orientation of the rpy limits (x, y, z, w)"))
        self.command_timeout = declare("command_timeout", 0.5,
                                       "s without equilibrium_pose before holding the measured pose")
        if np.any(self.box_low >= self.box_high) or np.any(self.rpy_low > self.rpy_high):
            raise ValueError("controller: box_low must be < box_high and rpy_low <= rpy_high")
        driver = declare("driver_node", "", "node whose parameters get the gains ('' = none), e.g. /franka/franka")
        self.impedance = declare_impedance_parameters(self, ImpedanceConfig())
        self.add_on_set_parameters_callback(self._on_parameters)
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
        try:
            new = impedance_from_parameters(self.impedance, params)
        except (ValueError, TypeError) as err:
            return SetParametersResult(successful=False, reason=str(err))
        box = {k: getattr(self, k) for k in ("box_low", "box_high", "rpy_low", "rpy_high", "nominal_quat")}
        for p in params:  # box and watchdog: checked together, then applied at once
            if p.name in box:
                value = np.array(p.value, dtype=float)
                if value.shape != ((4,) if p.name == "nominal_quat" else (3,)) or not np.all(np.isfinite(value)):
                    return SetParametersResult(successful=False, reason=f"bad {p.name}: {p.value}")
                box[p.name] = value
            elif p.name == "command_timeout" and not float(p.value) > 0.0:
                return SetParametersResult(successful=False, reason="command_timeout must be > 0")
        if np.any(box["box_low"] >= box["box_high"]) or np.any(box["rpy_low"] > box["rpy_high"]):
            return SetParametersResult(successful=False, reason="box_low must be < box_high, rpy_low <= rpy_high")
        if new is not None:
            self._to_forward.update({k: v for k, v in asdict(new).items()
                                     if v != getattr(self.impedance, k) and k != "dt"})
            self.impedance = new
            self._publish_config()
        for name, value in box.items():
            setattr(self, name, value)
        for p in params:
            if p.name == "command_timeout":
                self.command_timeout = float(p.value)
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


def spin_main(make_node, args: list[str] | None = None) -> int:
    """Entry-point body shared by the nodes: init, build, spin until Ctrl-C/SIGTERM, clean up."""
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            if hasattr(node, "close"):
                node.close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


def main(args: list[str] | None = None) -> int:
    return spin_main(ControllerNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
