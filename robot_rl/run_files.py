"""A run directory's state, opened or created: the replay buffers, the demos, the checkpoint.
One implementation for the in-process run and the distributed learner (resume after a kill).

    RUN_DIR/buffers/{online,demo}   memory-mapped replay buffers (crash-safe, committed per episode
                                    or per step)
    RUN_DIR/demos.json              written after the demo buffer's last commit: the demos are complete
    RUN_DIR/checkpoint.safetensors, checkpoint.json
                                    agent weights, optimisers, RNGs and counters
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any, Callable

import torch

from robot_rl import checkpoint as ckpt
from robot_rl.atomic_io import is_disk_full, write_json_atomic
from robot_rl.buffers import ReplayBuffer
from robot_rl.buffers.disk_full import WaitWhenDiskFull, wait_when_disk_full
from robot_rl.demos import fill_demo_buffer

log = logging.getLogger("robot_rl.run_files")


def device_for(name: str) -> torch.device:
    """A run's torch device: "auto" is cuda when available."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def checkpoint_exists(path: Path) -> bool:
    """A complete checkpoint (tensors and JSON) at `path` (without the suffix)."""
    return ckpt.exists(path)


def save_checkpoint(agent: Any, path: Path, counters: dict[str, int], wait: bool) -> bool:
    """Saves the agent; a full disk keeps the previous checkpoint intact (checkpoint.save_state)
    and is logged, then either waited out (wait=True: the final one) or skipped until the next."""
    save = lambda: ckpt.save_agent(agent, path, {"counters": dict(counters)})  # noqa: E731
    if wait:
        wait_when_disk_full(save, f"saving the checkpoint {path}")
        return True
    try:
        save()
        return True
    except OSError as e:
        if not is_disk_full(e):
            raise
        log.error("disk full: checkpoint %s not saved (the previous one is intact): %s", path, e)
        return False


def open_run_buffers(cfg: Any, run_dir: Path, handle: Any, agent: Any,
                     save_config: Callable[[], None] = lambda: None
                     ) -> tuple[ReplayBuffer, ReplayBuffer, dict[str, int]]:
    """The run's online and demo buffers and its counters, resumed or new.

    Nothing in run_dir changes until the resume has succeeded (buffers verified on open, the
    checkpoint loaded) or a new run starts; `save_config` is called at that point, so a resume
    that fails leaves config.yaml and everything else as it was.

    The buffers are the truth for how far the run got: every env step is committed to the
    online buffer as it happens, checkpoints are periodic. So after a kill at any moment,
    env_steps = transitions ever committed to the online buffer, episodes = episodes started
    there (evicted ones included), updates = the checkpoint's (the agent is the checkpoint's;
    0 and a fresh agent if the run was killed before its first one). demos.json, written
    after the demo buffer's last commit, marks the demos as complete; a run killed before
    that has acknowledged nothing online and starts over.
    """
    ckpt_path = run_dir / "checkpoint"
    online_dir, demo_dir = run_dir / "buffers" / "online", run_dir / "buffers" / "demo"
    demos_done = (run_dir / "demos.json").exists()
    counters = {"env_steps": 0, "episodes": 0, "updates": 0}
    if cfg.resume and demos_done and online_dir.exists() and demo_dir.exists():
        online = demo = None
        try:
            online = ReplayBuffer.open(online_dir, fsync=cfg.buffer.fsync,
                                       check_continuity=cfg.buffer.check_continuity)
            demo = ReplayBuffer.open(demo_dir, fsync=cfg.buffer.fsync,
                                     check_continuity=cfg.buffer.check_continuity)
            have_ckpt = ckpt.exists(ckpt_path)
            if have_ckpt:
                saved = ckpt.load_agent(agent, ckpt_path).get("counters", {})
                counters["updates"] = int(saved.get("updates", 0))
        except BaseException:
            for b in (online, demo):
                if b is not None:
                    b.close()
            raise
        save_config()
        counters["env_steps"], counters["episodes"] = online.transitions_added, online.episodes_started
        log.info("resumed at env step %d, episode %d, update %d (%s)", counters["env_steps"],
                 counters["episodes"], counters["updates"],
                 f"checkpoint {ckpt_path}" if have_ckpt else "no checkpoint yet: a fresh agent")
        return online, demo, counters
    for d in (online_dir, demo_dir):
        if not d.exists():
            continue
        if not cfg.resume or not (d / "header.json").exists():
            raise FileExistsError(f"{d} exists but there is no checkpoint to resume from (resume=False, "
                                  f"or not a buffer); use a fresh --run-dir")
        with ReplayBuffer.open(d) as b:
            if d == online_dir and b.transitions_added:
                raise FileExistsError(f"{d} holds online data but {run_dir / 'demos.json'} is missing; "
                                      f"use a fresh --run-dir")
        # The demos never finished (killed while collecting): nothing online yet, start over.
        log.warning("%s: left by a run killed before its demos were complete; starting it over", d)
        shutil.rmtree(d)
    save_config()
    env = handle.env
    action_dim = env.action_space.shape[0]
    online = ReplayBuffer.create(online_dir, env.observation_space, action_dim,
                                 capacity=cfg.buffer.capacity, fsync=cfg.buffer.fsync)
    demo = ReplayBuffer.create(demo_dir, env.observation_space, action_dim,
                               capacity=cfg.buffer.demo_capacity, fsync=cfg.buffer.fsync)
    demo_stats = fill_demo_buffer(cfg, handle, WaitWhenDiskFull(demo))
    # The "demos complete" mark, after the demo buffer's last commit.
    write_json_atomic(run_dir / "demos.json", json.loads(json.dumps(demo_stats, default=str)), indent=2)
    log.info("demos: %s", demo_stats)
    return online, demo, counters
