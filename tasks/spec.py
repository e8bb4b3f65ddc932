"""What a task declares: observations, action scaling, safety box, reset distribution, episode
length, reward and success. `RobotEnv` (tasks/env.py) does the rest the same way for every task.

A task is a dataclass subclass of `TaskSpec` with numeric fields (so the config loader can
override them) and four methods: `sample_reset`, `object_features`, `success`, `failure`.

Frames: positions are in the robot base frame. Orientation limits (`rpy_low`/`rpy_high`) are the
roll-pitch-yaw of the TCP orientation *relative to* `nominal_quat` (TCP pointing down), which
keeps them away from the +-pi wrap of the absolute roll of a downward-facing gripper.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

import numpy as np

from robot_rl.robot import RobotState

# The proprio parts obs["state"] can hold, in order (20 floats in all); see RobotEnv for frames.
PROPRIO_KEYS = (
    ("tcp_pos", 3),      # TCP position relative to the reset pose, in the reset frame (m)
    ("tcp_quat", 4),     # TCP orientation relative to the reset orientation (x, y, z, w), w >= 0
    ("tcp_vel", 6),      # linear then angular velocity, reset frame
    ("tcp_force", 3),    # external force at the TCP, reset frame (N)
    ("tcp_torque", 3),   # external torque at the TCP, reset frame (Nm)
    ("gripper", 1),      # 0 open .. 1 closed
)
PROPRIO_SIZES = dict(PROPRIO_KEYS)
PROPRIO_DIM = sum(PROPRIO_SIZES.values())

ROBOT_MODELS = ("franka", "widowx")
GRIPPER_MODES = ("none", "binary", "grasp_critic")
OPERATOR_KEY_ROLES = ("success", "failure", "reset")    # drivers.keyboard.KeyBindings' episode keys
DEFAULT_OPERATOR_KEYS = {"success": "s", "failure": "f", "reset": "r"}
_ROS_NAMESPACE = re.compile(r"^(/[A-Za-z_][A-Za-z0-9_]*)+$")
_ROS_TOPIC = re.compile(r"^/?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass
class TaskSpec:
    name: str = "base"
    objects: str = "none"                 # which objects the twin builds (sim.scene.SceneConfig)
    # The robot the task runs on (which twin make_twin builds) and its ROS namespace
    # ('' = "/<robot>"): every tool that opens the task over ROS defaults to it.
    robot: str = "franka"
    robot_namespace: str = ""
    # Observation keys: the proprio parts in obs["state"] (a subset of PROPRIO_KEYS, kept in
    # that order) and the cameras, one obs key each in pixels mode.
    proprio_keys: tuple[str, ...] = tuple(k for k, _ in PROPRIO_KEYS)
    cameras: tuple[str, ...] = ("wrist", "front")
    image_size: int = 128                 # px: the square image the policy gets from each camera
    # Per camera (all optional): its Image topic (default /cameras/<name>/image_raw), its crop
    # (x0, y0, x1, y1) in pixels of the frame it publishes, and that frame's (width, height).
    # A cropped frame is resized to image_size (tasks/camera_view.py), over ROS and in the twin.
    camera_topics: dict = field(default_factory=dict)
    camera_crops: dict = field(default_factory=dict)
    camera_frames: dict = field(default_factory=dict)
    # The wrench in obs["state"], under the robot's namespace: "wrench" (the arm's own estimate)
    # or "ft/wrench" (an external F/T sensor, rig node kind ft). Over ROS only; the twin has one.
    wrench_topic: str = "wrench"
    max_steps: int = 100                  # truncation at 10 Hz
    control_hz: float = 10.0
    # Action scaling: a = +-1 moves this much per step (m, rad), in the end-effector frame.
    action_scale_pos: float = 0.02
    action_scale_rot: float = 0.1
    # Gripper: "none" holds it at gripper_fixed (default open) and ignores a[6]; "binary" closes
    # and opens on a[6]; "grasp_critic" too, and the agent learns a[6] with HIL-SERL's grasp
    # critic (agent.grasp_critic). '' = derived: none when gripper_fixed is set, else binary.
    gripper_mode: str = ""
    gripper_fixed: Optional[float] = None  # set: the gripper is held there and a[6] is ignored
    gripper_penalty: float = -0.02        # info["grasp_penalty"] when the gripper command flips
    # Safety box: every target is clipped into it before it reaches the robot.
    box_low: tuple[float, float, float] = (0.35, -0.2, 0.015)
    box_high: tuple[float, float, float] = (0.65, 0.2, 0.35)
    rpy_low: tuple[float, float, float] = (-0.3, -0.3, -1.0)
    rpy_high: tuple[float, float, float] = (0.3, 0.3, 1.0)
    nominal_quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)  # TCP z down, x = base x
    # Reset distribution of the TCP (uniform): start +- xy range, yaw +- range about the TCP z.
    tcp_start: tuple[float, float, float] = (0.5, 0.0, 0.2)
    tcp_start_xy_range: float = 0.02
    tcp_start_yaw_range: float = 0.0
    tcp_start_rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)   # rad, relative to nominal_quat
    tcp_start_z_range: float = 0.0
    # Impedance gains for the Cartesian reset move on a real arm (controllers.impedance.
    # ImpedanceConfig names, e.g. translational_stiffness, translational_ki); {} = the precision
    # profile with the ROS backend's integral term. Restored after each reset.
    reset_gains: dict = field(default_factory=dict)
    # Reset distribution of the task object (uniform): centre +- xy range, yaw +- range.
    object_xy_center: tuple[float, float] = (0.5, 0.0)
    object_xy_range: float = 0.05
    object_yaw_range: float = 0.0
    # Reward on a real arm (no ground truth): the success classifier file and its threshold
    # (None = the one saved with it), the operator's episode keys, and an optional state check
    # that must hold too (tasks.classifier_reward.parse_state_check, e.g. "gripper>=0.5,z>=0.08").
    reward_classifier: str = ""
    reward_threshold: Optional[float] = None
    operator_keys: dict = field(default_factory=lambda: dict(DEFAULT_OPERATOR_KEYS))
    success_state_check: str = ""

    def __post_init__(self) -> None:
        self.cameras = tuple(self.cameras)
        unknown = set(self.proprio_keys) - set(PROPRIO_SIZES)
        if unknown:
            raise ValueError(f"{self.name}: unknown proprio keys {sorted(unknown)}; known: {list(PROPRIO_SIZES)}")
        self.proprio_keys = tuple(k for k in PROPRIO_SIZES if k in self.proprio_keys)
        for name in ("box_low", "box_high", "rpy_low", "rpy_high", "tcp_start"):
            setattr(self, name, tuple(float(v) for v in getattr(self, name)))
        if np.any(np.array(self.box_low) >= np.array(self.box_high)):
            raise ValueError(f"{self.name}: box_low {self.box_low} must be < box_high {self.box_high}")
        if np.any(np.array(self.rpy_low) > np.array(self.rpy_high)):
            raise ValueError(f"{self.name}: rpy_low must be <= rpy_high")
        if self.wrench_topic not in ("wrench", "ft/wrench"):
            raise ValueError(f"{self.name}: wrench_topic must be 'wrench' (the arm's estimate) or "
                             f"'ft/wrench' (an external F/T sensor), got {self.wrench_topic!r}")
        if self.max_steps <= 0 or self.action_scale_pos <= 0 or self.action_scale_rot < 0:
            raise ValueError(f"{self.name}: max_steps and action scales must be positive")
        self.tcp_start_rpy = tuple(float(v) for v in self.tcp_start_rpy)
        self._check_robot()
        self._check_cameras()
        self._check_gripper()
        self._check_reset()
        self._check_reward()

    # ---- validation of the sections a task file adds (each error: field and allowed range) --
    def _bad(self, field_name: str, value: Any, allowed: str) -> ValueError:
        return ValueError(f"{self.name}: {field_name} = {value!r}: allowed {allowed}")

    def _check_robot(self) -> None:
        if self.robot not in ROBOT_MODELS:
            raise self._bad("robot", self.robot, f"one of {list(ROBOT_MODELS)}")
        if self.robot_namespace and not _ROS_NAMESPACE.match(self.robot_namespace):
            raise self._bad("robot_namespace", self.robot_namespace,
                            "'' (= /<robot>) or a ROS namespace such as /franka or /lab/arm1")

    @property
    def namespace(self) -> str:
        """The robot's ROS namespace: the task's, else /<robot>."""
        return self.robot_namespace or f"/{self.robot}"

    def _check_cameras(self) -> None:
        for field_name in ("camera_topics", "camera_crops", "camera_frames"):
            extra = set(getattr(self, field_name)) - set(self.cameras)
            if extra:
                raise self._bad(field_name, sorted(extra), f"only the task's cameras {list(self.cameras)}")
        for cam, topic in self.camera_topics.items():
            if not isinstance(topic, str) or not _ROS_TOPIC.match(topic):
                raise self._bad(f"cameras.{cam}.topic", topic, "a ROS topic name, e.g. /cameras/wrist/image_raw")
        frames, crops = {}, {}
        for cam, frame in self.camera_frames.items():
            frame = tuple(frame) if isinstance(frame, (list, tuple)) else frame
            if (not isinstance(frame, tuple) or len(frame) != 2
                    or not all(isinstance(v, int) and 16 <= v <= 4096 for v in frame)):
                raise self._bad(f"cameras.{cam}.frame", frame, "[width, height] in pixels, 16 to 4096 each")
            frames[cam] = frame
        for cam, crop in self.camera_crops.items():
            crop = tuple(crop) if isinstance(crop, (list, tuple)) else crop
            if not isinstance(crop, tuple) or len(crop) != 4 or not all(isinstance(v, int) for v in crop):
                raise self._bad(f"cameras.{cam}.crop", crop, "[x0, y0, x1, y1] in whole pixels")
            if cam not in frames:
                raise self._bad(f"cameras.{cam}.crop", list(crop), "with the camera's frame: [width, height] "
                                "(robot-rl cameras prints it), which the crop must lie in")
            x0, y0, x1, y1 = crop
            w, h = frames[cam]
            if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
                raise self._bad(f"cameras.{cam}.crop", list(crop), f"0 <= x0 < x1 <= {w} and 0 <= y0 < y1 <= {h} "
                                f"(inside the {w}x{h} frame)")
            crops[cam] = crop
        self.camera_frames, self.camera_crops = frames, crops
        self.camera_topics = dict(self.camera_topics)

    def camera_topic(self, cam: str) -> str:
        return self.camera_topics.get(cam) or f"/cameras/{cam}/image_raw"

    def _check_gripper(self) -> None:
        mode = self.gripper_mode or ("none" if self.gripper_fixed is not None else "binary")
        if mode not in GRIPPER_MODES:
            raise self._bad("gripper.mode", self.gripper_mode, f"one of {list(GRIPPER_MODES)}")
        if mode == "none" and self.gripper_fixed is None:
            self.gripper_fixed = 0.0                     # held open
        if mode != "none" and self.gripper_fixed is not None:
            raise self._bad("gripper.hold", self.gripper_fixed, f"only with gripper mode none (mode is {mode})")
        if self.gripper_fixed is not None and not 0.0 <= self.gripper_fixed <= 1.0:
            raise self._bad("gripper.hold", self.gripper_fixed, "0 (open) to 1 (closed)")
        self.gripper_mode = mode

    def _check_reset(self) -> None:
        for name, hi in (("tcp_start_xy_range", 0.2), ("tcp_start_z_range", 0.2), ("tcp_start_yaw_range", np.pi)):
            if not 0.0 <= getattr(self, name) <= hi:
                raise self._bad(name, getattr(self, name), f"0 to {hi:g}")
        if len(self.tcp_start_rpy) != 3 or np.any(np.array(self.tcp_start_rpy) < np.array(self.rpy_low)) \
                or np.any(np.array(self.tcp_start_rpy) > np.array(self.rpy_high)):
            raise self._bad("reset.rpy", list(self.tcp_start_rpy),
                            f"3 angles within the orientation limits {list(self.rpy_low)}..{list(self.rpy_high)}")
        if self.reset_gains:
            from robot_rl.controllers.impedance import ImpedanceConfig

            known = {f for f in ImpedanceConfig.__dataclass_fields__ if f != "dt"}
            unknown = set(self.reset_gains) - known
            if unknown:
                raise self._bad("reset.gains", sorted(unknown), f"impedance parameters {sorted(known)}")
            try:
                ImpedanceConfig.precision().replace(**{k: tuple(v) if isinstance(v, list) else v
                                                       for k, v in self.reset_gains.items()})
            except (TypeError, ValueError) as e:
                raise ValueError(f"{self.name}: reset.gains: {e}") from None

    def _check_reward(self) -> None:
        if self.reward_threshold is not None and not 0.0 < float(self.reward_threshold) <= 1.0:
            raise self._bad("reward.threshold", self.reward_threshold, "(0, 1], or unset for the classifier's own")
        keys = {**DEFAULT_OPERATOR_KEYS, **dict(self.operator_keys)}
        unknown = set(keys) - set(OPERATOR_KEY_ROLES)
        if unknown:
            raise self._bad("reward.keys", sorted(unknown), f"the roles {list(OPERATOR_KEY_ROLES)}")
        if any(not isinstance(k, str) or len(k) != 1 or not k.isprintable() or k.isspace() for k in keys.values()):
            raise self._bad("reward.keys", keys, "one printable character per role")
        if len(set(keys.values())) != len(keys):
            raise self._bad("reward.keys", keys, "a different key for each role")
        self.operator_keys = keys
        if self.success_state_check:
            from robot_rl.tasks.classifier_reward import parse_state_check
            try:
                parse_state_check(self.success_state_check)
            except ValueError as e:
                raise ValueError(f"{self.name}: reward.state_check: {e}") from None

    @property
    def proprio_dim(self) -> int:
        return sum(PROPRIO_SIZES[k] for k in self.proprio_keys)

    # ---- reset distribution --------------------------------------------------------------
    def sample_reset(self, rng: np.random.Generator) -> dict[str, Any]:
        """Options for RobotInterface.reset: the TCP start pose (and, in subclasses, objects)."""
        from robot_rl.controllers.rotations import matrix_to_quat, quat_to_matrix as quat_to_rot, rpy_to_matrix

        xy = rng.uniform(-self.tcp_start_xy_range, self.tcp_start_xy_range, size=2)
        yaw = rng.uniform(-self.tcp_start_yaw_range, self.tcp_start_yaw_range)
        # z only when it varies, so the random stream (and every seeded run) stays as before.
        z = rng.uniform(-self.tcp_start_z_range, self.tcp_start_z_range) if self.tcp_start_z_range else 0.0
        pos = np.array(self.tcp_start) + np.array([xy[0], xy[1], z])
        roll, pitch, yaw0 = self.tcp_start_rpy
        rot = quat_to_rot(self.nominal_quat) @ rpy_to_matrix((roll, pitch, yaw0 + yaw))
        return {"tcp_pos": pos, "tcp_quat": matrix_to_quat(rot),
                "gripper": 0.0 if self.gripper_fixed is None else self.gripper_fixed}

    # ---- observation extras for obs="state" ------------------------------------------------
    object_feature_dim: ClassVar[int] = 0

    def object_features(self, state: RobotState, task: dict[str, np.ndarray],
                        reset_pos: np.ndarray, reset_rot: np.ndarray) -> np.ndarray:
        """Object pose features (reset frame) appended to obs["state"] in state mode."""
        return np.zeros(0)

    # ---- outcome -----------------------------------------------------------------------------
    def success(self, state: RobotState, task: dict[str, np.ndarray]) -> bool:
        raise NotImplementedError

    def failure(self, state: RobotState, task: dict[str, np.ndarray]) -> bool:
        """A task failure that ends the episode (e.g. the object left the table)."""
        return False

    def reward(self, state: RobotState, task: dict[str, np.ndarray]) -> float:
        """Sparse: 1 on success."""
        return float(self.success(state, task))
