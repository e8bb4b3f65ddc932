"""How an actor episode ends besides the env: operator keys (rising edges; ignored during a
reset) and an aborting data fault (a stale camera), through the real Actor and Learner loops
wired by direct calls (point_reach: no physics, fast)."""
from __future__ import annotations

import secrets

import gymnasium as gym
import pytest

from robot_rl.actor import Actor, ActorConfig, OperatorKeys
from robot_rl.auth import load_key
from robot_rl.agents.sac import SACAgent, SACConfig
from robot_rl.buffers import BufferConfig
from robot_rl.learner import Learner, LearnerConfig
from robot_rl.run_env import EnvHandle, make_env_and_expert
from robot_rl.train import TrainConfig


class CameraWentStale(RuntimeError):
    aborts_episode = True       # as tasks.ros.backend.StaleDataError


class StaleAt(gym.Wrapper):
    """Raises an aborting fault at step `at` of episode `episode` (counting resets from 0).
    A stand-in for a camera that stops: the real one is tested over ROS in
    tests/ros/test_real_arm_actor.py; here the learner's side of the abort is the subject."""

    def __init__(self, env, episode: int, at: int):
        super().__init__(env)
        self.target, self.at, self.episode, self.steps = episode, at, -1, 0

    def reset(self, **kw):
        self.episode += 1
        self.steps = 0
        return self.env.reset(**kw)

    def step(self, action):
        if self.episode == self.target and self.steps == self.at:
            raise CameraWentStale("/cameras/front/image_raw is 0.9 s old (max 0.4)")
        self.steps += 1
        return self.env.step(action)


def test_operator_keys_count_once_per_press_and_not_during_a_reset():
    keys = OperatorKeys()
    keys.on_keys({"success"})
    keys.on_keys({"success"})          # still held: no second press
    assert keys.take() == "success" and keys.take() is None
    keys.on_keys(set())
    keys.set_resetting(True)
    keys.on_keys({"failure"})
    keys.set_resetting(False)
    assert keys.take() is None and [i["key"] for i in keys.ignored] == ["failure"]
    with pytest.raises(ValueError, match="unknown operator keys"):
        keys.on_keys({"explode"})


def test_aborted_episode_is_closed_truncated_stored_once_and_acked(tmp_path):
    cfg = TrainConfig(task="point_reach", steps=0, run_dir=str(tmp_path / "run"), demos=1, learning_starts=10_000,
                      batch_size=32, progress=False, threads=1, device="cpu", agent=SACConfig(hidden_dims=(32, 32), critic_ensemble_size=2, critic_subsample_size=None),
                      buffer=BufferConfig(capacity=2000, demo_capacity=2000))
    actors: list[Actor] = []
    learner = Learner(cfg, LearnerConfig(weights_every_s=0.0, heartbeat_every_s=0.0),
                      publish_weights=lambda b: [a.receive_weights(b) for a in actors],
                      publish_ack=lambda b: [a.receive_ack(b) for a in actors])
    base = make_env_and_expert("point_reach", seed=0)
    handle = EnvHandle(StaleAt(base.env, episode=1, at=4), None, base.control_hz)
    agent = SACAgent(cfg.agent, handle.env.observation_space, handle.env.action_space, seed=0)
    actor = Actor(ActorConfig(resend_after_s=0.0, spool_dir=str(tmp_path / "spool")), handle, agent,
                  send=learner.receive, key=load_key(learner.key_path))
    actors.append(actor)

    def settle():
        for _ in range(5):
            learner.step()
            actor.pump()

    results = []
    for _ in range(3):
        results.append(actor.run_episode(seed=len(results)))
        if results[-1]["aborted"]:
            # The spool holds the closing record too: a later record of the same seq, truncated,
            # which is what a restarted actor would re-send.
            from robot_rl import transport
            from robot_rl.spool import Spool
            records = [r for s_ in Spool.recover(tmp_path / "spool") for r in s_.records if r.episode == 1]
            before, last = (transport.decode_transitions(r.message, actor.schema) for r in records[-2:])
            assert last.seq == before.seq and last.truncated[0] and not before.truncated[0]
        settle()
    assert [bool(r["aborted"]) for r in results] == [False, True, False]
    assert results[1]["length"] == 4 and "image_raw" in results[1]["aborted"]
    assert not actor.unacked and actor.acked == actor.next_seq - 1       # everything acknowledged
    episodes = learner.online.episodes()
    assert [e["transitions"] for e in episodes] == [r["length"] for r in results]
    assert len(learner.online) == sum(r["length"] for r in results) == learner.counters["env_steps"]
    learner.close()


def test_learner_sees_the_actors_success_and_draws_the_curves(tmp_path):
    """The learner's own view of the actors' episodes (TensorBoard, learner_progress.json, PNGs)."""
    cfg = TrainConfig(task="point_reach", steps=0, run_dir=str(tmp_path / "run"), demos=1, learning_starts=10_000,
                      batch_size=32, progress=False, threads=1, device="cpu", agent=SACConfig(hidden_dims=(32, 32), critic_ensemble_size=2, critic_subsample_size=None),
                      buffer=BufferConfig(capacity=2000, demo_capacity=2000))
    from torch.utils.tensorboard import SummaryWriter

    actors: list[Actor] = []
    writer = SummaryWriter(str(tmp_path / "tb"))
    learner = Learner(cfg, LearnerConfig(weights_every_s=0.0, heartbeat_every_s=0.0),
                      publish_weights=lambda b: [a.receive_weights(b) for a in actors],
                      publish_ack=lambda b: [a.receive_ack(b) for a in actors], writer=writer)
    handle = make_env_and_expert("point_reach", seed=0)
    agent = SACAgent(cfg.agent, handle.env.observation_space, handle.env.action_space, seed=0)
    actor = Actor(ActorConfig(resend_after_s=0.0), handle, agent, send=learner.receive,
                  key=load_key(learner.key_path))
    actors.append(actor)
    expert = handle.expert
    actor.policy_action = lambda obs: expert.act(obs)     # succeeds: the learner must see it
    results = [actor.run_episode(seed=i) for i in range(3)]
    for _ in range(5):
        learner.step()
        actor.pump()
    curve = learner.curve.data
    assert curve["episode_success"] == [r["success"] for r in results] and any(curve["episode_success"])
    assert curve["episode_length"] == [r["length"] for r in results]
    assert curve["episode_cycle_time_s"] == [r["cycle_time_s"] for r in results]
    learner.write_curves()
    run = tmp_path / "run"
    assert (run / "learning_curve.png").stat().st_size > 0 and (run / "episodes.png").stat().st_size > 0
    assert (run / "learner_progress.json").exists()
    learner.close()
    writer.close()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    tb = EventAccumulator(str(tmp_path / "tb"))
    tb.Reload()
    success = [e.value for e in tb.Scalars("learner/episode_success")]
    assert success == [float(r["success"]) for r in results]
    cycle = [e.value for e in tb.Scalars("learner/episode_cycle_time_s")]
    assert cycle == pytest.approx([r["cycle_time_s"] for r in results if r["success"]])
    assert len(tb.Scalars("learner/episode_intervention_rate")) == 3


def test_scene_reset_pause_ends_on_a_key_or_the_timeout(tmp_path):
    import threading
    import time

    handle = make_env_and_expert("point_reach", seed=0)
    cfg = SACConfig(hidden_dims=(32, 32))
    agent = SACAgent(cfg, handle.env.observation_space, handle.env.action_space, seed=0)
    sent: list[bytes] = []
    actor = Actor(ActorConfig(scene_reset_timeout_s=10.0), handle, agent, send=sent.append,
                  key=secrets.token_bytes(32))          # no learner here: any key signs
    # A key ends the pause (and is not taken as the new episode's mark).
    timer = threading.Timer(1.0, lambda: actor.keys.on_keys({"failure"}))   # once the pause waits
    timer.start()
    t0 = time.monotonic()
    r = actor.run_episode(seed=0)
    waited = time.monotonic() - t0 - r["wall_s"]
    assert 0.9 <= waited < 5.0 and r["operator_key"] is None
    actor.keys.on_keys(set())
    # No key: the timeout ends it.
    actor.cfg.scene_reset_timeout_s = 0.3
    t0 = time.monotonic()
    r = actor.run_episode(seed=1)
    waited = time.monotonic() - t0 - r["wall_s"]
    assert 0.25 <= waited < 3.0 and r["operator_key"] is None
