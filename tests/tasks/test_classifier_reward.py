"""ClassifierReward in the twin: the classifier's verdict ends the episode, its threshold is
respected, multi-stage rewards follow the stage table, the state check vetoes, and a state-only
env still shows the classifier its camera (rendered by the twin).

The classifiers here are real RewardClassifier models whose last layer is set by hand (zero
weights, chosen biases) so that their output probabilities are known exactly; that is what the
wrapper's logic is tested against (training itself is tested in tests/robot_rl)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_rl import tasks
from robot_rl.reward.classifier import ClassifierConfig, RewardClassifier
from robot_rl.tasks.classifier_reward import ClassifierReward, parse_state_check

SIZE = 64


def fixed_classifier(probs, threshold=0.5, cameras=("front",)) -> RewardClassifier:
    torch.set_num_threads(1)
    model = RewardClassifier(ClassifierConfig(cameras=cameras, image_size=SIZE, num_classes=len(probs),
                                              threshold=threshold))
    with torch.no_grad():
        model.head[-1].weight.zero_()
        model.head[-1].bias.copy_(torch.log(torch.tensor(probs, dtype=torch.float32)))
    return model.eval()


@pytest.fixture(scope="module")
def state_env():
    env = tasks.make_env("pick_cube", obs="state", seed=0, max_steps=5)
    yield env
    env.close()


def hold(env):
    return np.zeros(7, np.float32)


def test_positive_ends_the_episode(state_env):
    env = ClassifierReward(state_env, fixed_classifier([0.1, 0.9]))
    obs, info = env.reset(seed=1)
    assert info["success"] is False
    obs, reward, terminated, truncated, info = env.step(hold(env))
    assert terminated and info["success"] and reward == 1.0
    assert info["classifier_prob"] == pytest.approx(0.9, abs=1e-5)
    assert info["ground_truth_success"] is False   # the cube is still on the table


def test_threshold_is_respected(state_env):
    env = ClassifierReward(state_env, fixed_classifier([0.1, 0.9], threshold=0.95))
    env.reset(seed=1)
    _, reward, terminated, truncated, info = env.step(hold(env))
    assert not terminated and not info["success"] and reward == 0.0
    env = ClassifierReward(state_env, fixed_classifier([0.1, 0.9], threshold=0.95), threshold=0.85)
    env.reset(seed=1)
    assert env.step(hold(env))[2]       # the override wins
    with pytest.raises(ValueError, match="threshold"):
        ClassifierReward(state_env, fixed_classifier([0.5, 0.5]), threshold=1.5)


def test_multi_stage_rewards(state_env):
    # 4 classes: stage 2 of 3 is most likely; the final class (0.3) is below its threshold.
    env = ClassifierReward(state_env, fixed_classifier([0.1, 0.2, 0.4, 0.3], threshold=0.5))
    env.reset(seed=1)
    _, reward, terminated, _, info = env.step(hold(env))
    assert info["stage"] == 2 and reward == pytest.approx(2 / 3) and not terminated
    env = ClassifierReward(state_env, fixed_classifier([0.1, 0.2, 0.4, 0.3], threshold=0.25),
                           stage_rewards=(0.0, 0.1, 0.3, 5.0))
    env.reset(seed=1)
    _, reward, terminated, _, info = env.step(hold(env))
    assert info["stage"] == 3 and reward == 5.0 and terminated and info["success"]
    env = ClassifierReward(state_env, fixed_classifier([0.1, 0.2, 0.4, 0.3]), stage_rewards=(0.0, 0.1, 0.3, 5.0))
    env.reset(seed=1)
    assert env.step(hold(env))[1] == 0.3
    with pytest.raises(ValueError, match="stage_rewards"):
        ClassifierReward(state_env, fixed_classifier([0.5, 0.5]), stage_rewards=(0.0, 0.5, 1.0))


def test_state_check_vetoes_a_positive(state_env):
    env = ClassifierReward(state_env, fixed_classifier([0.1, 0.9]), state_check="gripper>=0.5")
    env.reset(seed=1)
    _, reward, terminated, _, info = env.step(hold(env))   # the gripper is open
    assert not terminated and not info["success"] and reward == 0.0
    env = ClassifierReward(state_env, fixed_classifier([0.1, 0.9]), state_check=lambda s: s.tcp_pos[2] > 0.1)
    env.reset(seed=1)
    assert env.step(hold(env))[2]
    check = parse_state_check("z>=0.08, force<5")
    assert check(state_env.last_state)
    for bad in ("", "height>1", "z>=abc", "z=>1", "z>=inf"):
        with pytest.raises(ValueError):
            parse_state_check(bad)


def test_state_only_env_renders_the_classifier_camera(state_env):
    env = ClassifierReward(state_env, fixed_classifier([0.5, 0.5]))
    obs, _ = env.reset(seed=2)
    assert set(obs) == {"state"}
    frames = env._frames(obs)
    assert frames["front"].shape == (SIZE, SIZE, 3) and frames["front"].dtype == np.uint8
    np.testing.assert_array_equal(frames["front"], state_env.robot.render("front", SIZE))


def test_pixels_env_uses_its_observation():
    env = tasks.make_env("pick_cube", obs="pixels", seed=0, max_steps=3, cameras=("wrist",), image_size=SIZE)
    try:
        wrapped = ClassifierReward(env, fixed_classifier([0.5, 0.5], cameras=("wrist",)))
        obs, _ = wrapped.reset(seed=0)
        assert wrapped._frames(obs)["wrist"] is not None
        np.testing.assert_array_equal(wrapped._frames(obs)["wrist"], obs["wrist"])
    finally:
        env.close()


def test_make_env_and_expert_wraps(tmp_path):
    from robot_rl.run_env import make_env_and_expert
    path = fixed_classifier([0.2, 0.8]).save(tmp_path / "clf.safetensors")
    handle = make_env_and_expert("pick_cube", "state", seed=0, reward_classifier=str(path))
    try:
        assert isinstance(handle.env, ClassifierReward)
        handle.env.reset(seed=0)
        _, reward, terminated, _, info = handle.env.step(handle.expert.act(None))
        assert reward == 1.0 and terminated and "ground_truth_success" in info
    finally:
        handle.close()
    with pytest.raises(ValueError, match="does not exist"):
        make_env_and_expert("pick_cube", "state", reward_classifier=str(tmp_path / "none.safetensors"))
