"""A tiny built-in task for the learner: a 3-D point reaches a goal and "grasps" it.

It exists so that the learning core can be checked end to end in seconds, with no physics
engine: `SAC + demos` must solve it within the test suite's time. It keeps the shape of the
real tasks: a Dict observation with "state", a 7-D action in [-1, 1] (xyz, rpy, gripper),
a sparse reward of 1 on success, termination on success, truncation on timeout, and a
grasp penalty when the gripper command changes state.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class PointReachEnv(gym.Env):
    """Move a point to within `tolerance` of a random goal in a plane (`goal_dims`=2, z kept
    level) or in space (3), and, with `require_grasp`, close the gripper there.

    The default leaves the grasp out: with it, plain SAC + 20 demos solves the task in some
    seeds and not others within a few thousand steps, which makes a poor test. Without it,
    the task is solved reliably, and a random policy still almost never solves it.
    """

    metadata = {"render_modes": []}

    def __init__(self, max_steps: int = 30, step_size: float = 0.1, tolerance: float = 0.15,
                 grasp_penalty: float = -0.02, require_grasp: bool = False, goal_dims: int = 2):
        if goal_dims not in (2, 3):
            raise ValueError(f"goal_dims must be 2 or 3, got {goal_dims}")
        self.require_grasp = require_grasp
        self.goal_dims = goal_dims
        self.max_steps = max_steps
        self.step_size = step_size
        self.tolerance = tolerance
        self.grasp_penalty = grasp_penalty
        # state: position (3), goal - position (3), gripper (1)
        self.observation_space = gym.spaces.Dict(
            {"state": gym.spaces.Box(-np.inf, np.inf, shape=(7,), dtype=np.float32)})
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(7,), dtype=np.float32)
        self._pos = np.zeros(3)
        self._goal = np.zeros(3)
        self._gripper = 0.0
        self._t = 0

    def _obs(self) -> dict[str, np.ndarray]:
        state = np.concatenate([self._pos, self._goal - self._pos, [self._gripper]])
        return {"state": state.astype(np.float32)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._pos = self.np_random.uniform(-0.5, 0.5, size=3)
        self._goal = self.np_random.uniform(-0.5, 0.5, size=3)
        if self.goal_dims == 2:
            self._goal[2] = self._pos[2]
        self._gripper = 0.0
        self._t = 0
        return self._obs(), {"success": False}

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (7,):
            raise ValueError(f"action must have shape (7,), got {action.shape}")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action has non-finite values: {action}")
        action = np.clip(action, -1.0, 1.0)
        self._t += 1
        self._pos = np.clip(self._pos + self.step_size * action[:3], -1.0, 1.0)
        penalty = 0.0
        command = 1.0 if action[6] >= 0.5 else 0.0 if action[6] <= -0.5 else self._gripper
        if command != self._gripper:
            penalty = self.grasp_penalty
            self._gripper = command
        near = np.linalg.norm(self._goal - self._pos) < self.tolerance
        success = bool(near and (self._gripper == 1.0 or not self.require_grasp))
        reward = 1.0 if success else 0.0
        truncated = self._t >= self.max_steps and not success
        info = {"success": success, "grasp_penalty": penalty}
        return self._obs(), reward, success, truncated, info


class PointReachExpert:
    """Scripted expert: head for the goal, close the gripper once there."""

    def __init__(self, env: PointReachEnv, noise: float = 0.0, seed: int = 0):
        self.env = env
        self.noise = noise
        self.rng = np.random.default_rng(seed)

    def distance_to_go(self, obs: dict[str, np.ndarray]) -> float:
        """Distance from the point to its goal (what the scripted human watches)."""
        return float(np.linalg.norm(obs["state"][3:6]))

    def act(self, obs: dict[str, np.ndarray], info: dict[str, Any] | None = None) -> np.ndarray:
        delta = obs["state"][3:6].astype(np.float64)
        action = np.zeros(7)
        action[:3] = np.clip(delta / self.env.step_size, -1.0, 1.0)
        near = np.linalg.norm(delta) < 0.5 * self.env.tolerance
        if self.env.require_grasp:
            action[6] = 1.0 if near else -1.0 if obs["state"][6] > 0.5 else 0.0
        if self.noise:
            action[:6] += self.noise * self.rng.standard_normal(6)
        return np.clip(action, -1.0, 1.0).astype(np.float32)
