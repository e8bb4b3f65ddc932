"""Actor and learner loops wired directly (bytes through callables, no ROS graph): the protocol.

The ROS tests (test_actor_learner.py) run the same loops as processes over the graph; these
check the protocol's corner cases quickly and deterministically: several actors interleaved,
interventions into the demo buffer, a learner restart with resends and no duplicates.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from robot_rl.controllers.rotations import quat_to_matrix as quat_to_rot
from robot_rl.actor import Actor, ActorConfig, Takeover, TakeoverConfig
from robot_rl.agents.sac import SACAgent, SACConfig
from robot_rl.auth import MessageAuth, load_key
from robot_rl.buffers import BufferConfig
from robot_rl.learner import Learner, LearnerConfig
from robot_rl.run_env import make_env_and_expert
from robot_rl.train import TrainConfig


def small_config(run_dir) -> TrainConfig:
    return TrainConfig(task="point_reach", steps=0, run_dir=str(run_dir), demos=2, learning_starts=32,
                       batch_size=32, updates_per_step=0.25, progress=False, threads=1, device="cpu",
                       # Plain RLPD (2 critics, no BC): the small learner these tests were written for.
                       agent=SACConfig(hidden_dims=(32, 32), critic_ensemble_size=2,
                                       critic_subsample_size=None, bc_weight=0.0),
                       buffer=BufferConfig(capacity=4000, demo_capacity=4000))


class Wire:
    """Learner and actors connected by direct calls, as the ROS nodes connect them by topics."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.actors: list[Actor] = []
        self.learner = self.start_learner()
        self.key = load_key(self.learner.key_path)       # the run's key, created by the learner
        self.auth = MessageAuth(self.key)                # for messages a test writes by hand

    def start_learner(self) -> Learner:
        return Learner(self.cfg, LearnerConfig(weights_every_s=0.0, heartbeat_every_s=0.0),
                       publish_weights=lambda b: [a.receive_weights(b) for a in self.actors],
                       publish_ack=lambda b: [a.receive_ack(b) for a in self.actors])

    def add_actor(self, actor_id: str, takeover: Takeover | None = None, seed: int = 0) -> Actor:
        handle = make_env_and_expert("point_reach", seed=seed)
        agent = SACAgent(self.cfg.agent, handle.env.observation_space, handle.env.action_space, seed=0)
        actor = Actor(ActorConfig(actor_id=actor_id, resend_after_s=0.0), handle, agent,
                      send=lambda b: self.learner.receive(b), takeover=takeover, seed=seed, key=self.key)
        self.actors.append(actor)
        return actor

    def settle(self, rounds: int = 5) -> None:
        for _ in range(rounds):
            self.learner.step()
            for a in self.actors:
                a.pump()


def test_two_actors_interleaved_every_transition_stored_once_and_acked(tmp_path):
    wire = Wire(small_config(tmp_path / "run"))
    a, b = wire.add_actor("a", seed=1), wire.add_actor("b", seed=2)
    # Interleave the two actors' steps: episodes of both are open in the learner at once.
    for _ in range(4):
        ra = a.run_episode(seed=a.episode)
        wire.settle(1)
        rb = b.run_episode(seed=100 + b.episode)
        wire.settle(1)
        assert ra["length"] > 0 and rb["length"] > 0
    wire.settle()
    lr = wire.learner
    assert not a.unacked and not b.unacked
    assert a.acked == a.next_seq - 1 and b.acked == b.next_seq - 1
    assert len(lr.online) == a.env_steps + b.env_steps == lr.counters["env_steps"]
    assert lr.counters["episodes"] == 8 and lr.stats["gaps"] == 0
    assert lr.counters["updates"] > 0 and a.weights_version > 0      # trained, weights went out
    episodes = lr.online.episodes()
    assert len(episodes) == 8 and sum(e["transitions"] for e in episodes) == len(lr.online)
    lr.close()


def test_interventions_are_flagged_and_land_in_the_demo_buffer_too(tmp_path):
    wire = Wire(small_config(tmp_path / "run"))
    clock = [0.0]
    takeover = Takeover(TakeoverConfig(deadband=0.1), clock=lambda: clock[0])
    actor = wire.add_actor("a", takeover=takeover)
    demo_before = len(wire.learner.demo)
    # The human pushes +x for the first 5 steps of the episode, then lets go.
    steps = []
    real_step = actor.env.step

    def step(action):
        steps.append(np.array(action))
        if len(steps) == 5:
            takeover.on_twist(np.zeros(6))           # released: below the deadband
        return real_step(action)
    actor.env.step = step
    takeover.on_twist([0.5, 0, 0, 0, 0, 0])
    takeover.on_joy(gripper=1.0)
    takeover.on_joy(gripper=None)
    takeover.on_twist([0.5, 0, 0, 0, 0, 0])
    r = actor.run_episode(seed=3)
    wire.settle()
    assert r["interventions"] == 5 and r["intervention_rate"] == pytest.approx(5 / r["length"])
    for a in steps[:5]:
        np.testing.assert_allclose(a, [0.5, 0, 0, 0, 0, 0, 0])  # the human's action, executed
    online = wire.learner.online
    flags = online.gather(online.transition_indices())["intervention"]
    assert flags[:5].tolist() == [1.0] * 5 and not flags[5:].any()
    demo = wire.learner.demo
    assert len(demo) - demo_before == 5
    new = demo.episodes()[-1]
    assert new["transitions"] == 5 and new["end"] == "truncated"     # closed, bootstraps
    wire.learner.close()


def test_takeover_maps_the_base_frame_twist_to_the_ee_frame_and_times_out():
    clock = [0.0]
    t = Takeover(TakeoverConfig(deadband=0.05, linear_scale=0.5, angular_scale=0.25, timeout_s=0.2),
                 clock=lambda: clock[0])
    assert t.action() is None
    t.on_twist([0.04, 0, 0, 0, 0, 0.04])
    assert t.action() is None                              # below the deadband
    t.on_twist([0.2, 0.0, -0.1, 0.0, 0.0, 0.05])
    # TCP pointing down (180 deg about x): base +z is EE -z, base +y is EE -y.
    down = quat_to_rot(np.array([1.0, 0.0, 0.0, 0.0]))
    np.testing.assert_allclose(t.action(down), [0.4, 0.0, 0.2, 0.0, 0.0, -0.2, 0.0], atol=1e-6)
    t.on_twist([5.0, 0, 0, 0, 0, 0])
    assert t.action()[0] == 1.0                            # clipped to [-1, 1]
    clock[0] = 0.3
    assert t.action() is None                              # stale: the device went quiet
    t.on_joy(gripper=0.0)
    np.testing.assert_array_equal(t.action(), [0, 0, 0, 0, 0, 0, -1])   # gripper button alone takes over
    t.on_joy(gripper=None, takeover_button=True)
    np.testing.assert_array_equal(t.action(), np.zeros(7))  # takeover toggle: hold still, human in charge
    with pytest.raises(ValueError):
        t.on_twist([np.nan] * 6)


def test_learner_restart_resends_and_deduplicates(tmp_path):
    cfg = small_config(tmp_path / "run")
    wire = Wire(cfg)
    actor = wire.add_actor("a")
    actor.run_episode(seed=0)
    wire.settle()
    first = actor.acked
    assert first == actor.next_seq - 1 and first >= 0
    # The learner dies mid-episode: half an episode was staged, nothing of it acknowledged.
    actor.env.reset(seed=1)
    real_step = actor.env.step
    count = [0]

    def dying_step(action):
        count[0] += 1
        if count[0] == 10:
            wire.learner.stop_event.set()
            wire.learner.close()                   # no checkpoint, no commit: as a SIGKILL
            wire.learner = None
        return real_step(action)
    actor.env.step = dying_step
    sent = []
    actor.send = lambda b: sent.append(b) if wire.learner is None else wire.learner.receive(b)
    actor.run_episode(seed=1)
    actor.env.step = real_step
    assert actor.unacked and actor.acked == first
    # A new learner on the same run dir: reopens the buffers, announces a new session.
    wire.learner = wire.start_learner()
    actor.send = lambda b: wire.learner.receive(b)
    assert len(wire.learner.online) == first + 1
    wire.settle()
    assert not actor.unacked and actor.acked == actor.next_seq - 1
    assert len(wire.learner.online) == actor.next_seq        # nothing lost, nothing twice
    assert actor.stats["resent"] > 0
    # Old messages arriving late (duplicates) are dropped.
    for b in sent:
        wire.learner.receive(b)
    wire.settle()
    assert len(wire.learner.online) == actor.next_seq and wire.learner.stats["duplicates"] > 0
    state = json.loads((tmp_path / "run" / "learner_state.json").read_text())
    assert state["acked"][actor.key] == actor.next_seq - 1
    wire.learner.close()


def test_actor_restart_drops_the_unfinished_episode_and_starts_a_new_session(tmp_path):
    wire = Wire(small_config(tmp_path / "run"))
    old = wire.add_actor("a")
    old.env.reset(seed=0)
    old.run_episode(seed=0)
    wire.settle()
    # Half an episode, then the actor process is gone.
    obs, _ = old.env.reset(seed=5)
    for i in range(7):
        a = old.agent.act(obs)
        nxt, r, term, trunc, info = old.env.step(a)
        old._record(old.episode, i, obs, a, r, nxt, term, trunc, 0.0, False)
        obs = nxt
    wire.learner.step()
    assert len(wire.learner.staged[old.key]) == 7
    wire.actors.remove(old)
    new = wire.add_actor("a")
    assert new.session != old.session
    new.run_episode(seed=9)
    wire.settle()
    assert old.key not in wire.learner.staged
    assert len(wire.learner.online) == old.acked + 1 + new.next_seq
    wire.learner.close()


def test_bad_transition_sequences_do_not_poison_the_buffers(tmp_path):
    from robot_rl import transport
    wire = Wire(small_config(tmp_path / "run"))
    actor = wire.add_actor("a")
    actor.run_episode(seed=0)
    wire.settle()
    n = len(wire.learner.online)
    assert not actor.unacked
    # A message that claims to continue an episode with a frame that does not match is refused.
    chunk = transport.TransitionChunk("a", actor.session, actor.episode, 0, actor.next_seq,
                                      {"state": np.zeros((2, 7), np.float32)}, np.zeros((1, 7), np.float32),
                                      np.zeros(1, np.float32), np.zeros(1, np.uint8), np.zeros(1, np.uint8),
                                      np.zeros(1, np.float32), np.zeros(1, np.uint8))
    wire.learner.receive(wire.auth.sign(transport.encode_transitions(chunk)))
    chunk2 = dataclasses.replace(chunk, seq=actor.next_seq + 1, step=1,
                                 frames={"state": np.ones((2, 7), np.float32)})
    wire.learner.receive(wire.auth.sign(transport.encode_transitions(chunk2)))
    wire.settle()
    assert wire.learner.stats["rejected"] == 1 and len(wire.learner.online) == n
    wire.learner.close()


def test_a_learner_that_missed_the_first_messages_never_acks_what_it_did_not_store(tmp_path):
    """The learner's subscription matches late: episode 0 is lost on the wire, episode 1 arrives.
    Nothing may be acked before it is stored: episode 0 must come back by resend first."""
    wire = Wire(small_config(tmp_path / "run"))
    actor = wire.add_actor("a")
    lr = wire.learner
    acks_checked = []

    def checked_ack(b):
        from robot_rl import transport
        _, table = transport.decode_ack(wire.auth.verify(b))
        if actor.key in table:
            assert table[actor.key]["acked"] + 1 == len(lr.online), "acked more than stored"
            acks_checked.append(table[actor.key]["acked"])
        actor.receive_ack(b)
    lr.publish_ack = checked_ack
    actor.send = lambda b: None                   # not matched yet: episode 0 is lost
    actor.run_episode(seed=0)
    actor.send = lambda b: lr.receive(b)
    actor.run_episode(seed=1)
    wire.settle(10)
    assert not actor.unacked and len(lr.online) == actor.next_seq and acks_checked[-1] == actor.next_seq - 1
    assert lr.online.episodes()[0]["first_frame"] == 0 and len(lr.online.episodes()) == 2
    lr.close()
