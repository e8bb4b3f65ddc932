"""The demo buffer's first contents, one implementation for every run: a recorded episode
dataset (`demo_dataset`: its successful episodes), or else `demos` successful scripted-expert
episodes in the twin, or nothing (an env with no expert). Every demo row is flagged
`intervention`, so the agent's BC term (agent.bc_weight) clones exactly the demo buffer's rows.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from robot_rl.episode import Transition
from robot_rl.evaluation import run_episode

log = logging.getLogger("robot_rl.demos")


def collect_demos(env_handle: Any, buffer: Any, episodes: int, seed: int,
                  max_attempts_factor: int = 3) -> dict[str, Any]:
    """Fills `buffer` with `episodes` successful expert episodes; failed ones are thrown away."""
    if episodes > 0 and env_handle.expert is None:
        raise ValueError(f"{episodes} scripted demos were asked for, but the task has no scripted "
                         "expert: record demos (demo_dataset=DIR) or set demos=0")
    kept, attempts = 0, 0
    while kept < episodes and attempts < max_attempts_factor * max(episodes, 1):
        staged: list[Transition] = []
        result = run_episode(env_handle, env_handle.expert.act, seed + attempts, record=staged)
        attempts += 1
        if not result.success:
            continue
        for t in staged:
            t.intervention = True
            t.add_to(buffer)
        buffer.commit()
        kept += 1
    if kept < episodes:
        raise RuntimeError(f"the scripted expert succeeded in only {kept} of {attempts} episodes; "
                           f"{episodes} demos were asked for")
    return {"demos": kept, "attempts": attempts,
            "expert_success_rate": kept / attempts if attempts else None}


def fill_demo_buffer(cfg: Any, env_handle: Any, demo: Any) -> dict[str, Any]:
    """The run's demos (cfg: a TrainConfig) into the empty `demo` buffer; returns what went in,
    for RUN_DIR/demos.json."""
    started = time.perf_counter()
    if cfg.demo_dataset:
        from robot_rl.datasets import load_into_buffer  # only runs with recorded demos need it
        loaded = load_into_buffer(cfg.demo_dataset, demo, successful_only=True)
        stats: dict[str, Any] = {"demo_dataset": cfg.demo_dataset, "loaded": loaded,
                                 "demo_transitions": len(demo)}
    elif env_handle.expert is None:
        # A --env run without gym.expert or demo_dataset: plain online RL from the first step.
        log.warning("no demos: %s has no expert (gym.expert) and no demo_dataset", cfg.env or cfg.task)
        stats = {"demos": 0, "reason": "no expert and no demo_dataset"}
    else:
        stats = collect_demos(env_handle, demo, cfg.demos, seed=10_000_000 + cfg.seed * 1000)
    stats["wall_s"] = time.perf_counter() - started
    return stats
