"""Crash safety: a real writer process is SIGKILLed mid-stream; every acknowledged transition
survives, byte-identical, and nothing half-written is ever served.

This file is also the writer: `python test_buffer_kill.py DIR SEED FIRST_EPISODE` opens the
buffer, adds deterministic transitions, commits every 1..5 adds and prints the last
acknowledged (episode, t) after each commit, until it is killed.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from robot_rl.buffers import ReplayBuffer

STATE_DIM, ACTION_DIM, SIZE = 4, 3, 24
REPO = Path(__file__).resolve().parents[2]


def episode_length(seed, episode):
    return int(np.random.default_rng([seed, episode]).integers(1, 9))


def frame(seed, episode, t):
    rng = np.random.default_rng([seed, episode, t, 0])
    state = rng.standard_normal(STATE_DIM).astype(np.float32)
    state[0], state[1] = episode, t
    return {"state": state,
            "wrist": rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8),
            "front": rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)}


def step(seed, episode, t):
    """Everything add() gets for step t of `episode`: deterministic in (seed, episode, t)."""
    rng = np.random.default_rng([seed, episode, t, 1])
    last = t == episode_length(seed, episode) - 1
    return dict(obs=frame(seed, episode, t), action=rng.uniform(-1, 1, ACTION_DIM).astype(np.float32),
                reward=float(rng.standard_normal()), next_obs=frame(seed, episode, t + 1),
                terminated=last and episode % 2 == 0, truncated=last and episode % 2 == 1,
                grasp_penalty=float(-rng.random()), intervention=bool(rng.random() < 0.3))


def writer(directory, seed, first_episode):
    buf = ReplayBuffer.open(directory)
    rng = np.random.default_rng(seed + first_episode)
    pending = 0
    for episode in range(first_episode, first_episode + 10**6):
        for t in range(episode_length(seed, episode)):
            buf.add(**step(seed, episode, t))
            pending += 1
            if pending >= rng.integers(1, 6):
                buf.commit()
                pending = 0
                print(f"ack {episode} {t}", flush=True)


def make_buffer(directory, capacity):
    import gymnasium as gym
    space = gym.spaces.Dict({
        "state": gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32),
        "wrist": gym.spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8),
        "front": gym.spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8)})
    ReplayBuffer.create(directory, space, ACTION_DIM, capacity=capacity).close()


def run_and_kill(directory, seed, first_episode, acks_before_kill, delay_s=0.0):
    """Starts a writer, SIGKILLs it `delay_s` after reading its `acks_before_kill`-th ack (it runs
    ahead of the reader, so the kill lands anywhere in add/commit); returns the last ack read."""
    child = subprocess.Popen([sys.executable, __file__, str(directory), str(seed), str(first_episode)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        last = None
        for _ in range(acks_before_kill):
            line = child.stdout.readline()
            assert line.startswith("ack "), f"writer died: {line!r} {child.stderr.read()}"
            last = tuple(int(x) for x in line.split()[1:])
        time.sleep(delay_s)
        os.kill(child.pid, signal.SIGKILL)          # mid-stream: it is still adding and committing
        assert child.wait(timeout=30) == -signal.SIGKILL
        return last
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        child.stdout.close()
        child.stderr.close()


def stream(seed, first_episode, last_episode):
    return [(e, t) for e in range(first_episode, last_episode + 1) for t in range(episode_length(seed, e))]


def check_all_intact(buf, seed):
    """Every live transition equals, byte for byte, what the writer added; returns their (e, t)."""
    batch = buf.gather(buf.transition_indices())
    keys = []
    for i in range(len(buf)):
        e, t = int(batch["obs"]["state"][i, 0]), int(batch["obs"]["state"][i, 1])
        want = step(seed, e, t)
        for part in ("obs", "next_obs"):
            for key, value in want[part].items():
                assert batch[part][key][i].tobytes() == value.tobytes(), (e, t, part, key)
        assert batch["action"][i].tobytes() == want["action"].tobytes()
        assert batch["reward"][i] == np.float32(want["reward"])
        assert batch["grasp_penalty"][i] == np.float32(want["grasp_penalty"])
        for flag in ("terminated", "truncated", "intervention"):
            assert batch[flag][i] == float(want[flag]), (e, t, flag)
        keys.append((e, t))
    return keys


def test_sigkill_keeps_every_acknowledged_transition(tmp_path):
    seed, directory = 7, tmp_path / "buf"
    make_buffer(directory, capacity=10_000)              # no wrap-around here
    expected_prefix, first_episode = [], 0
    rng = np.random.default_rng(0)
    for round_ in range(3):                              # kill, reopen, resume, kill again
        acked = run_and_kill(directory, seed, first_episode, int(rng.integers(20, 120)))
        with ReplayBuffer.open(directory) as buf:
            present = check_all_intact(buf, seed)
            # Everything acknowledged is there, in order; beyond that only whole committed steps.
            ack_pos = stream(seed, first_episode, acked[0]).index(acked)
            must = expected_prefix + stream(seed, first_episode, acked[0])[:ack_pos + 1]
            assert present[:len(must)] == must
            may = expected_prefix + stream(seed, first_episode, acked[0] + 50)
            assert present == may[:len(present)]
            # The interrupted episode is closed and stays sampleable; nothing crosses episodes.
            batch = buf.sample(512, np.random.default_rng(round_))
            np.testing.assert_array_equal(batch["obs"]["state"][:, 0], batch["next_obs"]["state"][:, 0])
            np.testing.assert_array_equal(batch["obs"]["state"][:, 1] + 1, batch["next_obs"]["state"][:, 1])
        expected_prefix = present
        first_episode = present[-1][0] + 1              # the resumed writer starts a new episode


def test_sigkill_during_ring_wraparound(tmp_path):
    seed, directory, capacity = 11, tmp_path / "buf", 64
    make_buffer(directory, capacity=capacity)
    rng = np.random.default_rng(1)
    before, first_episode = [], 0
    for round_ in range(4):                              # each ~100-300 commits through 64 slots
        acked = run_and_kill(directory, seed, first_episode, int(rng.integers(100, 300)),
                             delay_s=float(rng.uniform(0, 0.02)))
        with ReplayBuffer.open(directory) as buf:
            present = check_all_intact(buf, seed)
            full = before + stream(seed, first_episode, acked[0] + 50)
            start = full.index(present[0])
            assert present == full[start:start + len(present)]     # a contiguous, newest suffix
            assert present[0][1] == 0                              # of whole episodes
            assert full.index(present[-1]) >= full.index(acked)    # reaching at least the last ack
            assert len(present) >= capacity // 2
            assert all(row["transitions"] > 0 for row in buf.episodes())
        before, first_episode = present, present[-1][0] + 1


if __name__ == "__main__":
    writer(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
