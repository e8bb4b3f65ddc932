"""The scripted experts succeed through the env's own action interface (they stand in for a
human on the SpaceMouse when collecting demos in the twin)."""
import numpy as np
import pytest

from robot_rl import tasks
from robot_rl.tasks.experts import make_expert


def success_rate(name: str, episodes: int, noise: float = 0.0, **overrides) -> tuple[float, float]:
    env = tasks.make_env(name, obs="state", seed=0, **overrides)
    expert = make_expert(name, env, noise=noise, seed=0)
    successes, lengths = 0, []
    for episode in range(episodes):
        obs, info = env.reset(seed=1000 + episode)
        for step in range(env.task.max_steps):
            action = expert.act(obs, info)
            assert action.shape == (7,) and action.dtype == np.float32
            assert np.all(np.abs(action) <= 1.0)
            obs, reward, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        successes += info["success"]
        lengths.append(step + 1)
        assert reward == float(info["success"])
    env.close()
    return successes / episodes, float(np.mean(lengths))


@pytest.mark.slow  # ~15 s on 2 cores
def test_pick_cube_expert_succeeds_95_percent():
    rate, length = success_rate("pick_cube", 20)
    assert rate >= 0.95, f"success {rate:.2f}, mean length {length:.1f}"


def test_pick_cube_expert_grasps_without_turning_where_the_task_holds_the_yaw():
    # A task variant that holds the hand level at its reset yaw (task_overrides): the expert
    # must grasp the turned cube as the hand stands, not wait for a turn the box clips away.
    rate, length = success_rate("pick_cube", 5, rpy_low=(0.0, 0.0, 0.0), rpy_high=(0.0, 0.0, 0.0))
    assert rate == 1.0, f"success {rate:.2f}, mean length {length:.1f}"


@pytest.mark.slow  # ~8 s on 2 cores
def test_peg_insert_expert_succeeds_95_percent():
    rate, length = success_rate("peg_insert", 20)
    assert rate >= 0.95, f"success {rate:.2f}, mean length {length:.1f}"


def test_expert_noise_is_seeded_and_changes_actions():
    env = tasks.make_env("pick_cube", obs="state", seed=0)
    obs, info = env.reset(seed=5)
    clean = make_expert("pick_cube", env).act(obs, info)
    noisy_a = make_expert("pick_cube", env, noise=0.2, seed=1).act(obs, info)
    noisy_b = make_expert("pick_cube", env, noise=0.2, seed=1).act(obs, info)
    np.testing.assert_array_equal(noisy_a, noisy_b)
    assert np.abs(noisy_a[:6] - clean[:6]).max() > 1e-3
    assert noisy_a[6] == clean[6]  # the gripper stays decisive
    with pytest.raises(ValueError, match="no expert"):
        make_expert("stack_blocks", env)
