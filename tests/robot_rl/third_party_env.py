"""A third party's own env, written against gymnasium's API only (no robot_rl import): what a
user brings to `robot-rl train --env tests.robot_rl.third_party_env:make_env`.

Slide a point onto a goal in the plane. Its choices are deliberately unlike robot_rl's own envs:
a Dict observation with a channel-first (3, H, W) image, an action Box of +-0.2 (not [-1, 1]),
and success reported as info["is_success"] (gymnasium-robotics' key).
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np

STEP = 0.2
IMAGE = 32


class SlideToGoal(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, tolerance: float = 0.1):
        self.tolerance = tolerance
        self.observation_space = gym.spaces.Dict({
            "pos": gym.spaces.Box(-1.0, 1.0, (2,), np.float64),
            "goal": gym.spaces.Box(-1.0, 1.0, (2,), np.float64),
            "view": gym.spaces.Box(0, 255, (3, IMAGE, IMAGE), np.uint8),
        })
        self.action_space = gym.spaces.Box(-STEP, STEP, (2,), np.float32)
        self.pos = np.zeros(2)
        self.goal = np.zeros(2)

    def _pixel(self, xy: np.ndarray) -> tuple[int, int]:
        col, row = np.clip(((xy + 1.0) / 2.0 * (IMAGE - 1)).round().astype(int), 0, IMAGE - 1)
        return int(row), int(col)

    def _obs(self) -> dict:
        view = np.zeros((3, IMAGE, IMAGE), np.uint8)
        view[(0, *self._pixel(self.pos))] = 255          # red: the point
        view[(1, *self._pixel(self.goal))] = 255         # green: the goal
        return {"pos": self.pos.copy(), "goal": self.goal.copy(), "view": view}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-0.8, 0.8, 2)
        self.goal = self.np_random.uniform(-0.8, 0.8, 2)
        return self._obs(), {"is_success": False}

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64), -STEP, STEP)
        self.pos = np.clip(self.pos + action, -1.0, 1.0)
        distance = float(np.linalg.norm(self.goal - self.pos))
        success = distance < self.tolerance
        reward = 1.0 if success else -distance
        return self._obs(), reward, success, False, {"is_success": success}


def make_env(max_steps: int = 20, tolerance: float = 0.1) -> gym.Env:
    """The factory `--env` names: the env with its own episode limit."""
    return gym.wrappers.TimeLimit(SlideToGoal(tolerance), max_episode_steps=max_steps)


def make_unlimited_env() -> gym.Env:
    """The same env without an episode limit (the adapter must ask for one)."""
    return SlideToGoal()


def make_expert(env: SlideToGoal):
    """A scripted expert in the env's own terms: its observations and its action units."""
    return lambda obs: np.clip(obs["goal"] - obs["pos"], -STEP, STEP).astype(np.float32)


gym.register("ThirdParty/SlideToGoal-v0", entry_point=SlideToGoal, max_episode_steps=20)
