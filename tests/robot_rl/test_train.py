"""The training loop end to end on the built-in point_reach task (no physics engine).

This is the suite's honest learning test: SAC with scripted demos (RLPD 50/50 batches) must
solve a small sparse-reward continuous-control task that a random policy essentially never
solves. The full sample-efficiency bar for the twin tasks lives in bench/.
"""
import json

import numpy as np
import pytest

from robot_rl import config as config_lib
from robot_rl.buffers.replay import ReplayBuffer
from robot_rl.run_env import make_env_and_expert
from robot_rl.train import TrainConfig, run_episode, train


def _cfg(tmp_path, **kw):
    # One torch thread: deterministic results, and no OpenMP oversubscription on a 2-core box.
    base = dict(task="point_reach", run_dir=str(tmp_path / "run"), demos=20, eval_every=0,
                final_eval_episodes=20, progress=False, learning_starts=128, checkpoint_every=0,
                threads=1)
    # Plain RLPD (2 critics, no BC), the learner these tests were written for: they check the
    # loop, resume and overrides, and stay fast; the defaults are held in test_configs_shipped.
    base.update({"agent.critic_ensemble_size": 2, "agent.critic_subsample_size": "null",
                 "agent.bc_weight": 0.0})
    base.update(kw)
    return config_lib.load(TrainConfig, None, [f"{k}={v}" for k, v in base.items()])


def test_random_policy_rarely_solves_point_reach():
    handle = make_env_and_expert("point_reach")
    rng = np.random.default_rng(0)
    wins = [run_episode(handle, lambda o: rng.uniform(-1, 1, 7).astype(np.float32), seed=s)["success"]
            for s in range(100)]
    assert np.mean(wins) <= 0.2


def test_expert_solves_point_reach():
    handle = make_env_and_expert("point_reach")
    wins = [run_episode(handle, handle.expert.act, seed=s)["success"] for s in range(20)]
    assert np.mean(wins) == 1.0


@pytest.mark.slow
def test_sac_with_demos_learns_point_reach(tmp_path):
    final = train(_cfg(tmp_path, steps=2500))
    run = tmp_path / "run"
    assert final["success_rate"] >= 0.6, final          # random policy: <= 0.2 (test above)
    ev = json.loads((run / "eval.json").read_text())
    assert ev["episodes"] == 20 and 0 < ev["mean_episode_length"] <= 30
    assert (run / "learning_curve.png").stat().st_size > 1000
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert (run / "checkpoint.safetensors").is_file() and (run / "checkpoint.json").is_file()


def test_run_resumes_with_counters_and_buffers(tmp_path):
    first = train(_cfg(tmp_path, steps=300, final_eval_episodes=2))
    assert first["env_steps"] >= 300
    second = train(_cfg(tmp_path, steps=600, final_eval_episodes=2))
    assert second["env_steps"] >= 600
    # Resumed, not restarted: the demos were collected once and the steps continued.
    assert second["env_steps"] - first["env_steps"] < 400
    assert second["updates"] > first["updates"]


def test_fresh_run_refuses_leftover_buffers_without_checkpoint(tmp_path):
    (tmp_path / "run" / "buffers" / "online").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="no checkpoint"):
        train(_cfg(tmp_path, steps=10))


def test_task_overrides_reach_the_env_and_the_run_config(tmp_path):
    """TrainConfig.task_overrides changes TaskSpec fields for one run, from the CLI or YAML, and
    is saved with the run so eval/deploy/export rebuild the same task."""
    cfg = config_lib.load(TrainConfig, None, [
        "task_overrides={max_steps: 7, rpy_low: [-0.3, -0.3, -1.0], rpy_high: [0.3, 0.3, 1.0]}"])
    handle = make_env_and_expert("pick_cube", seed=0, task_overrides=cfg.task_overrides)
    try:
        spec = handle.env.unwrapped.task
        assert spec.max_steps == 7
        assert spec.rpy_low == (-0.3, -0.3, -1.0) and spec.rpy_high == (0.3, 0.3, 1.0)
        handle.env.reset(seed=0)
        steps, done = 0, False
        while not done:
            _, _, terminated, truncated, _ = handle.env.step(np.zeros(7, np.float32))
            steps, done = steps + 1, terminated or truncated
        assert steps == 7 and truncated
    finally:
        handle.close()
    config_lib.save(cfg, tmp_path / "config.yaml")
    assert config_lib.load(TrainConfig, tmp_path / "config.yaml").task_overrides == cfg.task_overrides
    with pytest.raises(ValueError, match="task_overrides"):
        make_env_and_expert("point_reach", task_overrides={"max_steps": 3})
    with pytest.raises((TypeError, ValueError), match="max_stepz"):
        make_env_and_expert("pick_cube", task_overrides={"max_stepz": 3})


def test_bc_rows_of_a_run_are_the_demo_buffer_s(tmp_path):
    """agent.bc_weight clones the actions on batch rows flagged `intervention`: in a run those
    must be exactly the demo buffer's (scripted demos, human corrections), never the policy's."""
    final = train(_cfg(tmp_path, steps=300, final_eval_episodes=2, **{"agent.bc_weight": 1.0}))
    assert final["updates"] > 0
    rng = np.random.default_rng(0)
    demo = ReplayBuffer.open(tmp_path / "run" / "buffers" / "demo")
    online = ReplayBuffer.open(tmp_path / "run" / "buffers" / "online")
    try:
        assert np.all(demo.sample(256, rng)["intervention"] == 1.0)
        assert np.all(online.sample(256, rng)["intervention"] == 0.0)
    finally:
        demo.close()
        online.close()
