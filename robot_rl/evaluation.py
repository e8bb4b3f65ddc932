"""Running one episode with a given policy, and the deterministic evaluation of an agent.

Used by the in-process run (periodic and final evaluations, scripted demos), the distributed
run's final evaluation and `robot-rl eval`. Evaluation seeds never overlap training's.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from robot_rl.episode import EpisodeResult, Transition


def run_episode(env_handle: Any, policy: Callable[[dict], np.ndarray], seed: int,
                record: list[Transition] | None = None) -> EpisodeResult:
    """One episode of `policy` in env_handle.env (a robot_rl.run_env.EnvHandle); its
    transitions are appended to `record` when given (copied: an env may reuse its arrays)."""
    env = env_handle.env
    obs, info = env.reset(seed=seed)
    ret, length, success, started = 0.0, 0, False, time.perf_counter()
    while True:
        action = policy(obs)
        next_obs, reward, terminated, truncated, info = env.step(action)
        if record is not None:
            record.append(Transition.copy_of(obs, action, reward, next_obs, terminated, truncated,
                                             info.get("grasp_penalty", 0.0), step=length))
        ret += float(reward)
        length += 1
        success = success or bool(info.get("success", False))
        obs = next_obs
        if terminated or truncated:
            break
    return EpisodeResult(return_=ret, length=length, success=success,
                         cycle_time_s=length / env_handle.control_hz if success else None,
                         wall_s=time.perf_counter() - started)


def evaluate(env_handle: Any, agent: Any, episodes: int, seed: int) -> dict[str, Any]:
    """The deterministic policy over `episodes` seeded episodes."""
    results = [run_episode(env_handle, lambda o: agent.act(o, deterministic=True), seed + i)
               for i in range(episodes)]
    successes = [r for r in results if r.success]
    return {
        "success_rate": float(np.mean([r.success for r in results])) if results else 0.0,
        "episodes": len(results),
        "mean_episode_length": float(np.mean([r.length for r in results])) if results else 0.0,
        "mean_return": float(np.mean([r.return_ for r in results])) if results else 0.0,
        "mean_cycle_time_s": float(np.mean([r.cycle_time_s for r in successes])) if successes else None,
    }
