"""Any gymnasium env through `robot-rl train --env`: a third party's env (tests/robot_rl/
third_party_env.py, gymnasium's API only) trains, evaluates, exports and deploys; what does not
fit is named in one line."""
import json
import re

import gymnasium as gym
import numpy as np
import pytest

from robot_rl.agents.sac import SACAgent, SACConfig
from robot_rl.cli import main
from robot_rl.envs.gym_adapter import GymAdapter, GymEnvConfig, GymEnvError, make_gym_env
from tests.robot_rl import third_party_env as third_party

FACTORY = "tests.robot_rl.third_party_env:make_env"
EXPERT = "tests.robot_rl.third_party_env:make_expert"
REGISTERED = "tests.robot_rl.third_party_env:ThirdParty/SlideToGoal-v0"   # gymnasium imports the module
# One torch thread and small nets keep the runs to seconds; the learner is otherwise the defaults.
QUICK = ["--set", "progress=false", "--set", "threads=1", "--set", "eval_every=0",
         "--set", "agent.hidden_dims=[64,64]", "--set", "gym.success_key=is_success"]


def test_third_party_env_trains_then_evaluates_exports_and_deploys(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--env", FACTORY, "--steps", "250", "--run-dir", str(run), *QUICK,
                 "--set", f"gym.expert={EXPERT}", "--set", "demos=30", "--set", "learning_starts=64",
                 "--set", "final_eval_episodes=20"]) == 0
    final = json.loads((run / "eval.json").read_text())
    # A random policy reaches the goal in 9% of episodes (below); 30 demos and 250 steps of the
    # default learner (10 critics, BC on the demo rows) reached 0.8 (seed 0, 1 thread).
    assert final["success_rate"] >= 0.6, final
    assert final["task"] == FACTORY and final["demo_transitions"] > 0
    assert json.loads((run / "demos.json").read_text())["demos"] == 30

    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "5"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["episodes"] == 5

    assert main(["export-policy", str(run)]) == 0
    exported = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [i["key"] for i in exported["inputs"]] == ["state"] and exported["action"]["dim"] == 2
    from robot_rl.export import load_exported
    meta = load_exported(run / "policy.pt").metadata
    np.testing.assert_allclose(meta["env_action"]["low"], [-0.2, -0.2])    # to rescale its [-1, 1]
    np.testing.assert_allclose(meta["env_action"]["high"], [0.2, 0.2])

    assert main(["deploy", str(run), "--profile", "twin", "--episodes", "4", "--max-steps", "15"]) == 0
    deployed = json.loads((run / "deploy_twin" / "deploy.json").read_text())
    assert deployed["episodes"] == 4 and deployed["max_steps"] == 15
    assert deployed["success_rate"] is not None and deployed["task"] == FACTORY
    assert all(r["length"] <= 15 for r in deployed["per_episode"])
    # Deploying a --env run on a real robot's graph is refused, in one line.
    assert main(["deploy", str(run), "--profile", "franka"]) != 0
    assert "deploys in that env" in capsys.readouterr().err


def test_random_policy_rarely_reaches_the_goal():
    env, _ = make_gym_env(FACTORY, GymEnvConfig(success_key="is_success"))
    rng = np.random.default_rng(0)
    wins = []
    for seed in range(30):
        env.reset(seed=seed)
        while True:
            _, _, terminated, truncated, info = env.step(rng.uniform(-1, 1, 2))
            if terminated or truncated:
                wins.append(info["success"])
                break
    assert np.mean(wins) <= 0.2


def test_registered_id_without_expert_trains_with_no_demos(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--env", REGISTERED, "--steps", "60", "--run-dir", str(run), *QUICK,
                 "--set", "learning_starts=32", "--set", "batch_size=32",
                 "--set", "final_eval_episodes=2"]) == 0
    assert json.loads((run / "demos.json").read_text())["demos"] == 0
    final = json.loads((run / "eval.json").read_text())
    assert final["updates"] > 0 and final["demo_transitions"] == 0 and final["env_steps"] == 60


def test_adapter_maps_dict_obs_chw_images_and_action_bounds():
    env = GymAdapter(third_party.make_env(), GymEnvConfig(image_layout="chw", state_keys=("goal", "pos")),
                     obs_mode="pixels")
    assert set(env.observation_space.spaces) == {"state", "view"}
    assert env.observation_space["view"].shape == (32, 32, 3)
    obs, info = env.reset(seed=3)
    raw = env.last_raw_obs
    np.testing.assert_array_equal(obs["view"], raw["view"].transpose(1, 2, 0))
    np.testing.assert_allclose(obs["state"], np.concatenate([raw["goal"], raw["pos"]]).astype(np.float32))
    assert obs["state"].dtype == np.float32 and info["success"] is False
    # The agent acts in [-1, 1]; the env gets its own +-0.2, and the expert's actions map back.
    np.testing.assert_allclose(env.to_env_action(np.array([-1.0, 1.0])), [-0.2, 0.2], atol=1e-7)
    np.testing.assert_allclose(env.to_agent_action(np.array([0.1, -0.05])), [0.5, -0.25], atol=1e-6)
    # The agent takes the mapped spaces as they are.
    agent = SACAgent(SACConfig(hidden_dims=(16, 16)), env.observation_space, env.action_space)
    assert agent.act(obs, deterministic=True).shape == (2,)
    # obs "state" leaves the image out.
    state_only = GymAdapter(third_party.make_env(), GymEnvConfig(), obs_mode="state")
    assert set(state_only.observation_space.spaces) == {"state"}
    assert state_only.observation_space["state"].shape == (4,)


class _Spaces(gym.Env):
    """An env that is only its spaces, for the error cases (no episode is run)."""

    def __init__(self, observation_space, action_space):
        self.observation_space, self.action_space = observation_space, action_space


BOX2 = gym.spaces.Box(-1, 1, (2,), np.float32)


def _image(shape, dtype=np.uint8):
    return gym.spaces.Box(0, 255, shape, dtype)


@pytest.mark.parametrize("obs_space, act_space, obs_mode, layout, message", [
    (BOX2, gym.spaces.Discrete(3), "state", "hwc", "unsupported action space Discrete"),
    (BOX2, gym.spaces.Box(-np.inf, np.inf, (2,), np.float32), "state", "hwc", "finite bounds"),
    (BOX2, gym.spaces.Box(-1, 1, (2, 2), np.float32), "state", "hwc", "1-D continuous Box"),
    (gym.spaces.Tuple((BOX2, BOX2)), BOX2, "state", "hwc", "unsupported observation space Tuple"),
    (gym.spaces.Dict({"s": BOX2, "mode": gym.spaces.Discrete(2)}), BOX2, "state", "hwc",
     "observation 'mode': unsupported space Discrete"),
    (gym.spaces.Dict({"s": BOX2, "cam": _image((8, 8, 3), np.float32)}), BOX2, "pixels", "hwc",
     "needs an image"),                               # a float image is not an image...
    (gym.spaces.Dict({"s": BOX2, "cam": _image((8, 8, 3), np.float32)}), BOX2, "state", "hwc",
     None),                                           # ...but a state part, which fits
    (_image((3, 8, 8)), BOX2, "pixels", "hwc", "wrong image layout .* set gym.image_layout=chw"),
    (_image((8, 8, 4)), BOX2, "pixels", "hwc", "wrong image layout"),
    (_image((8, 8, 3)), BOX2, "state", "hwc", "use --obs pixels"),
    (BOX2, BOX2, "pixels", "hwc", "obs 'pixels' needs an image"),
    (gym.spaces.Dict({"a": _image((32, 32, 3)), "b": _image((64, 64, 3))}), BOX2, "pixels", "hwc", "one shape"),
    (_image((40, 40, 3)), BOX2, "pixels", "hwc", "40x40 do not fit the ResNet-10 encoder"),
])
def test_what_does_not_fit_is_named(obs_space, act_space, obs_mode, layout, message):
    env = _Spaces(obs_space, act_space)
    if message is None:
        GymAdapter(env, GymEnvConfig(image_layout=layout), obs_mode)
        return
    with pytest.raises(GymEnvError, match=message):
        GymAdapter(env, GymEnvConfig(image_layout=layout), obs_mode)


def test_float_images_are_named_when_asked_for_as_cameras():
    env = _Spaces(gym.spaces.Dict({"s": BOX2, "cam": _image((8, 8, 3), np.float32)}), BOX2)
    with pytest.raises(GymEnvError, match="'cam': images must be uint8.*float32"):
        GymAdapter(env, GymEnvConfig(image_keys=("cam",)), "pixels")


@pytest.mark.parametrize("env, extra, message", [
    ("tests.robot_rl.third_party_env:make_unlimited_env", [], "no episode limit .* gym.max_episode_steps"),
    ("no_such_package.envs:make", [], "cannot import 'no_such_package.envs'"),
    ("NoSuchEnv-v9", [], "neither package.module:factory nor a registered gymnasium id"),
    (FACTORY, ["--set", "gym.expert=tests.robot_rl.third_party_env:nothing"], "has no 'nothing'"),
    (FACTORY, ["--set", "gym.kwargs={speed: 2}"], "does not take the kwargs"),
    (FACTORY, ["--set", "intervention.enabled=true"], "needs a built-in twin task"),
    (FACTORY, ["--distributed"], "--distributed runs the built-in tasks"),
])
def test_cli_names_a_bad_env_in_one_line(tmp_path, capsys, env, extra, message):
    code = main(["train", "--env", env, "--steps", "1", "--run-dir", str(tmp_path / "run"), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert re.search(message, err), err


def test_an_unlimited_env_trains_with_max_episode_steps(tmp_path):
    env, expert = make_gym_env("tests.robot_rl.third_party_env:make_unlimited_env",
                               GymEnvConfig(max_episode_steps=5, expert=EXPERT))
    obs, _ = env.reset(seed=0)
    for step in range(5):
        obs, _, terminated, truncated, _ = env.step(np.zeros(2, np.float32))
    assert truncated and env.max_episode_steps == 5
    assert expert.act(obs).shape == (2,)
