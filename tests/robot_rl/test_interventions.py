"""Interventions in the in-process loop: the scripted human, buffer routing, per-episode metrics.

The scripted human is the twin's stand-in for the operator on the SpaceMouse: it takes over
when the policy stalls or moves away from the goal (or, by the "action" trigger, when its
actions drift from the expert's), holds on with hysteresis, within a budget.
Everything here runs real envs (point_reach, and the MuJoCo peg_insert twin), real buffers and
a real short training run.
"""
import json

import numpy as np
import pytest

from robot_rl import config as config_lib
from robot_rl.buffers import ReplayBuffer
from robot_rl.run_env import make_env_and_expert
from robot_rl.episode import Transition, to_chunk
from robot_rl.interventions import InterventionRouter, intervention_segments
from robot_rl.scripted_human import InterventionConfig, ScriptedHuman, action_distance, make_expert
from robot_rl.train import TrainConfig, train


def _run(handle, human, policy, seed):
    """One episode with the human in the loop; returns the per-step intervention flags and success."""
    env = handle.env
    obs, _ = env.reset(seed=seed)
    human.reset()
    flags, success = [], False
    while True:
        action, intervened = human.step(obs, policy(obs))
        obs, _, terminated, truncated, info = env.step(action)
        flags.append(intervened)
        success = success or bool(info.get("success"))
        if terminated or truncated:
            return flags, success


def _segments(flags):
    """Lengths of the runs of True in flags, with whether each ran to the episode's end."""
    out, n = [], 0
    for i, f in enumerate(flags):
        if f:
            n += 1
        if n and (not f or i == len(flags) - 1):
            out.append((n, f and i == len(flags) - 1))
            n = 0
    return out


def test_human_takes_over_a_policy_that_drifts():
    handle = make_env_and_expert("point_reach")
    cfg = InterventionConfig(enabled=True, trigger="action", drift_window=3, min_takeover_steps=4,
                             max_takeover_steps=8, budget_steps=100)
    human = ScriptedHuman(cfg, make_expert("point_reach", handle.env))
    away = lambda obs: np.concatenate([-np.sign(obs["state"][3:6]), np.zeros(4)]).astype(np.float32)
    for seed in range(5):
        flags, success = _run(handle, human, away, seed)
        # Drift is judged over the window first: the first takeover comes on step drift_window.
        assert flags[:cfg.drift_window - 1] == [False] * (cfg.drift_window - 1)
        assert flags[cfg.drift_window - 1], flags
        for length, at_end in _segments(flags):
            # Hysteresis: a takeover lasts min..max steps (only the episode's end cuts it short).
            assert length <= cfg.max_takeover_steps
            assert at_end or length >= cfg.min_takeover_steps
        assert success, "the human's corrections should bring the point to its goal"


def test_human_hands_back_once_the_policy_agrees_again():
    handle = make_env_and_expert("point_reach")
    cfg = InterventionConfig(enabled=True, trigger="action", drift_window=3, min_takeover_steps=4,
                             max_takeover_steps=20)
    human = ScriptedHuman(cfg, make_expert("point_reach", handle.env))
    follower = make_expert("point_reach", handle.env)
    calls = {"n": 0}

    def wrong_then_right(obs):          # pushes away for 4 steps, then does what the expert does
        calls["n"] += 1
        if calls["n"] <= 4:
            return np.concatenate([-np.sign(obs["state"][3:6]), np.zeros(4)]).astype(np.float32)
        return follower.act(obs)

    flags, success = _run(handle, human, wrong_then_right, seed=1)
    segments = _segments(flags)
    # One takeover, released by agreement (hysteresis: >= min steps, and well before max).
    assert len(segments) == 1 and cfg.min_takeover_steps <= segments[0][0] < cfg.max_takeover_steps
    assert not segments[0][1] and success


def test_human_stays_idle_while_the_policy_follows_the_expert():
    handle = make_env_and_expert("point_reach")
    follower = make_expert("point_reach", handle.env)   # the same expert, noise-free
    for trigger in ("stall", "action"):
        human = ScriptedHuman(InterventionConfig(enabled=True, trigger=trigger),
                              make_expert("point_reach", handle.env))
        for seed in range(5):
            flags, success = _run(handle, human, follower.act, seed)
            assert not any(flags) and success, trigger


def _toward_goal(speed):
    """A policy that heads straight for the goal at `speed` of full scale (the expert's is 1)."""
    return lambda obs: np.concatenate(
        [speed * obs["state"][3:6] / max(np.linalg.norm(obs["state"][3:6]), 1e-9), np.zeros(4)]).astype(np.float32)


def test_stall_trigger_takes_over_a_policy_that_stands_still_and_hands_back_after_progress():
    handle = make_env_and_expert("point_reach")
    cfg = InterventionConfig(enabled=True, stall_steps=3, stall_progress=0.01, min_takeover_steps=1,
                             max_takeover_steps=10, budget_steps=100)
    human = ScriptedHuman(cfg, make_expert("point_reach", handle.env))
    still = lambda obs: np.zeros(7, np.float32)
    successes = 0
    for seed in range(5):
        flags, success = _run(handle, human, still, seed)
        # The distance to go must fall within stall_steps: the first takeover comes right after;
        # one human step moves the point on (0.1 > stall_progress), so it hands back, judges
        # the policy afresh for stall_steps, and takes over again: a nudge every 4th step.
        assert flags == (([False] * cfg.stall_steps + [True]) * 10)[:len(flags)], flags
        assert sum(flags) == human.steps == human.takeovers
        successes += success
    # 7 nudges of 0.1 in a 30-step episode bring the nearer goals within reach.
    assert successes >= 2


def test_stall_trigger_takes_over_at_once_when_the_policy_moves_away():
    handle = make_env_and_expert("point_reach")
    cfg = InterventionConfig(enabled=True, regress_margin=0.05, budget_steps=100)
    human = ScriptedHuman(cfg, make_expert("point_reach", handle.env))
    away = lambda obs: np.concatenate([-np.sign(obs["state"][3:6] + 1e-9), np.zeros(4)]).astype(np.float32)
    flags, success = _run(handle, human, away, seed=2)
    # One step away moves the point 0.1-0.17 > regress_margin from its best: taken over on step 2.
    assert flags[:1] == [False] and flags[1], flags
    assert success


def test_a_policy_that_solves_the_task_its_own_way_is_left_alone_by_the_stall_trigger():
    """Half the expert's speed straight to the goal: far from the expert's actions, but progress."""
    handle = make_env_and_expert("point_reach")
    slow = _toward_goal(0.4)
    stall = ScriptedHuman(InterventionConfig(enabled=True), make_expert("point_reach", handle.env))
    action = ScriptedHuman(InterventionConfig(enabled=True, trigger="action", takeover_threshold=0.2,
                                              release_threshold=0.1),
                           make_expert("point_reach", handle.env))
    flagged = 0
    for seed in range(5):
        flags, success = _run(handle, stall, slow, seed)
        assert not any(flags) and success, seed
        flags, _ = _run(handle, action, slow, seed)
        flagged += any(flags)
    # The action-distance trigger (the old default) flags the same working policy.
    assert flagged >= 3


def test_human_budget_caps_the_steps_per_episode():
    handle = make_env_and_expert("point_reach")
    cfg = InterventionConfig(enabled=True, trigger="action", drift_window=2, min_takeover_steps=3,
                             max_takeover_steps=5, budget_steps=7)
    human = ScriptedHuman(cfg, make_expert("point_reach", handle.env))
    # A policy that pushes away and never agrees: the human keeps coming back until the budget is spent.
    away = lambda obs: np.concatenate([-np.sign(obs["state"][3:6] + 1e-9), np.zeros(4)]).astype(np.float32)
    flags, _ = _run(handle, human, away, seed=0)
    assert sum(flags) <= cfg.budget_steps
    assert human.takeovers >= 2 and sum(flags) == human.steps
    human.reset()
    assert human.steps == 0 and human.takeovers == 0 and not human.active


def test_human_takes_over_in_the_peg_insert_twin():
    handle = make_env_and_expert("peg_insert")
    try:
        expert = make_expert("peg_insert", handle.env)
        # Stall trigger: a policy that holds still is taken over after stall_steps, and the
        # human's segments (each handed back once it made progress) insert the peg.
        human = ScriptedHuman(InterventionConfig(enabled=True, budget_steps=100), expert)
        still = lambda obs: np.zeros(7, np.float32)
        flags, success = _run(handle, human, still, seed=3)
        assert flags.index(True) == human.cfg.stall_steps and success, (sum(flags), len(flags))
        # A policy that lifts the peg away (~3 mm per step) is taken over once it is
        # regress_margin worse than its best, before any stall, and again after each hand-back.
        human = ScriptedHuman(InterventionConfig(enabled=True, regress_margin=0.01, budget_steps=100), expert)
        lift = lambda obs: np.array([0, 0, -1, 0, 0, 0, 0], np.float32)   # EE z points down: -z lifts
        flags, _ = _run(handle, human, lift, seed=3)
        assert 3 <= flags.index(True) <= 6 and human.takeovers >= 3, (flags.index(True), human.takeovers)
        # Action trigger: the lift differs from the expert's action from the first steps.
        human = ScriptedHuman(InterventionConfig(enabled=True, trigger="action", budget_steps=100,
                                                 max_takeover_steps=100), expert)
        flags, success = _run(handle, human, lift, seed=3)
        assert flags[4] and success, (sum(flags), len(flags))
        follower = make_expert("peg_insert", handle.env)
        for trigger in ("stall", "action"):
            human = ScriptedHuman(InterventionConfig(enabled=True, trigger=trigger), expert)
            flags, success = _run(handle, human, follower.act, seed=4)
            assert not any(flags) and success, trigger
    finally:
        handle.close()


def test_config_and_inputs_are_checked():
    expert = make_expert("point_reach", make_env_and_expert("point_reach").env)
    for bad in (dict(drift_window=0), dict(release_threshold=0.6, takeover_threshold=0.5),
                dict(min_takeover_steps=5, max_takeover_steps=4), dict(budget_steps=-1),
                dict(takeover_threshold=float("nan")), dict(noise=-0.1), dict(trigger="bored"),
                dict(stall_steps=0), dict(stall_progress=-0.01), dict(regress_margin=0.0)):
        with pytest.raises(ValueError):
            ScriptedHuman(InterventionConfig(enabled=True, **bad), expert)
    human = ScriptedHuman(InterventionConfig(enabled=True), expert)
    with pytest.raises(ValueError, match="not finite"):
        human.step({"state": np.zeros(7, np.float32)}, np.full(7, np.nan, np.float32))
    assert action_distance(np.ones(7), -np.ones(7)) == pytest.approx(2.0)
    assert action_distance(np.zeros(7), np.r_[np.zeros(6), 1.0]) == 0.0
    assert action_distance(np.zeros(7), np.r_[np.zeros(6), 1.0], compare_gripper=True) > 0


def test_router_sends_interventions_to_both_buffers_and_the_rest_to_online():
    handle = make_env_and_expert("point_reach")
    space = handle.env.observation_space
    online = ReplayBuffer.create(None, space, 7, capacity=200)
    demo = ReplayBuffer.create(None, space, 7, capacity=200)
    router = InterventionRouter(online, demo)
    # Episode 1: policy, 3 human steps (a segment that stops mid-episode), policy, 2 human steps at the end.
    pattern = [False, True, True, True, False, False, True, True]
    obs, _ = handle.env.reset(seed=0)
    for i, flag in enumerate(pattern):
        next_obs, reward, _, _, info = handle.env.step(handle.expert.act(obs))
        last = i == len(pattern) - 1
        router.add(Transition.copy_of(obs, np.full(7, 0.1 * i, np.float32), reward, next_obs, False, last,
                                      0.0, flag))
        obs = next_obs
    assert len(online) == 8 and len(demo) == 5
    on = online.gather(online.transition_indices())
    assert on["intervention"].tolist() == [float(f) for f in pattern]
    dm = demo.gather(demo.transition_indices())
    assert np.all(dm["intervention"] == 1.0)
    # The demo copies are the executed actions of the human steps, in order.
    np.testing.assert_allclose(dm["action"][:, 0], [0.1, 0.2, 0.3, 0.6, 0.7], atol=1e-6)
    # The first segment ended mid-episode: closed as a truncation (bootstraps), not a terminal.
    assert dm["truncated"].tolist() == [0, 0, 1, 0, 1] and not dm["terminated"].any()
    assert len(demo.episodes()) == 2
    # Its observations are the online ones.
    np.testing.assert_array_equal(dm["obs"]["state"][0], on["obs"]["state"][1])


def _episode(handle, pattern, seed=0):
    """A real point_reach episode cut to len(pattern) steps, with the given intervention flags."""
    obs, _ = handle.env.reset(seed=seed)
    out = []
    for i, flag in enumerate(pattern):
        next_obs, reward, _, _, info = handle.env.step(handle.expert.act(obs))
        out.append(Transition.copy_of(obs, np.full(7, 0.1 * i, np.float32), reward, next_obs, False,
                                      i == len(pattern) - 1, 0.0, flag, episode=0, step=i))
        obs = next_obs
    return out


def test_segments_of_a_whole_episode():
    handle = make_env_and_expert("point_reach")
    segs = intervention_segments(_episode(handle, [True, True, False, True, False, False, True]))
    assert [len(s) for s in segs] == [2, 1, 1]
    assert [[t.truncated for t in s] for s in segs] == [[False, True], [True], [True]]
    assert intervention_segments(_episode(handle, [False] * 4)) == []


def test_in_process_routing_matches_the_distributed_learner(tmp_path):
    """The learner (distributed path) and the in-process router store the same buffers."""
    from robot_rl.learner import Learner, LearnerConfig

    handle = make_env_and_expert("point_reach")
    pattern = [True, False, True, True, False, False, True, True, False, True]
    episode = _episode(handle, pattern)
    space = handle.env.observation_space
    online = ReplayBuffer.create(None, space, 7, capacity=100)
    demo = ReplayBuffer.create(None, space, 7, capacity=100)
    router = InterventionRouter(online, demo)
    for t in episode:
        router.add(t)

    cfg = _cfg(tmp_path, demos=0)
    learner = Learner(cfg, LearnerConfig(), publish_weights=lambda b: None, publish_ack=lambda b: None)
    try:
        learner.ingest(to_chunk(episode, "a0", "s0", seq=0, unacked_from=0))
        for mine, theirs in ((online, learner.online), (demo, learner.demo)):
            a, b = mine.gather(mine.transition_indices()), theirs.gather(theirs.transition_indices())
            assert len(mine) == len(theirs) > 0
            for key in ("action", "reward", "terminated", "truncated", "intervention"):
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)
            np.testing.assert_array_equal(a["obs"]["state"], b["obs"]["state"])
            np.testing.assert_array_equal(a["next_obs"]["state"], b["next_obs"]["state"])
        assert len(learner.demo) == sum(pattern)
    finally:
        learner.close()


def _cfg(tmp_path, **kw):
    base = dict(task="point_reach", run_dir=str(tmp_path / "run"), demos=5, eval_every=0,
                final_eval_episodes=2, progress=False, learning_starts=64, checkpoint_every=0,
                threads=1, steps=150)
    # Plain RLPD (2 critics, no BC), the learner these tests were written for.
    base.update({"agent.critic_ensemble_size": 2, "agent.critic_subsample_size": "null",
                 "agent.bc_weight": 0.0})
    base.update(kw)
    return config_lib.load(TrainConfig, None, [f"{k}={v}" for k, v in base.items()])


def _scalars(tb_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    return [e.value for e in acc.Scalars(tag)]


def test_short_run_logs_per_episode_metrics_and_plots(tmp_path):
    final = train(_cfg(tmp_path, **{"intervention.enabled": "true", "intervention.drift_window": 3}))
    run = tmp_path / "run"
    curve = json.loads((run / "progress.json").read_text())
    n = len(curve["episode_step"])
    assert n >= 5
    for key in ("episode_success", "episode_return", "episode_length", "episode_interventions",
                "episode_intervention_rate", "episode_cycle_time_s"):
        assert len(curve[key]) == n, key
    assert sum(curve["episode_length"]) == curve["episode_step"][-1] == final["env_steps"]
    for k, length, rate, ok, cycle in zip(curve["episode_interventions"], curve["episode_length"],
                                          curve["episode_intervention_rate"], curve["episode_success"],
                                          curve["episode_cycle_time_s"]):
        assert rate == pytest.approx(k / length)
        # Cycle time in env time: steps x control period (point_reach runs at 10 Hz).
        assert cycle == (pytest.approx(length / 10.0) if ok else None)
    # An untrained policy drifts: the human stepped in, and its steps joined the demos.
    assert final["intervention_steps"] == sum(curve["episode_interventions"]) > 0
    demos = json.loads((run / "demos.json").read_text())
    assert demos["demos"] == 5
    with ReplayBuffer.open(run / "buffers" / "demo") as demo, ReplayBuffer.open(run / "buffers" / "online") as online:
        assert len(demo) == final["demo_transitions"] > final["intervention_steps"]
        assert len(online) == final["env_steps"]
        assert online.gather(online.transition_indices())["intervention"].sum() == final["intervention_steps"]
    assert (run / "episodes.png").stat().st_size > 5000
    assert len(_scalars(run / "tb", "episode/intervention_rate")) == n
    assert len(_scalars(run / "tb", "episode/interventions")) == n
    assert len(_scalars(run / "tb", "episode/return")) == n


def test_without_interventions_nothing_goes_to_the_demo_buffer(tmp_path):
    final = train(_cfg(tmp_path, steps=60, learning_starts=1000))   # no updates: routing only
    curve = json.loads((tmp_path / "run" / "progress.json").read_text())
    assert set(curve["episode_interventions"]) == {0} and final["intervention_steps"] == 0
    with ReplayBuffer.open(tmp_path / "run" / "buffers" / "demo") as demo:
        assert len(demo) == final["demo_transitions"]
        assert demo.gather(demo.transition_indices())["intervention"].all()   # demos only


def test_demo_dataset_fills_the_demo_buffer(tmp_path):
    datasets = pytest.importorskip(
        "robot_rl.datasets", reason="robot_rl.datasets (episode datasets) is not in this tree yet")
    # Record 3 successful expert episodes and one failed (random) one.
    handle = make_env_and_expert("point_reach")
    ds = datasets.EpisodeDataset.create(tmp_path / "demos", handle.env.observation_space, 7, fsync=False)
    rng = np.random.default_rng(0)
    kept = 0
    try:
        for seed, expert in ((0, True), (1, True), (2, False), (3, True)):
            obs, _ = handle.env.reset(seed=seed)
            builder = datasets.EpisodeBuilder(obs)
            success = False
            while True:
                action = handle.expert.act(obs) if expert else rng.uniform(-0.01, 0.01, 7).astype(np.float32)
                obs, reward, terminated, truncated, info = handle.env.step(action)
                builder.add(action, reward, obs, terminated, truncated, intervention=True)
                success = success or info["success"]
                if terminated or truncated:
                    break
            assert success == expert
            kept += len(builder) if success else 0
            ds.append(builder.build(task="point_reach", success=success, source="test"))
    finally:
        ds.close()
    final = train(_cfg(tmp_path, steps=40, learning_starts=1000, demo_dataset=str(tmp_path / "demos")))
    stats = json.loads((tmp_path / "run" / "demos.json").read_text())
    assert stats["loaded"]["episodes"] == 3 and stats["loaded"]["skipped_unsuccessful"] == 1
    assert final["demo_transitions"] == kept    # the dataset's successful episodes, no scripted demos
    with ReplayBuffer.open(tmp_path / "run" / "buffers" / "demo") as demo:
        assert len(demo.episodes()) == 3
