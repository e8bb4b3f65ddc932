"""peg_insert: push a square peg held in the hand into a square hole; contact-rich.

The peg (2.5 cm square, 7 cm long) is part of the hand, its tip 3 cm below the TCP, as if
grasped before the episode (HIL-SERL's insertion tasks start grasped too); the gripper is held
at the peg's width and the gripper action is ignored. The hole is 3 mm wider than the peg on
each side and 3.5 cm deep, in a block placed at random (+-3 cm). Reward 1 when the tip is
2 cm below the hole's rim (it can only get there through the hole); the episode ends there.
The default impedance clip (1 cm -> 20 N spring) bounds how hard a misaligned peg pushes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import numpy as np

from robot_rl.robot import RobotState
from robot_rl.tasks.spec import TaskSpec


@dataclass
class PegInsertSpec(TaskSpec):
    name: str = "peg_insert"
    objects: str = "peg_hole"
    max_steps: int = 100
    action_scale_pos: float = 0.01
    action_scale_rot: float = 0.05
    gripper_fixed: Optional[float] = 0.69    # fingers on the 2.5 cm peg (1 - 0.0125 / 0.04)
    box_low: tuple[float, float, float] = (0.4, -0.1, 0.04)
    box_high: tuple[float, float, float] = (0.6, 0.1, 0.25)
    rpy_low: tuple[float, float, float] = (-0.2, -0.2, -0.3)
    rpy_high: tuple[float, float, float] = (0.2, 0.2, 0.3)
    tcp_start: tuple[float, float, float] = (0.5, 0.0, 0.13)
    tcp_start_xy_range: float = 0.02
    object_xy_center: tuple[float, float] = (0.5, 0.0)
    object_xy_range: float = 0.03
    peg_tip_below_tcp: float = 0.03         # must match the twin's scene
    hole_depth: float = 0.035
    insert_depth: float = 0.02

    object_feature_dim: ClassVar[int] = 3

    def sample_reset(self, rng: np.random.Generator) -> dict[str, Any]:
        options = super().sample_reset(rng)
        xy = np.array(self.object_xy_center) + rng.uniform(-self.object_xy_range, self.object_xy_range, 2)
        options["hole_pos"] = np.array([xy[0], xy[1], 0.0])
        return options

    def object_features(self, state: RobotState, task: dict[str, np.ndarray],
                        reset_pos: np.ndarray, reset_rot: np.ndarray) -> np.ndarray:
        """The hole's rim centre minus the peg tip, reset frame (m)."""
        return reset_rot.T @ (task["hole_top"] - task["peg_tip"])

    def success(self, state: RobotState, task: dict[str, np.ndarray]) -> bool:
        tip, top = task["peg_tip"], task["hole_top"]
        inside = np.linalg.norm(tip[:2] - top[:2]) < 0.01
        return bool(inside and tip[2] <= top[2] - self.insert_depth)
