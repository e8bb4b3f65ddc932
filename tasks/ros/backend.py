"""RosRobot: robot_rl.robot.RobotInterface over the ROS 2 topic contract (real drivers or the twin node).

    robot = RosRobot(RosRobotConfig(namespace="/franka", cameras=("wrist", "front")))
    env = tasks.make_env("pick_cube", obs="pixels", robot=robot)

Cameras: each camera's Image topic (`camera_topics`, default /cameras/<name>/image_raw); a
camera with a crop (`camera_crops`, x0 y0 x1 y1) must publish frames of its `camera_frames`
size (width, height), which are cropped and resized to image_size (tasks/camera_view.py); one
without a crop must publish image_size square frames.

Observation: the latest `ee_pose` is the reference; `ee_twist`, `wrench`, `joint_states`,
`gripper/state` (and `task/state` where it exists) are taken from the few newest messages as
the one whose stamp is closest to it, so the twin's values of one physics tick go together.
Each must be younger than `state_max_age` (wall/ROS clock now minus header stamp) and within
`sync_tolerance` of the reference; images (`/cameras/<name>/image_raw`, rgb8, image_size
square) younger than `image_max_age`. Otherwise `wait_step` waits up to `data_timeout` for
fresh data and then raises StaleDataError naming the topics and their ages - a policy never
acts on old data. Stamps and this clock must agree: one machine, or NTP/PTP-synced machines.

Actions: `command` publishes `equilibrium_pose` (PoseStamped, base_frame) and
`gripper/command` (Float64); `wait_step` sleeps to the next tick of the control rate (a
schedule, so the env runs at control_hz whatever the policy's compute time; when late it
restarts from now) and returns the newest observation.

Reset, reset_mode="service" (the twin): the options of RobotInterface.reset (TCP pose,
gripper, object placement for the twin) go out as a JSON object with a fresh "id" on
`reset/options` (latched), then the `reset` service (std_srvs/Trigger) is called; its answer
names the id it used ("id=..."), and a stale one (the options had not arrived) is retried. A
driver whose answer names no id resets to its own home pose (the Franka driver). Then it
waits for state stamped after the reset.

reset_mode="cartesian" (a real arm): the TCP is driven to the options' tcp_pos/tcp_quat (the
task's reset pose plus its random range) through the impedance controller: the equilibrium
pose moves there in a straight line at `reset_speed`, then holds until the TCP is within
`reset_tolerance_pos` / `reset_tolerance_rot` of it and nearly still. With `gains_node` set
(e.g. "/franka/controller", or "/franka/twin"), that node's impedance parameters are switched
to the precision profile (controllers.impedance.ImpedanceConfig.precision: wide clips, stiffer
rotation) plus an integral term (`reset_translational_ki`), then the task's `reset_gains`, for
the move, and set back afterwards. Measured in the twin (8 resets after random motions, 2 loaded cores): without the
integral term the TCP settles ~4 mm off; with ki 1000 it reaches 2 mm in 1.6 s on average,
with ki 2000 1 mm in 1.9 s. A move that does not arrive within
`reset_timeout` falls back to the `reset` service (the driver's joint home, the recovery path)
and is tried once more; a second miss raises TimeoutError naming the distance left.
`recover` calls the `recover` service.

Threads: the node spins on its own executor thread (tasks/ros/node_thread.py), in a private Context
unless one is given; `close()` stops it.
"""
from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
from rclpy.context import Context
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64, String
from std_srvs.srv import Trigger

from robot_rl.controllers.node import COMMAND_QOS, LATCHED_QOS, pose_from_msg, pose_msg, stamp_seconds
from robot_rl.tasks.ros.node_thread import NodeThread
from robot_rl.closing import Closing
from robot_rl.robot import RobotState


class StaleDataError(RuntimeError):
    """Observation data is missing or older than allowed; nothing was acted on."""

    aborts_episode = True   # robot_rl.actor: abort and mark the episode, the arm holds


@dataclass
class RosRobotConfig:
    namespace: str = "/franka"
    cameras: tuple[str, ...] = ()           # the cameras to read (names, as the task's)
    image_size: int = 128
    camera_topics: dict = field(default_factory=dict)   # name -> Image topic ('' / absent: /cameras/<name>/image_raw)
    camera_crops: dict = field(default_factory=dict)    # name -> (x0, y0, x1, y1) in its frame's pixels
    camera_frames: dict = field(default_factory=dict)   # name -> (width, height) it publishes
    control_hz: float = 10.0
    base_frame: str = "fr3_link0"
    task_state: bool = True                 # read the twin's task/state (absent on hardware)
    wrench_topic: str = "wrench"            # the wrench observed: the arm's estimate, or an external
                                            # F/T sensor's ("ft/wrench", rig kind ft); the task says
    state_max_age: float = 0.25             # s; ~25 periods of a 100 Hz driver (loaded machines)
    image_max_age: float = 0.4              # s; ~6 periods of a 15 Hz camera
    sync_tolerance: float = 0.05            # s between a state topic and ee_pose
    data_timeout: float = 3.0               # s to wait for fresh data before StaleDataError
    service_timeout: float = 10.0           # s for reset / recover
    connect_timeout: float = 15.0           # s for the services to appear at start
    reset_mode: str = "service"             # service: the reset service places the TCP (twin);
                                            # cartesian: moved there by the controller (hardware)
    reset_speed: float = 0.1                # m/s of the equilibrium pose in a Cartesian reset
    reset_tolerance_pos: float = 0.005      # m: a Cartesian reset has arrived within this ...
    reset_tolerance_rot: float = 0.05       # rad: ... and this of the reset pose
    reset_timeout: float = 10.0             # s for a Cartesian move to arrive
    gains_node: str = ""                    # node whose impedance parameters switch to precision
                                            # for the reset ('' = keep the gains)
    reset_translational_ki: float = 1000.0  # N/(m s) integral gain with the reset gains: removes
                                            # the spring's steady offset (~4 mm in the twin without;
                                            # the integral force is clamped by integral_limit, 10 N)
    reset_gains: dict = field(default_factory=dict)  # more ImpedanceConfig fields for the reset (the task's)


STATE_TOPICS = {"ee_pose": PoseStamped, "ee_twist": TwistStamped, "wrench": WrenchStamped,
                 "joint_states": JointState, "gripper/state": JointState}
_HISTORY = 20   # newest messages kept per state topic, for matching stamps


class RosRobot(Closing):
    """RobotInterface over ROS 2 topics; see the module docstring."""

    def __init__(self, config: RosRobotConfig | None = None, context: Context | None = None):
        self.config = cfg = config or RosRobotConfig()
        if cfg.control_hz <= 0:
            raise ValueError("control_hz must be > 0")
        if cfg.reset_mode not in ("service", "cartesian"):
            raise ValueError(f"reset_mode must be 'service' or 'cartesian', got {cfg.reset_mode!r}")
        for name in ("reset_speed", "reset_tolerance_pos", "reset_tolerance_rot", "reset_timeout"):
            if not getattr(cfg, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(cfg, name)}")
        self.control_hz = float(cfg.control_hz)
        ns = cfg.namespace.rstrip("/") or "/"
        self._spinner = NodeThread("robot_env", ns, context, start=False)   # spun once wired
        self.context, self.node = self._spinner.context, self._spinner.node
        self._cond = threading.Condition()
        self._history: dict[str, deque] = {t: deque(maxlen=_HISTORY) for t in STATE_TOPICS}
        if cfg.task_state:
            self._history["task/state"] = deque(maxlen=_HISTORY)
        self._images: dict[str, Image] = {}
        for topic, msg_type in STATE_TOPICS.items():
            name = cfg.wrench_topic if topic == "wrench" else topic     # kept under its role's key
            self.node.create_subscription(msg_type, name, self._keeper(topic), 10)
        if cfg.task_state:
            self.node.create_subscription(JointState, "task/state", self._keeper("task/state"), 10)
        for cam in cfg.cameras:
            self.node.create_subscription(Image, self._camera_topic(cam), self._image_keeper(cam),
                                          qos_profile_sensor_data)
        self._pose_pub = self.node.create_publisher(PoseStamped, "equilibrium_pose", COMMAND_QOS)
        self._gripper_pub = self.node.create_publisher(Float64, "gripper/command", COMMAND_QOS)
        self._options_pub = self.node.create_publisher(String, "reset/options", LATCHED_QOS)
        self._reset_client = self.node.create_client(Trigger, "reset")
        self._recover_client = self.node.create_client(Trigger, "recover")
        self._spinner.start()
        self._next_tick: float | None = None
        self._latest_task: dict[str, np.ndarray] = {}
        try:
            self._wait_for_services()
        except BaseException:
            self.close()
            raise

    # ---------------------------------------------------------------- plumbing
    def _keeper(self, topic: str):
        def keep(msg) -> None:
            with self._cond:
                self._history[topic].append(msg)
                self._cond.notify_all()
        return keep

    def _image_keeper(self, cam: str):
        def keep(msg: Image) -> None:
            with self._cond:
                self._images[cam] = msg
                self._cond.notify_all()
        return keep

    def _camera_topic(self, cam: str) -> str:
        return self.config.camera_topics.get(cam) or f"/cameras/{cam}/image_raw"

    def _now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _wait_for_services(self) -> None:
        deadline = time.monotonic() + self.config.connect_timeout
        for client in (self._reset_client, self._recover_client):
            while not client.wait_for_service(timeout_sec=0.1):
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"no {self._service_name(client)} service within {self.config.connect_timeout} s: is the "
                        f"driver or twin node running in {self.config.namespace} (same ROS_DOMAIN_ID)?")

    def _service_name(self, client) -> str:
        return f"{self.config.namespace.rstrip('/')}/{client.srv_name}"

    def _call(self, client, timeout: float) -> Trigger.Response:
        future = client.call_async(Trigger.Request())
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout):
            client.remove_pending_request(future)
            raise TimeoutError(f"{self._service_name(client)} did not answer within {timeout} s")
        return future.result()

    # ---------------------------------------------------------------- observation
    def _gather(self, after: float | None = None) -> RobotState | None:
        """The synchronized state if everything is fresh (and stamped after `after`), else None;
        sets self._stale to the reasons."""
        cfg, now = self.config, self._now()
        reasons = []
        with self._cond:
            poses = self._history["ee_pose"]
            if not poses:
                self._stale = ["ee_pose: no message yet"]
                return None
            ref = poses[-1]
            t_ref = stamp_seconds(ref.header.stamp)
            if now - t_ref > cfg.state_max_age:
                reasons.append(f"ee_pose is {now - t_ref:.3f} s old (max {cfg.state_max_age})")
            if after is not None and t_ref <= after:
                reasons.append("ee_pose: nothing stamped after the reset yet")
            picked = {"ee_pose": ref}
            for topic, history in self._history.items():
                if topic == "ee_pose":
                    continue
                if not history:
                    hint = (" (hardware has none: RosRobotConfig(task_state=False))"
                            if topic == "task/state" else "")
                    reasons.append(f"{topic}: no message yet{hint}")
                    continue
                msg = min(history, key=lambda m: abs(stamp_seconds(m.header.stamp) - t_ref))
                gap = abs(stamp_seconds(msg.header.stamp) - t_ref)
                if gap > cfg.sync_tolerance:
                    reasons.append(f"{topic} is {gap:.3f} s apart from ee_pose (max {cfg.sync_tolerance})")
                picked[topic] = msg
            images = {}
            for cam in cfg.cameras:
                msg = self._images.get(cam)
                if msg is None:
                    reasons.append(f"{self._camera_topic(cam)}: no message yet")
                    continue
                age = now - stamp_seconds(msg.header.stamp)
                if age > cfg.image_max_age or (after is not None and stamp_seconds(msg.header.stamp) <= after):
                    reasons.append(f"{self._camera_topic(cam)} is {age:.3f} s old (max {cfg.image_max_age})")
                images[cam] = msg
        self._stale = reasons
        if reasons:
            return None
        return self._state(picked, images, t_ref)

    def _state(self, msgs: dict, images: dict[str, Image], stamp: float) -> RobotState:
        pos, quat = pose_from_msg(msgs["ee_pose"])
        if msgs["ee_pose"].header.frame_id != self.config.base_frame:
            raise ValueError(f"ee_pose is in frame {msgs['ee_pose'].header.frame_id!r}, "
                             f"expected the base frame {self.config.base_frame!r}")
        tw, wr = msgs["ee_twist"].twist, msgs["wrench"].wrench
        js, gs = msgs["joint_states"], msgs["gripper/state"]
        if not gs.position:
            raise ValueError("gripper/state has no position")
        state = RobotState(
            tcp_pos=pos, tcp_quat=quat / np.linalg.norm(quat),
            tcp_vel=np.array([tw.linear.x, tw.linear.y, tw.linear.z,
                              tw.angular.x, tw.angular.y, tw.angular.z]),
            tcp_force=np.array([wr.force.x, wr.force.y, wr.force.z]),
            tcp_torque=np.array([wr.torque.x, wr.torque.y, wr.torque.z]),
            gripper=float(gs.position[0]),
            q=np.array(js.position, dtype=float), dq=np.array(js.velocity, dtype=float),
            images={cam: self._decode(cam, msg) for cam, msg in images.items()},
            stamp=stamp)
        if "task/state" in msgs:
            self._latest_task = _decode_task_state(msgs["task/state"])
        return state

    def _decode(self, cam: str, msg: Image) -> np.ndarray:
        size = self.config.image_size
        crop = self.config.camera_crops.get(cam)
        width, height = tuple(self.config.camera_frames[cam]) if crop is not None else (size, size)
        if msg.encoding != "rgb8" or msg.height != height or msg.width != width or msg.step != 3 * width:
            raise ValueError(f"{self._camera_topic(cam)}: expected rgb8 {width}x{height}, got "
                             f"{msg.encoding} {msg.width}x{msg.height} (step {msg.step})")
        frame = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(height, width, 3)
        if crop is None:
            return frame.copy()
        from robot_rl.tasks.camera_view import crop_and_resize
        return crop_and_resize(frame, tuple(crop), size)

    def observe(self, after: float | None = None, timeout: float | None = None) -> RobotState:
        """The newest synchronized state, waiting up to `timeout` (data_timeout) for fresh data."""
        deadline = time.monotonic() + (self.config.data_timeout if timeout is None else timeout)
        while True:
            state = self._gather(after)
            if state is not None:
                return state
            left = deadline - time.monotonic()
            if left <= 0:
                raise StaleDataError(f"{self.config.namespace}: no fresh synchronized observation within "
                                     f"{self.config.data_timeout} s: " + "; ".join(self._stale))
            with self._cond:
                self._cond.wait(min(left, 0.02))

    # ---------------------------------------------------------------- RobotInterface
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> RobotState:
        del seed  # the env samples the options; the driver/twin applies them
        if self.config.reset_mode == "cartesian":
            return self._cartesian_reset(options or {})
        return self._service_reset(options)

    def _service_reset(self, options: dict[str, Any] | None) -> RobotState:
        reset_id = uuid.uuid4().hex[:12]
        payload = {k: (np.asarray(v).tolist() if isinstance(v, (np.ndarray, list, tuple)) else v)
                   for k, v in (options or {}).items()}
        payload["id"] = reset_id
        self._options_pub.publish(String(data=json.dumps(payload)))
        deadline = time.monotonic() + self.config.service_timeout
        while True:
            answer = self._call(self._reset_client, self.config.service_timeout)
            if not answer.success:
                raise RuntimeError(f"{self.config.namespace}/reset failed: {answer.message}")
            used = re.search(r"\bid=(\S+)", answer.message)
            if used is None or used.group(1) == reset_id:
                break   # our options were used, or a driver without reset options (hardware home)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.config.namespace}/reset never used our options "
                                   f"(id {reset_id}); last answer {answer.message!r}")
            time.sleep(0.05)   # the latched options had not arrived yet: reset again with them
        done = self._now()
        state = self.observe(after=done)
        self._next_tick = time.monotonic() + 1.0 / self.control_hz
        return state

    # ---------------------------------------------------------------- Cartesian reset
    def _cartesian_reset(self, options: dict[str, Any]) -> RobotState:
        if "tcp_pos" not in options or "tcp_quat" not in options:
            raise ValueError(f"a Cartesian reset needs tcp_pos and tcp_quat options, got {sorted(options)}")
        pos = np.asarray(options["tcp_pos"], dtype=float)
        quat = np.asarray(options["tcp_quat"], dtype=float)
        gripper = float(options.get("gripper", 0.0))
        with self._reset_gains():
            missed = self._move_to(pos, quat, gripper)
            if missed:
                # The joint home is the recovery path (e.g. the arm was blocked or far off).
                self.node.get_logger().warning(f"Cartesian reset missed ({missed}); via the joint home")
                self._service_reset({})
                missed = self._move_to(pos, quat, gripper)
            if missed:
                raise TimeoutError(f"{self.config.namespace}: Cartesian reset to {np.round(pos, 3).tolist()} "
                                   f"did not arrive within {self.config.reset_timeout} s: {missed}")
        state = self.observe(after=self._now())
        self._next_tick = time.monotonic() + 1.0 / self.control_hz
        return state

    def _move_to(self, pos: np.ndarray, quat: np.ndarray, gripper: float) -> str:
        """Moves the equilibrium pose to (pos, quat) in a straight line and waits for the TCP;
        '' when it arrived, else what is left (distance, angle)."""
        from robot_rl.controllers.rotations import exp_so3, matrix_to_quat, quat_to_matrix as quat_to_rot

        cfg = self.config
        start = self.observe()
        p0, r0, r1 = start.tcp_pos, quat_to_rot(start.tcp_quat), quat_to_rot(quat)
        w = _log_so3(r0.T @ r1)
        duration = max(np.linalg.norm(pos - p0) / cfg.reset_speed, np.linalg.norm(w) / (10 * cfg.reset_speed))
        period = 1.0 / max(self.control_hz, 20.0)   # a smooth reference for the controller's filter
        t0 = time.monotonic()
        deadline = t0 + duration + cfg.reset_timeout
        while True:
            s = min(1.0, (time.monotonic() - t0) / duration) if duration > 0 else 1.0
            self.command(p0 + s * (pos - p0), matrix_to_quat(r0 @ exp_so3(s * w)), gripper)
            time.sleep(period)
            state = self.observe()
            dist = float(np.linalg.norm(state.tcp_pos - pos))
            angle = float(np.linalg.norm(_log_so3(quat_to_rot(state.tcp_quat).T @ r1)))
            still = float(np.linalg.norm(state.tcp_vel[:3])) < 0.01
            if s >= 1.0 and dist <= cfg.reset_tolerance_pos and angle <= cfg.reset_tolerance_rot and still:
                return ""
            if time.monotonic() > deadline:
                return (f"{dist * 1000:.1f} mm (tolerance {cfg.reset_tolerance_pos * 1000:.1f}) and "
                        f"{angle:.3f} rad (tolerance {cfg.reset_tolerance_rot}) away")

    def _reset_gains(self):
        """Context: the gains node's impedance parameters at the precision profile, restored after."""
        import contextlib

        @contextlib.contextmanager
        def switched():
            if not self.config.gains_node:
                yield
                return
            from dataclasses import fields

            from rclpy.parameter import Parameter
            from rclpy.parameter_client import AsyncParameterClient

            from robot_rl.controllers.impedance import ImpedanceConfig

            client = AsyncParameterClient(self.node, self.config.gains_node)
            if not client.wait_for_services(timeout_sec=self.config.connect_timeout):
                raise TimeoutError(f"gains_node {self.config.gains_node}: no parameter services "
                                   f"within {self.config.connect_timeout} s")
            task_gains = {k: tuple(v) if isinstance(v, list) else v for k, v in self.config.reset_gains.items()}
            precise = ImpedanceConfig.precision().replace(
                **{"translational_ki": self.config.reset_translational_ki, **task_gains})
            names = [f.name for f in fields(ImpedanceConfig) if f.name != "dt"]
            reply = self._wait(client.get_parameters(names), f"{self.config.gains_node} get_parameters")
            current = [Parameter.from_parameter_msg(_named(n, v)) for n, v in zip(names, reply.values)]
            wanted = [Parameter(n, value=(list(map(float, v)) if isinstance(v, tuple) else float(v)))
                      for n, v in ((n, getattr(precise, n)) for n in names)]
            self._set_parameters(client, wanted)
            try:
                yield
            finally:
                self._set_parameters(client, current)
        return switched()

    def _set_parameters(self, client, params) -> None:
        reply = self._wait(client.set_parameters(params), f"{self.config.gains_node} set_parameters")
        refused = [f"{p.name}: {r.reason}" for p, r in zip(params, reply.results) if not r.successful]
        if refused:
            raise RuntimeError(f"{self.config.gains_node} refused the reset gains: {'; '.join(refused)}")

    def _wait(self, future, what: str):
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        if not done.wait(self.config.service_timeout):
            raise TimeoutError(f"{what} did not answer within {self.config.service_timeout} s")
        return future.result()

    def command(self, pos: np.ndarray, quat: np.ndarray, gripper: float) -> None:
        pos, quat = np.asarray(pos, dtype=float), np.asarray(quat, dtype=float)
        if pos.shape != (3,) or quat.shape != (4,):
            raise ValueError(f"bad command shapes pos {pos.shape}, quat {quat.shape}")
        if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(quat)) and np.isfinite(gripper)):
            raise ValueError("non-finite command; nothing was sent")
        stamp = self.node.get_clock().now().to_msg()
        self._pose_pub.publish(pose_msg(pos, quat / np.linalg.norm(quat), self.config.base_frame, stamp))
        self._gripper_pub.publish(Float64(data=float(np.clip(gripper, 0.0, 1.0))))

    def wait_step(self) -> RobotState:
        now = time.monotonic()
        if self._next_tick is None or now - self._next_tick > 1.0 / self.control_hz:
            self._next_tick = now + 1.0 / self.control_hz   # first step, or late: restart the schedule
        time.sleep(max(0.0, self._next_tick - now))
        self._next_tick += 1.0 / self.control_hz
        return self.observe()

    def recover(self) -> None:
        answer = self._call(self._recover_client, self.config.service_timeout)
        if not answer.success:
            raise RuntimeError(f"{self.config.namespace}/recover failed: {answer.message}")

    def task_state(self) -> dict[str, np.ndarray]:
        """The twin's ground truth matching the last observation; {} on hardware."""
        return {k: v.copy() for k, v in self._latest_task.items()}

    def close(self) -> None:
        self._spinner.close()


def _log_so3(r: np.ndarray) -> np.ndarray:
    """Rotation vector of a rotation matrix (the inverse of controllers.rotations.exp_so3)."""
    cos = np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)
    angle = float(np.arccos(cos))
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    if angle < 1e-9:
        return axis / 2.0
    if np.pi - angle < 1e-6:      # half turn: the axis from the diagonal
        axis = np.sqrt(np.maximum((np.diag(r) + 1.0) / 2.0, 0.0))
        return angle * axis / np.linalg.norm(axis)
    return angle * axis / (2.0 * np.sin(angle))


def _named(name: str, value):
    from rcl_interfaces.msg import Parameter as ParameterMsg
    return ParameterMsg(name=name, value=value)


def _decode_task_state(msg: JointState) -> dict[str, np.ndarray]:
    """task/state names are '<key>/<index>'; the values are regrouped into arrays per key."""
    grouped: dict[str, list[tuple[int, float]]] = {}
    for name, value in zip(msg.name, msg.position):
        key, _, index = name.rpartition("/")
        grouped.setdefault(key, []).append((int(index), value))
    return {k: np.array([v for _, v in sorted(items)]) for k, items in grouped.items()}


def camera_options(spec: Any) -> dict[str, Any]:
    """The RosRobotConfig fields that carry a task's cameras: topics, crops, frame sizes, image size."""
    return dict(image_size=spec.image_size, camera_topics=dict(spec.camera_topics),
                camera_crops=dict(spec.camera_crops), camera_frames=dict(spec.camera_frames))


def make_ros_env(task: str, obs: str = "state", seed: int | None = None, namespace: str | None = None,
                 context: Context | None = None, task_state: bool = True,
                 robot_options: dict[str, Any] | None = None, **overrides: Any):
    """robot_rl.tasks.make_env over ROS: a RobotEnv whose robot is a RosRobot matching the task (its
    namespace unless `namespace` is given, its cameras in pixels mode with their topics and
    crops, image size, control rate, reset gains). task_state: read the twin's ground truth
    (the twin tasks' reward and obs="state" need it); False on hardware. robot_options: more
    RosRobotConfig fields (e.g. reset_mode="cartesian", gains_node=...)."""
    from robot_rl import tasks

    spec = tasks.make_spec(task, **overrides)
    if obs == "state" and spec.object_feature_dim and not task_state:
        raise ValueError(f"obs=state for {task} needs the twin's ground truth (object poses), which a "
                         "real robot does not publish: use obs=pixels over ROS")
    fields = dict(namespace=namespace or spec.namespace, control_hz=spec.control_hz,
                  cameras=spec.cameras if obs == "pixels" else (), task_state=task_state,
                  wrench_topic=spec.wrench_topic, reset_gains=dict(spec.reset_gains),
                  **camera_options(spec))
    fields.update(robot_options or {})
    config = RosRobotConfig(**fields)
    return tasks.make_env(task, obs=obs, seed=seed, robot=RosRobot(config, context=context), **overrides)
