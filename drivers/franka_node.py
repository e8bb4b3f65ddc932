"""ROS 2 node of the Franka arm and hand (topic contract of docs/DESIGN.md, namespace /franka).

Publishes joint_states, ee_pose, ee_twist, wrench (the world's wrench on the robot at the TCP,
base frame) at `publish_rate` from a publisher thread that only reads shared memory, so
a service call that blocks the executor (reset takes seconds) never stops the state stream.
Subscribes equilibrium_pose and gripper/command; serves reset and recover; reports faults
with libfranka's error flags on `status` (std_msgs/String, JSON). Gains, clips, watchdog,
safety box and collision thresholds are parameters, changeable live.

The 1 kHz loop runs in its own process (drivers/franka_loop.py) and the hand in another
(drivers/franka_hand.py): libfranka's calls hold the GIL while they block.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, fields, replace

from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, String
from std_srvs.srv import Trigger

from robot_rl.controllers.impedance import ImpedanceConfig
from robot_rl.controllers.limits import loosenings, validate_target
from robot_rl.controllers.node import (declare_allow_loosening, declare_reset_envelope, joint_state_msg, pose_msg,
                              twist_msg, wrench_msg)
from robot_rl.drivers.franka import FrankaArm, LoopSettings
from robot_rl.drivers.franka_hand import FrankaHand, HandSettings
from robot_rl.drivers.franka_loop import (DEFAULT_FORCE_THRESHOLDS, DEFAULT_TORQUE_THRESHOLDS, FRANKA_HOME_Q)
from robot_rl.drivers.ros_common import declare, declare_config, run_node
from robot_rl.config import Range, Text, help_of, param, rule_of

# Parameters that map one to one onto ImpedanceConfig fields (live).
_GAIN_PARAMS = ("translational_stiffness", "translational_damping", "rotational_stiffness", "rotational_damping",
                "translational_clip_neg", "translational_clip_pos", "rotational_clip_neg", "rotational_clip_pos",
                "translational_ki", "rotational_ki", "integral_limit", "rotational_integral_limit",
                "nullspace_stiffness", "filter_factor", "torque_rate_limit")
# Parameters that map onto LoopSettings fields (live).
_LOOP_PARAMS = {"watchdog_timeout": "watchdog_s", "safety_box_min": "box_lo", "safety_box_max": "box_hi",
                "home_joint_positions": "q_home", "reset_joint_speed": "reset_joint_speed",
                "lower_torque_thresholds": "lower_torque_thresholds",
                "upper_torque_thresholds": "upper_torque_thresholds",
                "lower_force_thresholds": "lower_force_thresholds",
                "upper_force_thresholds": "upper_force_thresholds"}


_LOOP = LoopSettings()


@dataclass
class FrankaNodeConfig:
    """The Franka node's start-up parameters (robot, frames, rates)."""
    robot_ip: str = param("172.16.0.2", "the FR3's control IP (the shop-floor network port)", Text())
    realtime_config: str = param("enforce", "'enforce' (needs a PREEMPT_RT kernel, as libfranka asks) or "
                                 "'ignore' (sim, tests)", Text(choices=("enforce", "ignore")))
    impedance_profile: str = param("compliant", "starting gains: 'compliant' (SERL, 1 cm clips) or "
                                   "'precision' (wide clips)", Text(choices=("compliant", "precision")))
    frame_id: str = param("fr3_link0", "base frame of poses, twists and wrenches", Text())
    arm_id: str = param("fr3", "joint name prefix (franka_ros2: fr3_joint1..7)", Text())
    publish_rate: float = param(200.0, "state topics per second (>= 100)", Range(100.0, 1000.0))
    use_gripper: bool = param(True, "drive the Franka hand")


@dataclass
class FrankaLoopConfig:
    """The 1 kHz loop's live parameters beside the gains (LoopSettings, names in _LOOP_PARAMS);
    LoopSettings.validate checks the relations between them."""
    watchdog_timeout: float = param(0.5, "no equilibrium_pose for this long (s) -> hold the current pose",
                                    Range(0.0, 60.0, low_open=True))
    safety_box_min: tuple[float, ...] = param(_LOOP.box_lo, "targets are clipped into this box (m, base frame)",
                                              Range(-2.0, 2.0))
    safety_box_max: tuple[float, ...] = param(_LOOP.box_hi, "upper corner of the safety box", Range(-2.0, 2.0))
    home_joint_positions: tuple[float, ...] = param(FRANKA_HOME_Q, "reset posture and nullspace target (rad)",
                                                    Range(-3.2, 3.2))
    reset_joint_speed: float = param(0.6, "peak joint speed of the reset move (rad/s)", Range(0.0, 2.6, low_open=True))
    lower_torque_thresholds: tuple[float, ...] = param(DEFAULT_TORQUE_THRESHOLDS, "collision: joint torques (Nm)",
                                                       Range(0.0, 1e4, low_open=True))
    upper_torque_thresholds: tuple[float, ...] = param(DEFAULT_TORQUE_THRESHOLDS, "reflex: joint torques (Nm)",
                                                       Range(0.0, 1e4, low_open=True))
    lower_force_thresholds: tuple[float, ...] = param(DEFAULT_FORCE_THRESHOLDS, "collision: Cartesian (N, Nm)",
                                                      Range(0.0, 1e4, low_open=True))
    upper_force_thresholds: tuple[float, ...] = param(DEFAULT_FORCE_THRESHOLDS, "reflex: Cartesian (N, Nm)",
                                                      Range(0.0, 1e4, low_open=True))


@dataclass
class FrankaHandConfig:
    gripper_speed: float = param(0.1, "finger speed (m/s)", Range(0.0, 0.2, low_open=True))
    gripper_force: float = param(40.0, "grasp force (N)", Range(0.0, 140.0, low_open=True))


class FrankaNode(Node):
    def __init__(self, **kwargs):
        super().__init__("franka", namespace=kwargs.pop("namespace", "franka"), **kwargs)
        p = declare_config(self, FrankaNodeConfig())
        ip, rt, profile = p.robot_ip, p.realtime_config, p.impedance_profile
        base = ImpedanceConfig.compliant() if profile == "compliant" else ImpedanceConfig.precision()
        law = {f.name: f for f in fields(ImpedanceConfig)}
        for name in _GAIN_PARAMS:           # the law's own description and range, live here
            value = getattr(base, name)
            declare(self, name, list(value) if isinstance(value, tuple) else float(value),
                    f"{help_of(law[name])} (live)", rule_of(law[name]))
        declare_config(self, FrankaLoopConfig())     # read by _settings_from_params, live
        self.frame_id, prefix = p.frame_id, p.arm_id
        self.publish_period = 1.0 / p.publish_rate
        use_hand = p.use_gripper
        self.joint_names = [f"{prefix}_joint{i}" for i in range(1, 8)]
        self.finger_name = f"{prefix}_finger_joint1"

        self.allow_loosening = declare_allow_loosening(self)
        settings = self._settings_from_params(LoopSettings(robot_ip=ip, realtime=(rt == "enforce")), {})
        # The launch file's limits (widened to its reset profile): run-time changes only tighten.
        self._start_settings = replace(settings, impedance=declare_reset_envelope(self, settings.impedance))
        self.arm = FrankaArm(settings)
        self.hand: FrankaHand | None = None
        try:
            self.arm.wait_ready()
            if use_hand:
                hand = declare_config(self, FrankaHandConfig())
                self.hand = FrankaHand(HandSettings(robot_ip=ip, speed=hand.gripper_speed, force=hand.gripper_force))
        except Exception:
            self.close()
            raise

        self.pub_joints = self.create_publisher(JointState, "joint_states", 10)
        self.pub_pose = self.create_publisher(PoseStamped, "ee_pose", 10)
        self.pub_twist = self.create_publisher(TwistStamped, "ee_twist", 10)
        self.pub_wrench = self.create_publisher(WrenchStamped, "wrench", 10)
        self.pub_gripper = self.create_publisher(JointState, "gripper/state", 10)
        self.pub_status = self.create_publisher(String, "status", 10)
        self.create_subscription(PoseStamped, "equilibrium_pose", self._on_target, 10)
        self.create_subscription(Float64, "gripper/command", self._on_gripper, 10)
        self.create_service(Trigger, "reset", self._on_reset)
        self.create_service(Trigger, "recover", self._on_recover)
        self.add_on_set_parameters_callback(self._on_parameters)
        self._clipped = False
        self._status_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._publish_loop, name="franka-publisher", daemon=True)
        self._thread.start()
        self.report("started", robot_ip=ip, realtime_config=rt, profile=profile)

    # ------------------------------------------------------------------ parameters
    def _settings_from_params(self, settings: LoopSettings, changed: dict) -> LoopSettings:
        value = lambda n: changed[n] if n in changed else self.get_parameter(n).value  # noqa: E731
        gains = {n: (tuple(value(n)) if isinstance(value(n), (list, tuple)) or hasattr(value(n), "tolist")
                     else float(value(n))) for n in _GAIN_PARAMS}
        impedance = replace(settings.impedance, **gains)
        loop = {field: (tuple(float(v) for v in value(p)) if field not in ("watchdog_s", "reset_joint_speed")
                        else float(value(p))) for p, field in _LOOP_PARAMS.items()}
        new = replace(settings, impedance=impedance, **loop)
        new.validate()
        return new

    def _on_parameters(self, params) -> SetParametersResult:
        changed = {p.name: p.value for p in params if p.name in _GAIN_PARAMS or p.name in _LOOP_PARAMS}
        if not changed:
            return SetParametersResult(successful=True)
        try:
            new = self._settings_from_params(self.arm.settings, changed)
            looser = [] if self.allow_loosening else self._loosenings(new)
            if looser:
                reason = "; ".join(looser) + " (only tightening at run time; allow_loosening is false)"
                self.get_logger().error(f"refused a parameter change: {reason}")
                return SetParametersResult(successful=False, reason=reason)
            ok, message = self.arm.update_settings(**{f.name: getattr(new, f.name) for f in _fields(new)})
        except (ValueError, TypeError, TimeoutError) as err:
            return SetParametersResult(successful=False, reason=str(err))
        if ok:
            self.report("parameters", changed=sorted(changed))
        return SetParametersResult(successful=ok, reason="" if ok else message)

    def _loosenings(self, new: LoopSettings) -> list[str]:
        """Every way `new` is looser than the start-up settings: the law's gains and clips
        (controllers.limits), a wider box, a longer watchdog, a faster reset move, and
        collision or reflex thresholds raised (a less sensitive arm)."""
        start = self._start_settings
        found = loosenings(start.impedance, new.impedance)
        higher_is_looser = {"box_hi": "safety_box_max", "watchdog_s": "watchdog_timeout",
                            "reset_joint_speed": "reset_joint_speed",
                            "lower_torque_thresholds": "lower_torque_thresholds",
                            "upper_torque_thresholds": "upper_torque_thresholds",
                            "lower_force_thresholds": "lower_force_thresholds",
                            "upper_force_thresholds": "upper_force_thresholds"}
        for field, name in (*higher_is_looser.items(), ("box_lo", "safety_box_min")):
            olds, news = getattr(start, field), getattr(new, field)
            olds, news = (olds, news) if isinstance(olds, tuple) else ((olds,), (news,))
            for axis, (o, n) in enumerate(zip(olds, news)):
                if (n < o) if field == "box_lo" else (n > o):
                    found.append(f"{name}[{axis}] {n:g} is looser than the start-up {o:g}")
        return found

    # ------------------------------------------------------------------ inputs
    def _on_target(self, msg: PoseStamped) -> None:
        p, q = msg.pose.position, msg.pose.orientation
        try:
            pos, quat = validate_target((p.x, p.y, p.z), (q.x, q.y, q.z, q.w))
            _, clipped = self.arm.set_target(pos, quat)
        except ValueError as err:  # the arm keeps its last target (and the watchdog still runs)
            self.report("target_rejected", reason=str(err))
            return
        if clipped != self._clipped:
            self._clipped = clipped
            self.report("target_clipped" if clipped else "target_in_box", target=[p.x, p.y, p.z])

    def _on_gripper(self, msg: Float64) -> None:
        if self.hand is None:
            return
        try:
            self.hand.command(msg.data)
        except ValueError as err:
            self.report("gripper_command_rejected", reason=str(err))
        except RuntimeError as err:
            self.report("gripper_fault", message=str(err))

    def _on_reset(self, request, response):
        response.success, response.message = self._service(self.arm.reset)
        return response

    def _on_recover(self, request, response):
        response.success, response.message = self._service(self.arm.recover)
        return response

    def _service(self, call) -> tuple[bool, str]:
        try:
            ok, message = call()
        except TimeoutError as err:
            ok, message = False, str(err)
        self.report("service", success=ok, message=message)
        return ok, message

    # ------------------------------------------------------------------ outputs
    def report(self, event: str, **fields) -> None:
        s = self.arm.state()
        msg = String(data=json.dumps({"event": event, "mode": s.mode, "stamp": time.time(), **fields}))
        with self._status_lock:
            self.pub_status.publish(msg)

    def _publish_loop(self) -> None:
        next_t = time.monotonic()
        last_mode = None
        while not self._stop.is_set():
            try:
                self._publish_once()
                for kind, *rest in self.arm.take_events():
                    if kind == "fault":
                        self.report("fault", **rest[0])
                s = self.arm.state()
                if s.mode != last_mode:
                    last_mode = s.mode
                    self.report("mode")
                if self.hand is not None:
                    for ev in self.hand.take_events():
                        if ev[0] == "fault":
                            self.report("gripper_fault", message=ev[1])
            except Exception as err:  # never let the stream die silently (e.g. during shutdown)
                if self._stop.is_set():
                    return
                self.get_logger().error(f"publisher: {type(err).__name__}: {err}")
            next_t += self.publish_period
            delay = next_t - time.monotonic()
            if delay < 0:
                next_t = time.monotonic()
            else:
                self._stop.wait(delay)

    def _publish_once(self) -> None:
        s = self.arm.state()
        stamp = self.get_clock().now().to_msg()
        self.pub_joints.publish(joint_state_msg(self.joint_names, s.q, s.dq, s.tau, stamp))
        self.pub_pose.publish(pose_msg(s.pos, s.quat, self.frame_id, stamp))
        self.pub_twist.publish(twist_msg(s.twist, self.frame_id, stamp))
        self.pub_wrench.publish(wrench_msg(s.wrench, self.frame_id, stamp))
        if self.hand is not None:
            h = self.hand.state()
            max_w = h["max_width"] if h["max_width"] > 0 else self.hand.max_width
            closed = min(max(1.0 - h["width"] / max_w, 0.0), 1.0)  # 0 open .. 1 closed
            effort = self.hand.settings.force if h["grasped"] > 0.5 else 0.0
            self.pub_gripper.publish(joint_state_msg([self.finger_name], [closed], [0.0], [effort], stamp))

    def close(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
            self._thread.join(2.0)
        if getattr(self, "hand", None) is not None:
            self.hand.close()
            self.hand = None
        if getattr(self, "arm", None) is not None:
            self.arm.close()
            self.arm = None


def _fields(obj):
    from dataclasses import fields
    return fields(obj)


def main(args: list[str] | None = None) -> int:
    return run_node(FrankaNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
