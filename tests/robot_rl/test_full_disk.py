"""A full disk, for real: a tiny tmpfs is mounted (we run as root; skipped with the reason
otherwise), filled with a filler file, and freed again.

- the replay buffer raises a clean OSError(ENOSPC) from add() (its disk blocks are reserved
  before a slot is written: a store into a sparse mapped file on a full disk would SIGBUS the
  process) and from commit(), changing nothing; the old header stays; freed, both retry fine;
- a checkpoint that cannot be written leaves the previous one loadable, and no temp files;
- WaitWhenDiskFull (what train.py wraps its buffers in) logs, shows the status, waits and
  retries until the disk has room, or gives up when told to stop, acknowledging nothing;
- the learner keeps a finished episode in memory while the disk is full, does not ack it,
  and writes and acks it once there is room.
"""
from __future__ import annotations

import errno
import logging
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from robot_rl.buffers import ReplayBuffer, storage
from robot_rl.buffers.disk_full import DiskFullError, WaitWhenDiskFull


@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True,
                       capture_output=True, text=True)
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {e}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(disk: Path) -> Path:
    """Writes a filler file until the disk is full; returns it (unlink it to free the disk)."""
    filler = disk / "filler"
    with open(filler, "ab", buffering=0) as f:
        block = b"\0" * 4096
        try:
            while True:
                f.write(block)
        except OSError as e:
            assert e.errno == errno.ENOSPC
    return filler


def state_space(dim=7):
    import gymnasium as gym
    return gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)})


def step(i, last=False):
    obs = {"state": np.full(7, i, np.float32)}
    nxt = {"state": np.full(7, i + 1, np.float32)}
    return dict(obs=obs, action=np.full(7, 0.1, np.float32), reward=float(i), next_obs=nxt,
                terminated=last, truncated=False)


def test_buffer_add_and_commit_fail_cleanly_on_a_full_disk_and_work_once_freed(tiny_disk):
    buf = ReplayBuffer.create(tiny_disk / "online", state_space(), 7, capacity=3000)
    filler = fill(tiny_disk)
    with pytest.raises(OSError) as e:
        buf.add(**step(0))
    assert e.value.errno == errno.ENOSPC and "disk is full" in str(e.value)
    assert len(buf) == 0 and buf.transitions_added == 0          # nothing changed
    filler.unlink()
    buf.add(**step(0))
    buf.commit()
    filler = fill(tiny_disk)
    buf.add(**step(1))                    # its blocks are reserved already: no new space needed
    with pytest.raises(OSError) as e:
        buf.commit()
    assert e.value.errno == errno.ENOSPC
    _, cursor = storage.read_header(tiny_disk / "online")
    assert cursor["high"] == 2 and not (tiny_disk / "online" / "header.json.tmp").exists()
    filler.unlink()
    buf.commit()                          # the same commit, retried
    buf.close()
    with ReplayBuffer.open(tiny_disk / "online") as again:
        assert len(again) == 2
        np.testing.assert_array_equal(again.gather(np.sort(again.transition_indices()))["reward"], [0, 1])


def test_a_failed_checkpoint_leaves_the_previous_one_intact(tiny_disk):
    from robot_rl import checkpoint as ckpt
    first = {"w": torch.arange(1000, dtype=torch.float32), "step": 1}
    ckpt.save_state(first, tiny_disk / "ckpt")
    filler = fill(tiny_disk)
    with pytest.raises(OSError) as e:
        ckpt.save_state({"w": torch.ones(300_000), "step": 2}, tiny_disk / "ckpt")
    assert e.value.errno == errno.ENOSPC
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["ckpt.json", "ckpt.safetensors", "filler"]
    state, _ = ckpt.load_state(tiny_disk / "ckpt")
    assert state["step"] == 1 and torch.equal(state["w"], first["w"])
    filler.unlink()
    ckpt.save_state({"w": torch.ones(3), "step": 2}, tiny_disk / "ckpt")
    assert ckpt.load_state(tiny_disk / "ckpt")[0]["step"] == 2


def test_a_checkpoint_killed_between_its_renames_is_rolled_forward(tmp_path):
    """The window between the tensor rename and the JSON rename: the next load completes it."""
    from robot_rl import checkpoint as ckpt
    ckpt.save_state({"w": torch.zeros(4), "step": 1}, tmp_path / "c")
    ckpt.save_state({"w": torch.ones(4), "step": 2}, tmp_path / "new")
    (tmp_path / "new.safetensors").replace(tmp_path / "c.safetensors")      # first rename done
    (tmp_path / "new.json").replace(tmp_path / "c.json.tmp")                # second one not yet
    assert ckpt.exists(tmp_path / "c")
    state, _ = ckpt.load_state(tmp_path / "c")
    assert state["step"] == 2 and not (tmp_path / "c.json.tmp").exists()


def test_wait_when_disk_full_logs_waits_and_writes_once_there_is_room(tiny_disk, caplog):
    buf = ReplayBuffer.create(tiny_disk / "online", state_space(), 7, capacity=3000)
    filler = fill(tiny_disk)
    seen = []
    wrapped = WaitWhenDiskFull(buf, stop=lambda: seen.append(dict(wrapped.status)) and False, retry_s=0.05)
    freer = threading.Timer(0.5, filler.unlink)
    freer.start()
    try:
        with caplog.at_level(logging.ERROR, logger="robot_rl.buffers"):
            started = time.monotonic()
            wrapped.add(**step(0, last=True))
            wrapped.commit()
    finally:
        freer.cancel()
    assert time.monotonic() - started >= 0.4
    assert seen and seen[0]["disk_full"] and "No space left" in seen[0]["error"]
    assert "disk full while writing" in caplog.text
    assert not wrapped.status["disk_full"] and len(buf) == 1
    # The operator stops while the disk is full: DiskFullError, nothing more is committed.
    filler = fill(tiny_disk)
    stopper = WaitWhenDiskFull(buf, stop=lambda: True, retry_s=0.01)
    stopper.add(**step(5, last=True))          # its slot's blocks were reserved before
    with pytest.raises(DiskFullError, match="stopped while the disk was full"):
        stopper.commit()
    buf.close()
    filler.unlink()
    with ReplayBuffer.open(tiny_disk / "online") as again:
        assert len(again) == 1


def test_the_learner_holds_an_episode_while_the_disk_is_full_and_acks_it_after(tiny_disk):
    from robot_rl.actor import Actor, ActorConfig, Takeover
    from robot_rl.agents.sac import SACAgent, SACConfig
    from robot_rl.auth import load_key
    from robot_rl.buffers import BufferConfig
    from robot_rl.learner import Learner, LearnerConfig
    from robot_rl.run_env import make_env_and_expert
    from robot_rl.train import TrainConfig

    cfg = TrainConfig(task="point_reach", steps=0, run_dir=str(tiny_disk / "run"), demos=1,
                      learning_starts=10_000, batch_size=16, progress=False, threads=1, device="cpu",
                      # Plain RLPD (2 critics, no BC): the small learner this test was written for.
                      agent=SACConfig(hidden_dims=(16, 16), critic_ensemble_size=2, critic_subsample_size=None,
                                      bc_weight=0.0),
                      buffer=BufferConfig(capacity=600, demo_capacity=600))
    actors = []
    learner = Learner(cfg, LearnerConfig(weights_every_s=1e9, heartbeat_every_s=0.0, disk_retry_s=0.0),
                      publish_weights=lambda b: None, publish_ack=lambda b: [a.receive_ack(b) for a in actors])
    handle = make_env_and_expert("point_reach", seed=0)
    agent = SACAgent(cfg.agent, handle.env.observation_space, handle.env.action_space, seed=0)
    human = Takeover(clock=lambda: 0.0)        # a frozen clock: a held button never times out
    actor = Actor(ActorConfig(actor_id="a", resend_after_s=0.0), handle, agent, send=learner.receive,
                  key=load_key(learner.key_path),
                  takeover=human)
    actors.append(actor)
    try:
        actor.run_episode(seed=0)
        for _ in range(3):
            learner.step()
            actor.pump()
        stored = len(learner.online)
        assert stored == actor.next_seq and not actor.unacked
        demos = len(learner.demo)
        filler = fill(tiny_disk)
        human.on_joy(None, takeover_button=True)      # this episode is the human's: demo buffer too
        actor.run_episode(seed=1)
        human.on_joy(None, takeover_button=False)
        for _ in range(5):
            learner.step()
            actor.pump()
        assert learner.status["disk_full"] and len(learner.blocked) == 1
        assert actor.unacked and actor.acked == stored - 1          # not acknowledged
        assert len(learner.online) == stored
        filler.unlink()
        for _ in range(5):
            learner.step()
            actor.pump()
        assert not learner.blocked and not learner.status["disk_full"]
        assert not actor.unacked and len(learner.online) == actor.next_seq      # written once, acked
        assert len(learner.demo) == demos + actor.next_seq - stored             # its segment, once
    finally:
        learner.close()
    with ReplayBuffer.open(tiny_disk / "run" / "buffers" / "online") as online:
        assert len(online) == actor.next_seq


@pytest.mark.slow
def test_train_waits_out_a_full_disk_and_finishes_with_nothing_lost(tiny_disk, caplog):
    """~20 s: `robot-rl train`'s loop (in a thread) on a tmpfs that fills up mid-run: it logs,
    stops acknowledging steps (the buffer's committed count stands still), and when the disk is
    freed it goes on and finishes; every step is in the buffer once and the counters agree."""
    from robot_rl import config as config_lib
    from robot_rl.train import TrainConfig, train

    run_dir = tiny_disk / "run"
    cfg = config_lib.load(TrainConfig, None, [
        "task=point_reach", "steps=300", "demos=2", "learning_starts=64", "batch_size=32",
        "updates_per_step=0.25", f"run_dir={run_dir}", "progress=false", "threads=1", "device=cpu",
        "eval_every=0", "final_eval_episodes=1", "checkpoint_every=100", "agent.hidden_dims=[16,16]",
        # Plain RLPD (2 critics, no BC): the small learner this test was written for.
        "agent.critic_ensemble_size=2", "agent.critic_subsample_size=null", "agent.bc_weight=0",
        "buffer.capacity=1000", "buffer.demo_capacity=1000"])
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(final=train(cfg)), daemon=True)
    with caplog.at_level(logging.ERROR):
        runner.start()
        filler = None
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    high = storage.read_header(run_dir / "buffers" / "online")[1]["high"]
                except Exception:
                    high = 0
                if high >= 80:
                    break
                assert runner.is_alive() and time.monotonic() < deadline, "train did not get going"
                time.sleep(0.01)
            filler = fill(tiny_disk)
            time.sleep(1.5)
            stalled = storage.read_header(run_dir / "buffers" / "online")[1]["high"]
            time.sleep(1.0)
            assert storage.read_header(run_dir / "buffers" / "online")[1]["high"] == stalled
            assert runner.is_alive(), "train must wait, not crash"
            assert "disk full" in caplog.text
        finally:
            if filler is not None:
                filler.unlink()
            runner.join(timeout=120)
    assert not runner.is_alive() and "final" in result
    with ReplayBuffer.open(run_dir / "buffers" / "online") as online:
        assert result["final"]["env_steps"] == online.transitions_added == len(online) >= 300
