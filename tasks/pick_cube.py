"""pick_cube: grasp a 5 cm cube placed at random on the table and lift it 10 cm.

The cube (half size 2.5 cm, 80 g) fits the Franka hand's 8 cm opening with margin on both
sides, and its 5 cm faces sit on the fingertip pads whatever the yaw (the cube is symmetric
under 90 deg turns, so a yaw of +-45 deg covers every placement). Sparse reward: 1 when the
cube centre is 10 cm above its resting height and within 4 cm of the TCP (held, not tossed);
the episode ends there. It also ends (failure) if the cube leaves the table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from robot_rl.controllers.rotations import quat_to_matrix as quat_to_rot
from robot_rl.robot import RobotState
from robot_rl.tasks.spec import TaskSpec


def heading(rot: np.ndarray) -> float:
    """Yaw of a frame's x axis about the base z axis."""
    return math.atan2(rot[1, 0], rot[0, 0])


@dataclass
class PickCubeSpec(TaskSpec):
    name: str = "pick_cube"
    objects: str = "cube"
    # Episode length, action scaling, safety box and TCP reset are TaskSpec's defaults (made for
    # this task); the file tasks/task_files/pick_cube.yaml states every value.
    object_xy_range: float = 0.06
    object_yaw_range: float = math.pi / 4
    cube_half_size: float = 0.025        # must match the twin's SceneConfig.cube_half_size
    lift_height: float = 0.10

    object_feature_dim: ClassVar[int] = 5

    def sample_reset(self, rng: np.random.Generator) -> dict[str, Any]:
        options = super().sample_reset(rng)
        xy = np.array(self.object_xy_center) + rng.uniform(-self.object_xy_range, self.object_xy_range, 2)
        yaw = rng.uniform(-self.object_yaw_range, self.object_yaw_range)
        options["cube_pos"] = np.array([xy[0], xy[1], self.cube_half_size])
        options["cube_quat"] = np.array([0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)])
        return options

    def object_features(self, state: RobotState, task: dict[str, np.ndarray],
                        reset_pos: np.ndarray, reset_rot: np.ndarray) -> np.ndarray:
        """Cube position minus TCP position (reset frame, m), and the cube's yaw relative to the
        TCP's, as (sin 4d, cos 4d): the cube looks the same every 90 deg."""
        rel = reset_rot.T @ (task["cube_pos"] - state.tcp_pos)
        d = heading(quat_to_rot(task["cube_quat"])) - heading(quat_to_rot(state.tcp_quat))
        return np.concatenate([rel, [math.sin(4 * d), math.cos(4 * d)]])

    def success(self, state: RobotState, task: dict[str, np.ndarray]) -> bool:
        cube = task["cube_pos"]
        lifted = cube[2] >= self.cube_half_size + self.lift_height
        held = np.linalg.norm(cube - state.tcp_pos) < 0.04
        return bool(lifted and held)

    def failure(self, state: RobotState, task: dict[str, np.ndarray]) -> bool:
        return bool(task["cube_pos"][2] < -0.02)
