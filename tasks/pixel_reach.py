"""pixel_reach: the reduced pixel task of the suite (tests/robot_rl/test_pixel_learning.py).

reach_block (tasks/task_files/reach_block.yaml) made small enough to learn from pixels in a minute
on a CPU, and made so that it needs the camera:
- the block (4 cm) lands anywhere in a 16 x 16 cm square (+-8 cm), twice the hand's 8 cm opening,
  and the observation holds no object state: proprio + ONE front camera at 32 x 32;
- the TCP starts at the same point every episode, 7 cm up, and success is the TCP within 4 cm of
  the block's centre within 12 steps (2 cm per axis per step).
A policy that cannot see acts the same in every episode (same start, same proprio), so it succeeds
only on the blocks its one path happens to pass within 4 cm of: about 0.2 for the straight line to
the centre that cloning the demos gives; the measured blind agent is in docs/benchmarks.md.

Used through the gymnasium route (`TrainConfig.env = "robot_rl.tasks.pixel_reach:make_env"`,
`gym.expert = "robot_rl.tasks.pixel_reach:make_expert"`), so no task registry changes for a test task.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from robot_rl import tasks
from robot_rl.tasks.experts import ScriptedExpert
from robot_rl.controllers.rotations import quat_to_matrix as quat_to_rot

OVERRIDES: dict[str, Any] = dict(
    cameras=("front",), image_size=32, max_steps=12,
    tcp_start=(0.5, 0.0, 0.07), tcp_start_xy_range=0.0, object_xy_range=0.08,
    success_check={"kind": "reach", "object": "block", "distance": 0.04},
)
HOVER = 0.035   # the expert's TCP height above the table: over the block, fingers clear of it


def make_env(**overrides: Any):
    """The pixel_reach twin env (RobotEnv, obs="pixels"); `overrides` change any TaskSpec field."""
    return tasks.make_env("reach_block", obs="pixels", **{**OVERRIDES, **overrides})


class ReachExpert(ScriptedExpert):
    """Straight to the block's centre at HOVER height, from the twin's ground truth (demos only)."""

    def _target(self, task: dict[str, np.ndarray]) -> np.ndarray:
        return np.array([task["block_pos"][0], task["block_pos"][1], HOVER])

    def _distance(self, state, task) -> float:
        return float(np.linalg.norm(self._target(task) - state.tcp_pos))

    def _act(self, state, task) -> np.ndarray:
        nominal = quat_to_rot(np.asarray(self.env.task.nominal_quat))
        return self._motion(state, self._target(task), nominal)


def make_expert(env) -> ReachExpert:
    return ReachExpert(env)
