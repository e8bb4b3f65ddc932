"""Fills a replay buffer (the RLPD demo buffer) from an episode dataset."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from robot_rl.datasets.store import EpisodeDataset


def check_buffer_matches(spec: dict[str, Any], replay_buffer: Any, where: str) -> None:
    """ValueError unless the buffer stores exactly the dataset's observations and action width."""
    want = {k: (tuple(v["shape"]), np.dtype(v["dtype"])) for k, v in spec["observations"].items()}
    frame_specs = replay_buffer.frame_specs
    have = {k: frame_specs[k] for k in replay_buffer.observation_keys}
    if want != have:
        raise ValueError(f"{where}: the dataset's observations {want} do not match the replay "
                         f"buffer's {have} (another task, --obs mode or camera set?)")
    if replay_buffer.extra_keys:
        raise ValueError(f"{where}: the replay buffer declares extra per-frame arrays "
                         f"{replay_buffer.extra_keys}, which a dataset does not hold; load into a "
                         f"buffer without extras")
    if replay_buffer.action_dim != spec["action_dim"]:
        raise ValueError(f"{where}: dataset actions have width {spec['action_dim']}, the buffer "
                         f"{replay_buffer.action_dim}")


def load_into_buffer(dataset_dir: str | os.PathLike | EpisodeDataset, replay_buffer: Any,
                     successful_only: bool = True) -> dict[str, Any]:
    """Adds the dataset's episodes to `replay_buffer` (a robot_rl.buffers.ReplayBuffer), in order,
    committing after each episode; returns counts.

    successful_only: skip episodes whose metadata says success=False. Each step keeps its
    recorded flags (intervention, grasp penalty, terminated/truncated). An episode whose last step
    has neither flag (the operator stopped it) is closed as truncated, so it bootstraps.
    Returns {"episodes", "transitions", "skipped_unsuccessful", "dataset_episodes", "sources"}.
    """
    dataset = dataset_dir if isinstance(dataset_dir, EpisodeDataset) else EpisodeDataset.open(dataset_dir)
    where = str(dataset.directory)
    check_buffer_matches(dataset.spec, replay_buffer, where)
    dataset.verify()        # every episode file against its checksum, before anything is added
    loaded, transitions, skipped = 0, 0, 0
    sources: dict[str, int] = {}
    for index, meta in enumerate(dataset.episodes):
        if successful_only and not meta.get("success", False):
            skipped += 1
            continue
        episode = dataset.read_episode(index)
        last = len(episode) - 1
        for t, (obs, action, reward, next_obs, terminated, truncated, penalty, intervention) in \
                enumerate(episode.transitions()):
            if t == last and not (terminated or truncated):
                truncated = True
            replay_buffer.add(obs, action, reward, next_obs, terminated, truncated,
                              grasp_penalty=penalty, intervention=intervention)
        replay_buffer.commit()
        loaded += 1
        transitions += len(episode)
        sources[meta["source"]] = sources.get(meta["source"], 0) + 1
    return {"episodes": loaded, "transitions": transitions, "skipped_unsuccessful": skipped,
            "dataset_episodes": len(dataset), "sources": sources}
