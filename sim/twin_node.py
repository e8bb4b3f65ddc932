"""The twin as a ROS 2 node: the MuJoCo twin behind exactly the topics the hardware drivers publish.

Under the robot's namespace (`/franka` by default), per the topic contract in DESIGN.md:

    publishes  joint_states (JointState, effort = law torque), ee_pose (PoseStamped, TCP in
               base_frame), ee_twist (TwistStamped, base frame), wrench (WrenchStamped,
               external wrench at the TCP, base frame), gripper/state (JointState, position
               0 open .. 1 closed)                                         at `state_rate` (100 Hz)
               /cameras/<name>/image_raw (Image rgb8) + camera_info,
               frame `<name>_color_optical_frame`                          at `camera_rate` (15 Hz)
               task/state (JointState: "<key>/<i>" -> value, the twin's ground truth of the
               task objects, e.g. cube_pos/0..2; a debug topic hardware does not have)
    subscribes equilibrium_pose (PoseStamped; or `equilibrium_topic`), gripper/command (Float64 0..1),
               reset/options (String, JSON object of RobotInterface.reset options + "id";
               latched: the options the next `reset` uses)
    services   reset, recover (std_srvs/Trigger); reset answers "reset id=<id>" naming the options used
    parameters the impedance law's gains, clips and limits (live: a change calls set_config;
               checked, and tighten-only relative to the start-up values unless started with
               allow_loosening: true, as the controller node - controllers/limits.py),
               task, robot_model, cameras, image_size, state_rate, camera_rate, base_frame, seed

robot_model "widowx" (or a widowx_* task) runs the WidowX 250 twin (sim/widowx.py) instead of
the FR3: the same topics, with the equilibrium pose going through the DLS IK to the servo PIDs;
joint_states then carries the six WidowX joints and their servo torques, and the impedance
parameters do not apply (setting one is refused). Run it under /widowx, e.g.
    robot-rl-twin --ros-args -r __ns:=/widowx -p robot_model:=widowx -p base_frame:=wx250s/base_link

Real time: a dedicated physics thread runs the twin in chunks of 1/state_rate s of physics
(twin.wait_step with n_substeps set to the chunk), publishes after each chunk, and sleeps to
the wall-clock deadline of the next chunk, so sim time advances with wall time. If the
machine falls more than `max_lag` behind, the schedule restarts from now (sim time slips, it
never bursts to catch up). The thread owns the renderer (GL contexts are per thread) and stops
through an Event in `close()`. Subscriptions and services run on the executor and touch the
twin under the same lock, between chunks.

Malformed commands (NaN, non-unit quaternion, wrong frame, gripper outside 0..1) are logged
and dropped; the law keeps the last target, so the robot holds. Watchdog (as the Franka
driver): no equilibrium_pose for `watchdog_timeout` s after one arrived -> the target becomes
the current pose, once, until commands resume.
"""
from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64, String
from std_srvs.srv import Trigger

from robot_rl.controllers.impedance import ImpedanceConfig
from robot_rl.controllers.limits import loosenings
from robot_rl.controllers.node import (COMMAND_QOS, LATCHED_QOS, check_pose, declare_allow_loosening,
                              declare_impedance_parameters, declare_reset_envelope,
                              impedance_from_parameters, joint_state_msg, pose_msg, twist_msg, wrench_msg,
                              log_descriptor_refusals, refuse_change)
from robot_rl.drivers.ros_common import declare_config, run_node
from robot_rl.config import Range, Text, param
from robot_rl.sim.scene import ARM_JOINTS


@dataclass
class TwinNodeConfig:
    """The twin node's own ROS 2 parameters (the law's gains, the reset envelope and
    allow_loosening are declared as the controller node declares them)."""
    task: str = param("pick_cube", "task whose scene the twin builds (`robot-rl tasks` lists them)", Text())
    robot_model: str = param("", "'' (as the task says), 'franka' or 'widowx': the robot the twin "
                             "simulates (picks the task's variant)", Text(allow_empty=True))
    cameras: list[str] = param(["wrist", "front"], "cameras to publish ([''] for none)", Text(allow_empty=True))
    image_size: int = param(128, "published image width = height (px)", Range(1, 4096))
    state_rate: float = param(100.0, "state topics rate and physics chunk (Hz)", Range(0.0, 10_000.0, low_open=True))
    camera_rate: float = param(15.0, "camera rate (Hz)", Range(0.0, 1000.0, low_open=True))
    base_frame: str = param("fr3_link0", "frame of poses, twists and wrenches", Text())
    max_lag: float = param(0.1, "s behind wall time before the schedule restarts", Range(0.0, 3600.0, low_open=True))
    watchdog_timeout: float = param(0.5, "no equilibrium_pose for this long (s) -> hold the current pose "
                                    "(0: off)", Range(0.0, 3600.0))
    seed: int = param(0, "seed of the first reset's random placement", Range(0, 2 ** 32 - 1))
    equilibrium_topic: str = param("equilibrium_pose", "equilibrium pose input (controller/equilibrium_pose "
                                   "behind a controller node)", Text())


class TwinNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__("twin", **node_kwargs)
        from robot_rl import tasks  # the task decides the scene (objects) and the reset distribution

        try:
            p = declare_config(self, TwinNodeConfig())
        except ValueError as err:  # one line naming the parameter; the twin never starts
            raise ValueError(f"twin {self.get_fully_qualified_name()}: {err}") from None
        task = tasks.task_name_for(p.task, p.robot_model or None)
        self.cameras = tuple(c for c in p.cameras if c)
        self.image_size, self.state_rate, self.camera_rate = p.image_size, p.state_rate, p.camera_rate
        self.base_frame, self.max_lag, self.watchdog_timeout = p.base_frame, p.max_lag, p.watchdog_timeout
        seed, eq_topic = p.seed, p.equilibrium_topic

        self.spec = tasks.make_spec(task)
        # The same rules as the controller node's: checked at start-up, tighten-only at run time
        # (relative to these start-up values) unless started with allow_loosening.
        try:
            self.impedance = declare_impedance_parameters(self, ImpedanceConfig())
            self.start_impedance = declare_reset_envelope(self, self.impedance)
            self.allow_loosening = declare_allow_loosening(self)
        except ValueError as err:  # one line naming the parameter; the twin never starts
            raise ValueError(f"twin {self.get_fully_qualified_name()}: {err}") from None
        # Cameras are rendered on demand (twin.render) at their own rate, not in every chunk.
        self.robot_model = getattr(self.spec, "robot", "franka")
        self.twin = tasks.make_twin(self.spec, obs="state",
                                    impedance=None if self.robot_model == "widowx" else self.impedance)
        self.joint_names = tuple(getattr(self.twin, "arm_joints", ARM_JOINTS))
        timestep = self.twin.model.opt.timestep
        self.twin.n_substeps = max(1, int(round(1.0 / (self.state_rate * timestep))))
        self.chunk_s = self.twin.n_substeps * timestep
        self.lock = threading.Lock()
        self.twin.reset(options=self.spec.sample_reset(np.random.default_rng(seed)))
        self.reset_options: dict = {}
        self.rejected = 0            # malformed commands dropped (tests and diagnostics read it)
        self.holds = 0               # watchdog holds
        self._last_command: float | None = None   # time.monotonic() of the last accepted pose
        self.overruns = 0            # schedule restarts because the machine fell behind

        self.add_on_set_parameters_callback(self._on_parameters)
        log_descriptor_refusals(self)
        pub = self.create_publisher
        self.joint_pub = pub(JointState, "joint_states", 10)
        self.pose_pub = pub(PoseStamped, "ee_pose", 10)
        self.twist_pub = pub(TwistStamped, "ee_twist", 10)
        self.wrench_pub = pub(WrenchStamped, "wrench", 10)
        self.gripper_pub = pub(JointState, "gripper/state", 10)
        self.task_pub = pub(JointState, "task/state", 10)
        self.camera_pubs = {cam: (pub(Image, f"/cameras/{cam}/image_raw", qos_profile_sensor_data),
                                  pub(CameraInfo, f"/cameras/{cam}/camera_info", qos_profile_sensor_data))
                            for cam in self.cameras}
        self.create_subscription(PoseStamped, eq_topic, self._on_equilibrium, COMMAND_QOS)
        self.create_subscription(Float64, "gripper/command", self._on_gripper, COMMAND_QOS)
        self.create_subscription(String, "reset/options", self._on_reset_options, LATCHED_QOS)
        self.create_service(Trigger, "reset", self._on_reset)
        self.create_service(Trigger, "recover", self._on_recover)

        self._stop = threading.Event()
        self._started = threading.Event()      # first chunk published (renderer works)
        self._fault: str | None = None         # why the physics thread stopped, if it did
        self._thread = threading.Thread(target=self._physics_loop, name="twin-physics", daemon=True)
        self._thread.start()
        # Fail here, with the reason (e.g. no GL for the cameras), not silently in the thread.
        while not self._started.wait(0.05):
            if not self._thread.is_alive():
                self.close()
                raise RuntimeError(f"the twin's physics thread failed to start: {self._fault}")
        self.get_logger().info(
            f"twin of {task} in {self.get_namespace()}: state {self.state_rate:g} Hz "
            f"({self.twin.n_substeps} physics steps a chunk), cameras {list(self.cameras)} "
            f"at {self.camera_rate:g} Hz")

    # ---------------------------------------------------------------- physics thread
    def _physics_loop(self) -> None:
        next_chunk = time.monotonic()
        next_frame = next_chunk
        try:
            while not self._stop.is_set() and self.context.ok():
                render = bool(self.cameras) and time.monotonic() >= next_frame
                with self.lock:
                    try:
                        state = self.twin.wait_step()
                    except ValueError as err:  # the law refused a tick: it sent the hold torque
                        self.get_logger().error(f"impedance law fault, holding: {err}",
                                                throttle_duration_sec=1.0)
                        self._stop.wait(self.chunk_s)
                        continue
                    held = self._watchdog(state)
                    truth = self.twin.task_state()
                    torque = self.twin.joint_efforts()
                    images = {c: self.twin.render(c, self.image_size) for c in self.cameras} if render else {}
                if held:
                    self.get_logger().warn(f"no equilibrium_pose for {self.watchdog_timeout} s: "
                                           "holding the current pose until commands resume")
                stamp = self.get_clock().now().to_msg()
                self._publish_state(state, truth, torque, stamp)
                self._started.set()
                if render:
                    self._publish_images(images, stamp)
                    next_frame += 1.0 / self.camera_rate
                    if time.monotonic() - next_frame > self.max_lag:
                        next_frame = time.monotonic()
                next_chunk += self.chunk_s
                wait = next_chunk - time.monotonic()
                if wait > 0.0:
                    self._stop.wait(wait)
                elif wait < -self.max_lag:  # fell behind: slip sim time rather than burst
                    self.overruns += 1
                    next_chunk = time.monotonic()
        except Exception as err:
            if not self.context.ok():  # shut down under us (Ctrl-C in main): a normal stop
                return
            # The node must say why its data stopped, not go quiet.
            self._fault = f"{type(err).__name__}: {err}"
            self.get_logger().fatal(f"physics thread stopped: {self._fault}")
            raise
        finally:
            self.twin.close()   # the renderer's GL context belongs to this thread

    def _watchdog(self, state) -> bool:
        """As the Franka driver: when commands stop, the target becomes the current pose (through
        the law's filter, so no torque step) instead of a stale target. Under the lock."""
        last = self._last_command
        if last is None or self.watchdog_timeout <= 0 or time.monotonic() - last <= self.watchdog_timeout:
            return False
        self.twin.controller.set_target(state.tcp_pos, state.tcp_quat)
        self._last_command = None
        self.holds += 1
        return True

    def _publish_state(self, state, truth: dict, torque: np.ndarray, stamp) -> None:
        frame = self.base_frame
        self.joint_pub.publish(joint_state_msg(self.joint_names, state.q, state.dq, torque, stamp, frame))
        self.pose_pub.publish(pose_msg(state.tcp_pos, state.tcp_quat, frame, stamp))
        self.twist_pub.publish(twist_msg(state.tcp_vel, frame, stamp))
        self.wrench_pub.publish(wrench_msg(np.concatenate([state.tcp_force, state.tcp_torque]), frame, stamp))
        self.gripper_pub.publish(joint_state_msg(["gripper"], [state.gripper], [], [], stamp))
        ts = JointState()
        ts.header.stamp, ts.header.frame_id = stamp, self.base_frame
        for key, value in truth.items():
            for i, v in enumerate(np.ravel(value)):
                ts.name.append(f"{key}/{i}")
                ts.position.append(float(v))
        self.task_pub.publish(ts)

    def _publish_images(self, images: dict, stamp) -> None:
        for cam, rgb in images.items():
            image_pub, info_pub = self.camera_pubs[cam]
            msg = Image()
            msg.header.stamp, msg.header.frame_id = stamp, f"{cam}_color_optical_frame"
            msg.height, msg.width = rgb.shape[:2]
            msg.encoding, msg.is_bigendian, msg.step = "rgb8", 0, rgb.shape[1] * 3
            msg.data = np.ascontiguousarray(rgb).tobytes()
            image_pub.publish(msg)
            info_pub.publish(self._camera_info(cam, msg.header))

    def _camera_info(self, cam: str, header) -> CameraInfo:
        """Pinhole intrinsics of the MuJoCo camera (square pixels, fovy vertical), no distortion."""
        size = self.image_size
        f = 0.5 * size / math.tan(math.radians(float(self.twin.model.cam(cam).fovy[0])) / 2.0)
        info = CameraInfo()
        info.header = header
        info.height = info.width = size
        info.distortion_model = "plumb_bob"
        info.d = [0.0] * 5
        c = (size - 1) / 2.0
        info.k = [f, 0.0, c, 0.0, f, c, 0.0, 0.0, 1.0]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [f, 0.0, c, 0.0, 0.0, f, c, 0.0, 0.0, 0.0, 1.0, 0.0]
        return info

    # ---------------------------------------------------------------- commands
    def _reject(self, topic: str, why: str) -> None:
        self.rejected += 1
        self.get_logger().error(f"{topic} rejected, holding the last target: {why}")

    def _on_equilibrium(self, msg: PoseStamped) -> None:
        try:
            pos, quat = check_pose(msg, self.base_frame)
        except ValueError as err:
            return self._reject("equilibrium_pose", str(err))
        with self.lock:
            self.twin.controller.set_target(pos, quat)
            self._last_command = time.monotonic()

    def _on_gripper(self, msg: Float64) -> None:
        value = msg.data
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            return self._reject("gripper/command", f"{value} is not in [0, 1]")
        with self.lock:
            target, quat = self.twin.controller.target
            self.twin.command(target, quat, value)

    def _on_reset_options(self, msg: String) -> None:
        try:
            options = json.loads(msg.data)
            if not isinstance(options, dict):
                raise ValueError("not a JSON object")
            options = {k: (np.asarray(v, dtype=float) if isinstance(v, list) else v)
                       for k, v in options.items()}
        except ValueError as err:
            return self._reject("reset/options", f"{err}: {msg.data[:200]!r}")
        self.reset_options = options

    def _on_reset(self, request, response):
        options = dict(self.reset_options)
        reset_id = options.pop("id", None)
        try:
            with self.lock:
                # IK first, on its scratch data: TwinRobot.reset clears the scene before its IK,
                # so an unreachable pose must be refused before the arm is touched.
                self.twin.solve_ik(options.get("tcp_pos", self.twin.config.default_tcp_pos),
                                   options.get("tcp_quat", self.twin.config.default_tcp_quat))
                self.twin.reset(options=options)
                self._last_command = None     # the reset pose is the target: nothing to watch
        except (ValueError, RuntimeError) as err:
            response.success, response.message = False, f"reset id={reset_id} failed: {err}"
            self.get_logger().error(response.message)
            return response
        response.success, response.message = True, f"reset id={reset_id}"
        return response

    def _on_recover(self, request, response):
        with self.lock:
            self.twin.recover()
        response.success, response.message = True, "recovered: holding the current pose"
        return response

    def _on_parameters(self, params) -> SetParametersResult:
        try:
            new = impedance_from_parameters(self.impedance, params)
            if new is not None:
                looser = [] if self.allow_loosening else loosenings(self.start_impedance, new)
                if looser:
                    return refuse_change(self, params, "; ".join(looser) + " (only tightening at "
                                         "run time; allow_loosening is false)")
                with self.lock:
                    self.twin.controller.set_config(new)
                self.impedance = new
        except (ValueError, TypeError) as err:
            return refuse_change(self, params, str(err))
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------- lifecycle
    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        """Stops the physics thread (which frees the renderer). Idempotent."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def destroy_node(self):
        self.close()
        return super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(TwinNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
