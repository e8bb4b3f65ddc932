"""One run, one code path: the in-process run is the distributed run's Actor and Learner over an
in-memory link, with one implementation of the update budget and the minibatching; transitions
and episode results are typed and cross the wire unchanged. point_reach (no physics), tiny
networks: a few seconds."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from robot_rl import config as config_lib
from robot_rl import transport
from robot_rl.agents.sac import SACAgent
from robot_rl.buffers import ReplayBuffer
from robot_rl.buffers.rlpd import RLPDSampler
from robot_rl.episode import EpisodeResult, Transition, from_chunk, to_chunk
from robot_rl.run_env import make_env_and_expert
from robot_rl.train import TrainConfig, train
from robot_rl.updates import update_once, updates_owed


def _transitions(n: int, pixels: bool = False) -> list[Transition]:
    rng = np.random.default_rng(0)
    frames = [{"state": rng.normal(size=5).astype(np.float32),
               **({"wrist": rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)} if pixels else {})}
              for _ in range(n + 1)]
    return [Transition(frames[i], rng.uniform(-1, 1, 7).astype(np.float32), float(i == n - 1), frames[i + 1],
                       terminated=i == n - 1, truncated=False, grasp_penalty=-0.5 * (i % 2),  # float32 on the wire
                       intervention=i in (1, 2), episode=4, step=10 + i) for i in range(n)]


@pytest.mark.parametrize("pixels", [False, True])
def test_transitions_cross_the_wire_unchanged(pixels):
    sent = _transitions(5, pixels)
    data = transport.encode_transitions(to_chunk(sent, "actor0", "s1", seq=20, unacked_from=18))
    spaces = {"state": (np.float32, (5,)), **({"wrist": (np.uint8, (8, 8, 3))} if pixels else {})}
    import gymnasium as gym
    obs_space = gym.spaces.Dict({k: gym.spaces.Box(0 if dt == np.uint8 else -np.inf, 255 if dt == np.uint8 else np.inf,
                                                   shape, dt) for k, (dt, shape) in spaces.items()})
    schema = transport.TransitionSchema.from_spaces(obs_space, gym.spaces.Box(-1, 1, (7,), np.float32))
    chunk = transport.decode_transitions(data, schema)
    assert (chunk.actor_id, chunk.session, chunk.seq, chunk.unacked_from) == ("actor0", "s1", 20, 18)
    got = [from_chunk(chunk, i) for i in range(chunk.count)]
    assert len(got) == 5 and all(a.same_as(b) for a, b in zip(sent, got))
    assert [t.step for t in got] == [10, 11, 12, 13, 14] and got[-1].terminated and got[1].intervention
    # A changed field is a different transition.
    got[2].reward += 1.0
    assert not got[2].same_as(sent[2])


def test_episode_results_round_trip_through_their_json_form():
    r = EpisodeResult(return_=1.0, length=40, success=True, interventions=10, cycle_time_s=4.0,
                      session="s1", episode=3, success_source="classifier", weights_version=7,
                      env_steps=400, classifier_success=True, classifier_prob_max=0.93,
                      ground_truth_success=False)
    d = json.loads(json.dumps(dict(r)))
    assert d["return"] == 1.0 and d["intervention_rate"] == 0.25 and d["ground_truth_success"] is False
    back = EpisodeResult.from_dict(d)
    assert back.as_dict() == r.as_dict() and back.return_ == 1.0 and back.intervention_rate == 0.25
    # Optional truth stays out when unknown; unknown keys of an older log are kept, not lost.
    plain = EpisodeResult.from_dict({"return": 0.0, "length": 5, "success": False, "note": "x"})
    assert "ground_truth_success" not in plain.as_dict() and plain["note"] == "x" and plain.cycle_time_s is None
    # Transitions close a cut-off run as a truncation, a terminal one stays terminal.
    t = _transitions(3)
    assert t[0].closed().truncated and not t[0].truncated and t[2].closed() is t[2]


def test_update_budget_is_the_in_process_ratio():
    assert updates_owed(1.0, 256, 255, 0) == 0
    assert updates_owed(1.0, 256, 256, 0) == 1
    assert updates_owed(0.5, 64, 420, 0) == int(0.5 * 357)
    assert updates_owed(0.1, 1, 30, 0) == 3          # not 2 (float rounding)
    assert updates_owed(1.0, 10, 100, 95) == 0       # more done than owed (a resumed run): none


def test_every_gradient_step_gets_a_full_batch():
    handle = make_env_and_expert("point_reach")
    space = handle.env.observation_space
    cfg = config_lib.load(TrainConfig, None, ["agent.hidden_dims=[16,16]", "agent.critic_actor_ratio=3"]).agent
    agent = SACAgent(cfg, space, handle.env.action_space, device="cpu", seed=0)
    online = ReplayBuffer.create(None, space, 7, capacity=100)
    demo = ReplayBuffer.create(None, space, 7, capacity=100)
    for seed, buffer in ((0, online), (1, demo)):      # one short episode in each
        obs, _ = handle.env.reset(seed=seed)
        for i in range(20):
            action = handle.expert.act(obs)
            next_obs, reward, term, _, _ = handle.env.step(action)
            Transition.copy_of(obs, action, reward, next_obs, term, i == 19 and not term,
                               intervention=buffer is demo).add_to(buffer)
            obs = next_obs
            if term:
                break
        buffer.commit()
    seen = []
    real_update = agent.update
    agent.update = lambda batches: seen.append([len(b["reward"]) for b in batches]) or real_update(batches)
    update_once(agent, RLPDSampler(online, demo, batch_size=32, pin_memory=False), np.random.default_rng(0),
                torch.device("cpu"))
    assert seen == [[32, 32, 32]]      # critic_actor_ratio batches of batch_size rows each


def test_the_in_process_run_is_the_actor_and_the_learner(tmp_path, monkeypatch):
    """train() drives robot_rl.actor.Actor and robot_rl.learner.Learner: every update goes
    through the learner's update_once, every transition through the actor's seq/ack protocol."""
    import robot_rl.learner as learner_mod

    calls = []
    real = learner_mod.update_once
    monkeypatch.setattr(learner_mod, "update_once", lambda *a: calls.append(1) or real(*a))
    run_dir = tmp_path / "run"
    cfg = config_lib.load(TrainConfig, None, [
        "task=point_reach", "steps=120", "demos=2", "learning_starts=40", "batch_size=16",
        "updates_per_step=0.5", f"run_dir={run_dir}", "progress=false", "threads=1", "device=cpu",
        "eval_every=0", "final_eval_episodes=1", "checkpoint_every=0", "agent.hidden_dims=[16,16]",
        "agent.critic_ensemble_size=2", "agent.critic_subsample_size=null", "agent.bc_weight=0"])
    final = train(cfg)
    n = final["env_steps"]
    assert n >= 120 and final["updates"] == len(calls) == updates_owed(0.5, 40, n, 0)
    state = json.loads((run_dir / "learner_state.json").read_text())
    (session, acked), = state["acked"].items()
    assert session.startswith("actor0/") and acked == n - 1          # every step sent, stored, acked
    assert not (run_dir / "auth.key").exists()     # the in-memory link's key never leaves the process
    with ReplayBuffer.open(run_dir / "buffers" / "online") as online:
        assert len(online) == n
