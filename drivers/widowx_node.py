"""ROS 2 node of the WidowX 250 6-DoF (topic contract of DESIGN.md, namespace /widowx).

Publishes joint_states, ee_pose, ee_twist and gripper/state once per control cycle
(`state_rate`, 100 Hz by default: one sync read + IK + one sync write each), from the
control thread of drivers/widowx.py, so a blocking service (reset takes seconds) never stops
the stream. Subscribes equilibrium_pose (-> damped least-squares IK -> goal positions) and
gripper/command (Float64 0 open .. 1 closed). Services: reset (smooth move to home) and
recover (reboot the servos that failed, torque on). Faults, rejected targets, the watchdog,
a lost bus and mode changes go to `status` (std_msgs/String, JSON with the error bits decoded).

Parameters are declared with descriptions (`ros2 param describe /widowx/widowx <name>`);
launch/widowx.yaml sets them for `robot-rl up widowx`. The control ones (LIVE_PARAMS,
LIVE_IK_PARAMS) change live, validated; bus and servo settings need a restart.
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
from dataclasses import dataclass, replace

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, String
from std_srvs.srv import Trigger

from robot_rl.controllers.ik import IKConfig
from robot_rl.controllers.node import declare_allow_loosening, joint_state_msg, pose_msg, twist_msg
from robot_rl.controllers.widowx_model import WIDOWX_250S
from robot_rl.drivers.dynamixel_bus import MODE_NAMES, BusConfig
from robot_rl.drivers.errors import DeviceNotFoundError
from robot_rl.drivers.ros_common import declare_config, run_node
from robot_rl.drivers.widowx import WidowXArm, WidowXConfig, WidowXState
from robot_rl.config import Range, Text, param

# Parameters changeable live -> WidowXConfig fields (the ik_* ones go into its IKConfig).
LIVE_PARAMS = {"max_joint_velocity": "max_joint_velocity", "watchdog_timeout": "watchdog_s",
               "reset_joint_speed": "reset_joint_speed", "home_joint_positions": "home", "gripper_gain": "gripper_gain"}
LIVE_IK_PARAMS = {"ik_damping": "damping", "ik_position_weight": "position_weight",
                  "ik_orientation_weight": "orientation_weight", "ik_iterations": "iterations"}
# Safety limits among them: at run time they may only fall below their start-up values (a
# slower arm, a quicker watchdog, a weaker grip) unless the rig sets allow_loosening.
TIGHTEN_ONLY = ("max_joint_velocity", "watchdog_timeout", "reset_joint_speed", "gripper_gain")


_BUS, _ARM, _MODEL = BusConfig(), WidowXConfig(), WIDOWX_250S
_SECONDS = Range(0.0, 3600.0, low_open=True)
_SERVO_ID = Range(0, 252)
_RAD = Range(-2 * math.pi, 2 * math.pi)


@dataclass
class WidowXNodeConfig:
    """The WidowX node's ROS 2 parameters: the bus (BusConfig), the IK (IKConfig) and the arm
    (WidowXConfig), by their ROS names; those in LIVE_PARAMS / LIVE_IK_PARAMS change live."""
    port: str = param(_BUS.port, "serial port of the U2D2 (udev symlink /dev/ttyDXL, or /dev/serial/by-id/...)",
                      Text())
    baud_rate: int = param(_BUS.baud, "bus baud rate (the WidowX ships at 1000000)", Range(9600, 10_500_000))
    joint_ids: tuple[int, ...] = param(_BUS.joint_ids, "servo ids of waist, shoulder, elbow, forearm_roll, "
                                       "wrist_angle, wrist_rotate", _SERVO_ID)
    shadow_ids: tuple[int, ...] = param(_BUS.shadow_ids, "second servos of doubled joints (wx250s: shoulder 3, "
                                        "elbow 5)", _SERVO_ID)
    shadow_of: tuple[int, ...] = param(_BUS.shadow_of, "the joint id each shadow follows", _SERVO_ID)
    gripper_id: int = param(_BUS.gripper_id, "gripper servo id (-1: none)", Range(-1, 252))
    arm_operating_mode: int = param(_BUS.arm_mode, "5 current-based position (XL430 joints use 3), 3 position, "
                                    "4 extended position", Range(0, 16))
    arm_current_limit: float = param(_BUS.arm_current_limit_ma, "current limit and goal current of the arm "
                                     "servos (mA)", Range(0.0, 10_000.0))
    profile_velocity: float = param(_BUS.arm_profile_velocity, "the servos' own velocity cap (rad/s, 0 = none)",
                                    Range(0.0, 100.0))
    profile_acceleration: float = param(_BUS.arm_profile_acceleration, "the servos' own acceleration cap "
                                        "(rad/s^2, 0 = none)", Range(0.0, 10_000.0))
    gripper_operating_mode: int = param(_BUS.gripper_mode, "16 PWM or 0 current (XM grippers)", Range(0, 16))
    gripper_pwm_limit: int = param(_BUS.gripper_pwm_limit, "gripper PWM limit (of 885): the grasp force in "
                                   "PWM mode", Range(0, 885))
    gripper_current_limit: float = param(_BUS.gripper_current_limit_ma, "gripper current limit in current "
                                         "mode (mA)", Range(0.0, 10_000.0))
    reboot_on_error: bool = param(_BUS.reboot_on_error, "at start, reboot servos that report a hardware error")
    latency_timer_ms: float = param(_BUS.latency_timer_ms, "the USB adapter's latency timer (ms): 16 FTDI "
                                    "default, 1 with the udev rule", Range(0.0, 1000.0))
    ik_damping: float = param(_ARM.ik.damping, "DLS damping (lambda)", Range(0.0, 100.0))
    ik_position_weight: float = param(_ARM.ik.position_weight, "IK weight per m", Range(0.0, 1e3))
    ik_orientation_weight: float = param(_ARM.ik.orientation_weight, "IK weight per rad of orientation error",
                                         Range(0.0, 1e3))
    ik_iterations: int = param(_ARM.ik.iterations, "DLS iterations per cycle", Range(1, 100))
    joint_lower: tuple[float, ...] = param(tuple(_MODEL.lower.tolist()), "joint limits (rad), within the model's",
                                           _RAD)
    joint_upper: tuple[float, ...] = param(tuple(_MODEL.upper.tolist()), "joint limits (rad), within the model's",
                                           _RAD)
    state_rate: float = param(_ARM.control_rate, "control cycles per second (>= 100 where the bus allows): "
                              "state topics go out every cycle, IK goals too", Range(0.0, 1000.0, low_open=True))
    max_joint_velocity: float = param(_ARM.max_joint_velocity, "joint speed limit (rad/s)",
                                      Range(0.0, 100.0, low_open=True))
    watchdog_timeout: float = param(_ARM.watchdog_s, "no equilibrium_pose for this long (s) -> hold where the "
                                    "arm is", Range(0.0, 60.0, low_open=True))
    home_joint_positions: tuple[float, ...] = param(_ARM.home, "reset posture (rad)", _RAD)
    reset_joint_speed: float = param(_ARM.reset_joint_speed, "peak joint speed of the reset move (rad/s)",
                                     Range(0.0, 100.0, low_open=True))
    gripper_open_position: float = param(_ARM.gripper_open, "gripper servo angle when open (rad)", _RAD)
    gripper_closed_position: float = param(_ARM.gripper_closed, "gripper servo angle when closed (rad)", _RAD)
    gripper_gain: float = param(_ARM.gripper_gain, "gripper effort per rad of position error",
                                Range(0.0, 1000.0, low_open=True))
    reconnect_backoff: float = param(_ARM.reconnect_backoff, "first wait before reconnecting a lost bus (s), "
                                     "doubled per failure", _SECONDS)
    reconnect_backoff_max: float = param(_ARM.reconnect_backoff_max, "longest wait between reconnects (s)",
                                         _SECONDS)
    base_frame: str = param("wx250s/base_link", "frame of ee_pose and ee_twist", Text())
    gripper_joint_name: str = param("gripper", "name in gripper/state", Text())


class WidowXNode(Node):
    def __init__(self, **kwargs):
        super().__init__("widowx", namespace=kwargs.pop("namespace", "widowx"), **kwargs)
        p = declare_config(self, WidowXNodeConfig())
        port = p.port
        bus = BusConfig(port=p.port, baud=p.baud_rate, joint_ids=p.joint_ids, shadow_ids=p.shadow_ids,
                        shadow_of=p.shadow_of, gripper_id=p.gripper_id, arm_mode=p.arm_operating_mode,
                        arm_current_limit_ma=p.arm_current_limit, arm_profile_velocity=p.profile_velocity,
                        arm_profile_acceleration=p.profile_acceleration, gripper_mode=p.gripper_operating_mode,
                        gripper_pwm_limit=p.gripper_pwm_limit, gripper_current_limit_ma=p.gripper_current_limit,
                        reboot_on_error=p.reboot_on_error, latency_timer_ms=p.latency_timer_ms)
        model = _MODEL
        ik = IKConfig(damping=p.ik_damping, position_weight=p.ik_position_weight,
                      orientation_weight=p.ik_orientation_weight, iterations=p.ik_iterations)
        config = WidowXConfig(
            bus=bus, ik=ik, control_rate=p.state_rate, max_joint_velocity=p.max_joint_velocity,
            joint_lower=p.joint_lower, joint_upper=p.joint_upper, watchdog_s=p.watchdog_timeout,
            home=p.home_joint_positions, reset_joint_speed=p.reset_joint_speed,
            gripper_open=p.gripper_open_position, gripper_closed=p.gripper_closed_position,
            gripper_gain=p.gripper_gain, reconnect_backoff=p.reconnect_backoff,
            reconnect_backoff_max=p.reconnect_backoff_max)
        self.frame_id = p.base_frame
        self.joint_names = list(model.joint_names)
        self.gripper_name = p.gripper_joint_name
        if not os.path.exists(port):
            raise DeviceNotFoundError(f"serial port {port} does not exist (U2D2 unplugged? see docs/widowx.md)")

        self.pub_joints = self.create_publisher(JointState, "joint_states", 10)
        self.pub_pose = self.create_publisher(PoseStamped, "ee_pose", 10)
        self.pub_twist = self.create_publisher(TwistStamped, "ee_twist", 10)
        self.pub_gripper = self.create_publisher(JointState, "gripper/state", 10)
        self.pub_status = self.create_publisher(String, "status", 10)
        self._status_lock = threading.Lock()
        self.arm: WidowXArm | None = None
        self.arm = WidowXArm(config, model, on_cycle=self._on_cycle,    # DeviceNotFoundError when absent
                             on_event=lambda kind, fields: self.report(kind, **fields))
        self.create_subscription(PoseStamped, "equilibrium_pose", self._on_target, 10)
        self.create_subscription(Float64, "gripper/command", self._on_gripper, 10)
        # Services in their own group: a reset (seconds) never holds up the topics in a
        # multi-threaded executor (gripper commands still go through while the arm moves home).
        services = MutuallyExclusiveCallbackGroup()
        self.create_service(Trigger, "reset", self._on_reset, callback_group=services)
        self.create_service(Trigger, "recover", self._on_recover, callback_group=services)
        self.allow_loosening = declare_allow_loosening(self)
        self._start_limits = {name: float(self.get_parameter(name).value) for name in TIGHTEN_ONLY}
        self.add_on_set_parameters_callback(self._on_parameters)
        self.report("started", port=port, baud=bus.baud,
                    servos={str(i): {"model": s.model, "mode": MODE_NAMES.get(s.mode, s.mode)}
                            for i, s in self.arm.bus.servos.items()})

    # ------------------------------------------------------------------ parameters
    def _on_parameters(self, params) -> SetParametersResult:
        fixed = [p.name for p in params if p.name not in LIVE_PARAMS and p.name not in LIVE_IK_PARAMS
                 and p.name != "use_sim_time"]
        if fixed:
            return SetParametersResult(successful=False, reason=f"{', '.join(fixed)}: needs a restart "
                                       f"(live: {', '.join([*LIVE_PARAMS, *LIVE_IK_PARAMS])})")
        looser = [f"{p.name} {p.value:g} is looser than the start-up {self._start_limits[p.name]:g}"
                  for p in params if p.name in TIGHTEN_ONLY and not self.allow_loosening
                  and isinstance(p.value, (int, float)) and p.value > self._start_limits[p.name]]
        if looser:
            reason = "; ".join(looser) + " (only tightening at run time; allow_loosening is false)"
            self.get_logger().error(f"refused a parameter change: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        config = self.arm.config
        changes = {LIVE_PARAMS[p.name]: (tuple(p.value) if p.name == "home_joint_positions" else p.value)
                   for p in params if p.name in LIVE_PARAMS}
        ik = {LIVE_IK_PARAMS[p.name]: p.value for p in params if p.name in LIVE_IK_PARAMS}
        try:
            if ik:
                changes["ik"] = replace(config.ik, **ik)   # IKConfig validates itself
            if changes:
                self.arm.update(**changes)
        except (ValueError, TypeError) as err:
            return SetParametersResult(successful=False, reason=str(err))
        if changes:
            self.report("parameters", changed=sorted(p.name for p in params))
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ inputs
    def _on_target(self, msg: PoseStamped) -> None:
        p, q = msg.pose.position, msg.pose.orientation
        try:
            self.arm.set_target((p.x, p.y, p.z), (q.x, q.y, q.z, q.w))
        except ValueError as err:   # the arm holds where it is
            self.report("target_rejected", reason=str(err))

    def _on_gripper(self, msg: Float64) -> None:
        try:
            self.arm.set_gripper(msg.data)
        except ValueError as err:
            self.report("gripper_command_rejected", reason=str(err))

    def _on_reset(self, request, response):
        response.success, response.message = self.arm.reset()
        self.report("service", service="reset", success=response.success, message=response.message)
        return response

    def _on_recover(self, request, response):
        response.success, response.message = self.arm.recover()
        self.report("service", service="recover", success=response.success, message=response.message)
        return response

    # ------------------------------------------------------------------ outputs
    def report(self, event: str, **fields) -> None:
        arm = getattr(self, "arm", None)
        mode = arm.mode if arm is not None else "starting"
        msg = String(data=json.dumps({"event": event, "mode": mode, "stamp": time.time(), **fields}))
        with self._status_lock:
            self.pub_status.publish(msg)

    def _on_cycle(self, s: WidowXState) -> None:
        """Runs on the control thread after each cycle."""
        try:
            self._publish_state(s)
        except Exception as err:   # during shutdown the context goes away under us
            if self.context.ok():
                self.get_logger().error(f"publisher: {type(err).__name__}: {err}")

    def _publish_state(self, s: WidowXState) -> None:
        stamp = self.get_clock().now().to_msg()
        self.pub_joints.publish(joint_state_msg(self.joint_names, s.q, s.dq, s.current, stamp, self.frame_id))
        self.pub_pose.publish(pose_msg(s.pos, s.quat, self.frame_id, stamp))
        self.pub_twist.publish(twist_msg(s.twist, self.frame_id, stamp))
        if np.isfinite(s.gripper):
            self.pub_gripper.publish(joint_state_msg([self.gripper_name], [s.gripper], [s.gripper_velocity],
                                                     [s.gripper_effort], stamp))

    def close(self) -> None:
        """Stops the control loop; the servos keep holding their last goal (torque stays on)."""
        arm = getattr(self, "arm", None)
        if arm is not None:
            arm.close()   # idempotent: run_node and bringup may both close

    def destroy_node(self):
        self.close()
        return super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(WidowXNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
