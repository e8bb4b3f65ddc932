"""The distributed learner's demos: a recorded episode dataset is loaded into the demo buffer;
a run on a real robot refuses scripted twin demos; a missing or mismatched dataset stops the
learner at start with an error naming the dataset (point_reach: fast, no physics)."""
from __future__ import annotations

import json

import pytest

from robot_rl.agents.sac import SACConfig
from robot_rl.buffers import BufferConfig
from robot_rl.datasets import EpisodeBuilder, EpisodeDataset
from robot_rl.learner import Learner, LearnerConfig
from robot_rl.run_env import make_env_and_expert
from robot_rl.train import TrainConfig


def config(tmp_path, **changes) -> TrainConfig:
    base = dict(task="point_reach", steps=0, run_dir=str(tmp_path / "run"), demos=3, learning_starts=10_000,
                batch_size=32, progress=False, threads=1, device="cpu", agent=SACConfig(hidden_dims=(32, 32)),
                buffer=BufferConfig(capacity=2000, demo_capacity=2000))
    base.update(changes)
    return TrainConfig(**base)


def learner(cfg, backend="twin") -> Learner:
    return Learner(cfg, LearnerConfig(robot_backend=backend), publish_weights=lambda b: None,
                   publish_ack=lambda b: None)


def record(path, episodes: int = 2) -> int:
    """Expert episodes of point_reach written as a recorded dataset; returns the transitions."""
    handle = make_env_and_expert("point_reach", seed=0)
    env = handle.env
    ds = EpisodeDataset.create(path, env.observation_space, env.action_space.shape[0])
    n = 0
    for i in range(episodes):
        obs, info = env.reset(seed=i)
        builder = EpisodeBuilder(obs)
        while True:
            action = handle.expert.act(obs)
            obs, reward, terminated, truncated, info = env.step(action)
            builder.add(action, reward, obs, terminated, truncated, intervention=True)
            if terminated or truncated:
                break
        ds.append(builder.build(task="point_reach", success=bool(info["success"]), source="spacemouse", seed=i))
        n += len(builder) if info["success"] else 0
    ds.close()
    return n


def test_recorded_dataset_fills_the_demo_buffer(tmp_path):
    n = record(tmp_path / "demos")
    assert n > 0
    lr = learner(config(tmp_path, demo_dataset=str(tmp_path / "demos")), backend="ros")
    try:
        assert len(lr.demo) == n and len(lr.online) == 0
        stats = json.loads((tmp_path / "run" / "demos.json").read_text())
        assert stats["demo_dataset"] == str(tmp_path / "demos") and stats["loaded"]["sources"] == {"spacemouse": 2}
    finally:
        lr.close()


def test_real_robot_with_scripted_demos_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"robot_backend=ros with demos=3 scripted twin demos.*demo_dataset=DIR"):
        learner(config(tmp_path), backend="ros")
    assert not (tmp_path / "run" / "buffers").exists()        # refused before anything was made
    learner(config(tmp_path, demos=0), backend="ros").close()  # no demos at all is allowed


def test_missing_or_mismatched_dataset_names_it(tmp_path):
    with pytest.raises(Exception, match="nowhere") as e:
        learner(config(tmp_path, demo_dataset=str(tmp_path / "nowhere")), backend="ros")
    assert "Traceback" not in str(e.value)
    # A dataset of another task's observations.
    from robot_rl import tasks  # noqa: F401 - the twin tasks
    env = make_env_and_expert("pick_cube", seed=0).env
    EpisodeDataset.create(tmp_path / "other", env.observation_space, env.action_space.shape[0]).close()
    env.close()
    with pytest.raises(ValueError, match=r"other.*do not match") as e:
        learner(config(tmp_path, run_dir=str(tmp_path / "run2"), demo_dataset=str(tmp_path / "other")), backend="ros")
