"""The training loop end to end on the built-in point_reach task (no physics engine).

This is the suite's honest learning test: SAC with scripted demos (RLPD 50/50 batches) must
solve a small sparse-reward continuous-control task that a random policy essentially never
solves. The full sample-efficiency bar for the twin tasks lives in bench/.
"""
import json

import numpy as np
import pytest

from robot_rl import config as config_lib
from robot_rl.run_env import make_env_and_expert
from robot_rl.train import TrainConfig, run_episode, train


def _cfg(tmp_path, **kw):
    # One torch thread: deterministic results, and no OpenMP oversubscription on a 2-core box.
    base = dict(task="point_reach", run_dir=str(tmp_path / "run"), demos=20, eval_every=0,
                final_eval_episodes=20, progress=False, learning_starts=128, checkpoint_every=0,
                threads=1)
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
