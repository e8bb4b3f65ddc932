"""record-labels in the twin: the expert's frames are labelled by the twin's ground truth through
the recording path, the storage holds whole episodes, and too few negatives warn."""
from __future__ import annotations


import gymnasium as gym
import numpy as np
import pytest
import torch

from robot_rl import tasks
from robot_rl.reward.labels import LabelWriter, load_labels, read_index
from robot_rl.tasks.apps.record_labels import ExpertSource, LabelBalanceWarning, StepInput, record_labels

SIZE = 64


class TruthLog(gym.Wrapper):
    """Keeps the env's own info['success'] of every frame, to compare with the stored labels."""

    def __init__(self, env):
        super().__init__(env)
        self.truth: list[bool] = []

    def reset(self, **kw):
        obs, info = self.env.reset(**kw)
        self.truth.append(bool(info["success"]))
        return obs, info

    def step(self, action):
        out = self.env.step(action)
        self.truth.append(bool(out[4]["success"]))
        return out


def test_expert_labels_match_ground_truth(tmp_path):
    torch.set_num_threads(1)
    env = TruthLog(tasks.make_env("pick_cube", obs="pixels", seed=0, cameras=("front",), image_size=SIZE))
    source = ExpertSource(env, "pick_cube", noise=0.05, near_miss=0.0, hold_steps=4, seed=0)
    writer = LabelWriter(tmp_path, ["front"], SIZE, task="pick_cube")
    try:
        with _no_warning():  # the expert gives many more negatives than positives
            stats = record_labels(env, source, writer, positives=8, max_episodes=4)
    finally:
        env.close()
    labels = load_labels(tmp_path)
    assert stats["positives"] >= 8 and stats["positives"] == int(labels.labels.sum())
    assert labels.labels.astype(bool).tolist() == env.truth       # every frame, in order
    assert labels.images["front"].shape == (len(env.truth), SIZE, SIZE, 3)
    assert len(set(labels.episodes.tolist())) == stats["episodes"]
    for e in np.unique(labels.episodes):                           # steps 0.. per episode
        assert labels.steps[labels.episodes == e].tolist() == list(range((labels.episodes == e).sum()))
    index = read_index(tmp_path)
    assert index["task"] == "pick_cube" and len(index["chunks"]) >= stats["episodes"]


class _no_warning:
    def __enter__(self):
        import warnings
        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("error", LabelBalanceWarning)

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


class AlwaysSuccess:
    """A scripted operator who holds the success key the whole time (and does not move)."""

    def start_episode(self, env, episode):
        pass

    def label_now(self, env):
        return True

    def step(self, env, obs):
        return StepInput(action=np.zeros(7, np.float32))

    def close(self):
        pass


def test_warns_when_negatives_are_too_few(tmp_path):
    env = tasks.make_env("pick_cube", obs="pixels", seed=0, max_steps=3, cameras=("front",), image_size=SIZE)
    writer = LabelWriter(tmp_path, ["front"], SIZE)
    try:
        with pytest.warns(LabelBalanceWarning, match="fewer than 2x"):
            stats = record_labels(env, AlwaysSuccess(), writer, positives=5, max_episodes=3)
    finally:
        env.close()
    assert stats["negatives"] == 0 and stats["positives"] >= 5 and "warning" in stats
    # a second session appends new episode ids
    assert LabelWriter(tmp_path, ["front"], SIZE).next_episode == stats["episodes"]
    with pytest.raises(ValueError, match="positives"):
        record_labels(env, AlwaysSuccess(), LabelWriter(tmp_path, ["front"], SIZE), positives=0)


def test_cli_registers_record_labels():
    from robot_rl.cli import build_parser
    args = build_parser().parse_args(["record-labels", "--task", "pick_cube", "--out", "x",
                                      "--input", "expert", "--positives", "10"])
    assert args.positives == 10 and args.input == "expert" and callable(args.func)


def test_keyboard_labels_through_a_pty():
    """The keyboard source reads a real pseudo-terminal: a held (repeating) `s` labels success,
    motion keys become an end-effector-frame action, `r` ends the episode."""
    import os
    import pty
    import time

    from robot_rl.tasks.apps.record_labels import KeyboardSource

    master, slave = pty.openpty()
    env = tasks.make_env("pick_cube", obs="state", seed=0)
    source = KeyboardSource(os.ttyname(slave))
    try:
        env.reset(seed=0)
        source.start_episode(env, 0)
        assert not source.label_now(env)
        os.write(master, b"s")
        deadline = time.monotonic() + 2.0
        while not source.label_now(env) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert source.label_now(env)
        time.sleep(0.4)                       # no repeat: the key is no longer held
        assert not source.label_now(env)
        os.write(master, b"ir")
        deadline = time.monotonic() + 2.0
        while not (inp := source.step(env, None)).end_episode and time.monotonic() < deadline:
            time.sleep(0.01)
        # +x in the base frame; the TCP points down (EE frame = base rotated about x by pi)
        assert inp.end_episode and inp.action[0] > 0.2 and abs(inp.action[1]) < 1e-6
    finally:
        source.close()
        env.close()
        os.close(master)
        os.close(slave)


@pytest.mark.slow  # ~21 s on the 2-core box at load 8 (8 rendered episodes, ~500 frames); ~80 s at load 15
def test_classifier_on_twin_frames_reaches_high_held_out_accuracy(tmp_path):
    """Reduced version of bench/reward_classifier.py: ~500 expert frames (with near-misses) of
    the front camera at 64 px, the cube always starting at the same place (yaw still random),
    then train-classifier's held-out episodes. The full-size figures are in docs/benchmarks.md."""
    from robot_rl.reward.train_classifier import TrainClassifierConfig, train_classifier

    torch.set_num_threads(1)
    env = tasks.make_env("pick_cube", obs="pixels", seed=0, cameras=("front",), image_size=SIZE,
                         object_xy_range=0.0, max_steps=70)
    try:
        source = ExpertSource(env, "pick_cube", noise=0.1, near_miss=0.25, hold_steps=5, seed=0)
        with _no_warning():
            record_labels(env, source, LabelWriter(tmp_path / "labels", ["front"], SIZE),
                          positives=1000, max_episodes=8)
    finally:
        env.close()
    report = train_classifier(tmp_path / "labels", tmp_path / "clf", TrainClassifierConfig(
        epochs=15, shift_variants=2, batch_size=64, lr=1e-3, test_fraction=0.3))
    assert report["split"] == "episode" and report["test"]["per_class"][1] >= 5, report["test"]
    assert report["accuracy_at_0.5"] >= 0.95 and report["accuracy"] >= 0.95, report
    assert report["recall"] >= 0.7, report
