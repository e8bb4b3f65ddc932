"""What a task declares: observations, action scaling, safety box, reset distribution, episode
length, reward and success. `RobotEnv` (tasks/env.py) does the rest the same way for every task.

A task is a dataclass subclass of `TaskSpec` with numeric fields (so the config loader can
override them) and four methods: `sample_reset`, `object_features`, `success`, `failure`.

Frames: positions are in the robot base frame. Orientation limits (`rpy_low`/`rpy_high`) are the
roll-pitch-yaw of the TCP orientation *relative to* `nominal_quat` (TCP pointing down), which
keeps them away from the +-pi wrap of the absolute roll of a downward-facing gripper.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import numpy as np

from tasks.robot import RobotState

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


@dataclass
class TaskSpec:
    name: str = "base"
    objects: str = "none"                 # which objects the twin builds (sim.scene.SceneConfig)
    # Observation keys: the proprio parts in obs["state"] (a subset of PROPRIO_KEYS, kept in
    # that order) and the cameras, one obs key each in pixels mode.
    proprio_keys: tuple[str, ...] = tuple(k for k, _ in PROPRIO_KEYS)
    cameras: tuple[str, ...] = ("wrist", "front")
    image_size: int = 128
    # The wrench in obs["state"], under the robot's namespace: "wrench" (the arm's own estimate)
    # or "ft/wrench" (an external F/T sensor, rig node kind ft). Over ROS only; the twin has one.
    wrench_topic: str = "wrench"
    max_steps: int = 100                  # truncation at 10 Hz
    control_hz: float = 10.0
    # Action scaling: a = +-1 moves this much per step (m, rad), in the end-effector frame.
    action_scale_pos: float = 0.02
    action_scale_rot: float = 0.1
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
    # Reset distribution of the task object (uniform): centre +- xy range, yaw +- range.
    object_xy_center: tuple[float, float] = (0.5, 0.0)
    object_xy_range: float = 0.05
    object_yaw_range: float = 0.0

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

    @property
    def proprio_dim(self) -> int:
        return sum(PROPRIO_SIZES[k] for k in self.proprio_keys)

    # ---- reset distribution --------------------------------------------------------------
    def sample_reset(self, rng: np.random.Generator) -> dict[str, Any]:
        """Options for RobotInterface.reset: the TCP start pose (and, in subclasses, objects)."""
        from tasks.frames import matrix_to_quat, quat_to_rot, rpy_to_matrix

        xy = rng.uniform(-self.tcp_start_xy_range, self.tcp_start_xy_range, size=2)
        yaw = rng.uniform(-self.tcp_start_yaw_range, self.tcp_start_yaw_range)
        pos = np.array(self.tcp_start) + np.array([xy[0], xy[1], 0.0])
        rot = quat_to_rot(self.nominal_quat) @ rpy_to_matrix((0.0, 0.0, yaw))
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
