"""`robot-rl train` (in-process) SIGKILLed at random moments, restarted, run to the end.

Real processes (`python -m robot_rl.cli train`), a real SIGKILL by pid at a random point of the
online phase (once before the first checkpoint, once after), always cleaned up in a finally.
After each kill and at the end:
- every transition committed before a kill is still in the online buffer, byte-identical;
- the step counter continues from the buffer (env_steps = transitions in the online buffer:
  no double counting, no going back to the checkpoint's older count);
- the update counter keeps the run's updates-per-step ratio (updates owed since the last
  checkpoint are caught up);
- the learning curve (progress.json) continues: what was there at the kill is a prefix of the
  final curve, steps only grow, and the curve never runs past the buffer.
point_reach (no physics), tiny networks: ~25-35 s on 2 busy cores.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from robot_rl.buffers import ReplayBuffer
from robot_rl.buffers import storage
from tests.robot_rl.conftest import write_small_run_config

ROOT = Path(__file__).resolve().parents[2]
STEPS, LEARNING_STARTS, UTD = 420, 64, 0.5


def write_config(run_dir: Path, **changes) -> Path:
    return write_small_run_config(run_dir, **{
        "steps": STEPS, "learning_starts": LEARNING_STARTS, "updates_per_step": UTD, "checkpoint_every": 120,
        "eval_every": 0, "final_eval_episodes": 2, "buffer": {"capacity": 4000, "demo_capacity": 4000},
        **changes})


def start_train(cfg: Path, log: Path) -> subprocess.Popen:
    with open(log, "a") as f:
        return subprocess.Popen([sys.executable, "-m", "robot_rl.cli", "train", "--config", str(cfg)],
                                cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


def committed_frames(online_dir: Path) -> int:
    """The online buffer's committed high-water mark, read without taking its lock."""
    try:
        _, cursor = storage.read_header(online_dir)
    except Exception:       # not there yet (or being replaced: the rename is atomic, retry)
        return -1
    return cursor["high"]


def wait_for_frames(proc: subprocess.Popen, online_dir: Path, frames: int, log: Path) -> None:
    """Until the run has committed `frames` online frames (it must not exit first)."""
    deadline = time.monotonic() + 120
    while committed_frames(online_dir) < frames:
        assert proc.poll() is None, f"train exited early ({proc.returncode}):\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no progress to frame {frames}:\n{log.read_text()[-3000:]}"
        time.sleep(0.01)


def kill_when(proc: subprocess.Popen, online_dir: Path, frames: int, extra_s: float, log: Path) -> None:
    wait_for_frames(proc, online_dir, frames, log)
    time.sleep(extra_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def snapshot(run_dir: Path) -> dict:
    with ReplayBuffer.open(run_dir / "buffers" / "online") as online:
        idx = np.sort(online.transition_indices())
        got = online.gather(idx)
        snap = {"n": online.transitions_added, "action": got["action"].copy(),
                "reward": got["reward"].copy(), "state": got["obs"]["state"].copy()}
        assert len(online) == online.transitions_added      # no eviction at this capacity
    progress = run_dir / "progress.json"
    snap["curve"] = json.loads(progress.read_text()) if progress.exists() else {"episode_step": []}
    return snap


@pytest.mark.slow
def test_train_killed_twice_resumes_with_nothing_lost_and_counters_continuing(tmp_path, kill_rng):
    rng, seed = kill_rng, kill_rng.seed_value
    run_dir = tmp_path / "run"
    cfg = write_config(run_dir)
    online_dir = run_dir / "buffers" / "online"
    log = tmp_path / "train.log"
    snaps = []
    proc = None
    try:
        # Kill 1: before the first checkpoint (step 120); kill 2: after it, later in the run.
        for low, high in ((10, 100), (150, 330)):
            proc = start_train(cfg, log)
            kill_when(proc, online_dir, rng.randrange(low, high), rng.uniform(0.0, 0.05), log)
            snaps.append(snapshot(run_dir))
            assert snaps[-1]["n"] > 0, f"seed {seed}"
        proc = start_train(cfg, log)
        assert proc.wait(timeout=240) == 0, f"seed {seed}:\n{log.read_text()[-4000:]}"
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    ev = json.loads((run_dir / "eval.json").read_text())
    curve = json.loads((run_dir / "progress.json").read_text())
    with ReplayBuffer.open(online_dir) as online:
        n = online.transitions_added
        idx = np.sort(online.transition_indices())
        final = online.gather(idx)
        episodes = online.episodes()
    assert ev["env_steps"] == n >= STEPS, (seed, ev["env_steps"], n)
    assert n - STEPS < 30, "the run went on past its last episode"
    # Updates: the in-process ratio over the whole run, as if it had never been killed.
    assert abs(ev["updates"] - UTD * (n - LEARNING_STARTS + 1)) <= 2, (seed, ev["updates"], n)
    previous_n = 0
    for snap in snaps:
        k = snap["n"]
        assert previous_n <= k <= n, (seed, previous_n, k, n)         # never goes back
        np.testing.assert_array_equal(final["action"][:k], snap["action"], err_msg=f"seed {seed}")
        np.testing.assert_array_equal(final["reward"][:k], snap["reward"], err_msg=f"seed {seed}")
        np.testing.assert_array_equal(final["obs"]["state"][:k], snap["state"], err_msg=f"seed {seed}")
        steps = snap["curve"]["episode_step"]
        assert curve["episode_step"][:len(steps)] == steps, f"seed {seed}: the curve was rewritten"
        assert not steps or steps[-1] <= k
        previous_n = k
    steps = curve["episode_step"]
    assert steps == sorted(set(steps)) and steps[-1] <= n, f"seed {seed}"
    # Every completed training episode is on the curve; killed ones were closed in the buffer.
    ended = [e for e in episodes if e["end"] in ("terminated", "truncated")]
    assert len(steps) >= len(ended) - 1, (seed, len(steps), len(ended))
    assert sum(e["end"] == "aborted" for e in episodes) <= len(snaps)
    assert all(len(curve[k]) == len(steps) for k in curve if k.startswith("episode_"))


@pytest.mark.slow
def test_a_run_killed_while_collecting_demos_starts_over(tmp_path):
    """~10-20 s. Demos half-written, no demos.json: nothing was acknowledged online, so the run starts over."""
    from robot_rl import config as config_lib
    from robot_rl.train import TrainConfig, train

    run_dir = tmp_path / "run"
    cfg = config_lib.load(TrainConfig, write_config(run_dir, steps=40, final_eval_episodes=1,
                                                     checkpoint_every=0))
    from robot_rl.run_env import make_env_and_expert
    handle = make_env_and_expert("point_reach")
    space = handle.env.observation_space
    with ReplayBuffer.create(run_dir / "buffers" / "demo", space, 7, capacity=100) as demo:
        obs = {"state": np.zeros(space["state"].shape, np.float32)}
        demo.add(obs, np.zeros(7, np.float32), 0.0, obs, False, False)
        demo.commit()
    ReplayBuffer.create(run_dir / "buffers" / "online", space, 7, capacity=100).close()
    final = train(cfg)
    assert final["env_steps"] >= 40
    assert json.loads((run_dir / "demos.json").read_text())["demos"] == 3
    # But a run with online data and no demos.json is refused: it would throw data away.
    (run_dir / "demos.json").unlink()
    with pytest.raises(FileExistsError, match="holds online data"):
        train(cfg)
