"""How many learner updates a run does and what each one trains on: one implementation for the
in-process run and the distributed learner.

Budget: `updates_per_step` updates per env step, from the `learning_starts`-th step on, so a
run that reaches N steps has done floor(updates_per_step * (N - learning_starts + 1)) updates
whatever its history (a resumed run catches up the updates it owes since its last checkpoint).

Minibatching: every gradient step of a UTD cycle (`critic_actor_ratio` steps: critic-only,
then one joint step) gets its own full RLPD batch of `batch_size` rows. Splitting one batch into
`critic_actor_ratio` smaller minibatches (what the distributed learner did) halves the rows each
step sees; the full batches are what `make train` reached 0.95 with (docs/benchmarks.md).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from robot_rl.buffers.replay import ReplayBuffer
from robot_rl.buffers.rlpd import RLPDSampler, to_torch
from robot_rl.networks.encoder import training_batch_keys


def updates_owed(updates_per_step: float, learning_starts: int, env_steps: int, updates: int) -> int:
    """Updates allowed now, given the env steps taken and the updates already done (>= 0)."""
    if env_steps < learning_starts or env_steps <= 0:
        return 0
    # 1e-9: 0.1 * 30 is 2.9999999999999996 in floats; the ratio is meant exactly.
    return max(0, int(updates_per_step * (env_steps - learning_starts + 1) + 1e-9) - updates)


def make_sampler(online: ReplayBuffer, demo: ReplayBuffer, batch_size: int, demo_ratio: float,
                 pin_memory: bool) -> RLPDSampler:
    """The RLPD sampler of a run's buffers, sampling only what the agent's encoder reads (cached
    features instead of their pixels, one shift variant per row: encoder.training_batch_keys)."""
    keys, variant_keys = training_batch_keys(online.frame_specs)
    return RLPDSampler(online, demo, batch_size=batch_size, demo_ratio=demo_ratio, pin_memory=pin_memory,
                       keys=keys, variant_keys=variant_keys)


def update_once(agent: Any, sampler: RLPDSampler, rng: np.random.Generator,
                device: torch.device) -> dict[str, float]:
    """One UTD cycle of `agent` on fresh full RLPD batches, one per gradient step."""
    batches = [to_torch(sampler.sample(rng), device) for _ in range(agent.cfg.critic_actor_ratio)]
    return agent.update(batches)
