"""Issue #7: kill the actor, the learner or both at any moment; restart; nothing is lost.

- Loops wired directly (fast, deterministic): an actor "dies" with an acked episode, a
  finished-but-unacked one and half an episode spooled (part of it staged at the learner, part
  lost on the wire); a new actor process (new session, same spool dir) re-sends the old
  session's spool under its old session and seq numbers; the learner stores every transition
  exactly once (duplicates dropped by actor id, session and seq), the half episode closed as
  truncated, and the spool is deleted once acknowledged.
- Real processes over ROS 2: SIGKILL the actor at a random moment, restart it; later SIGKILL
  actor and learner together, restart both and finish. Every transition the killed actors
  recorded is in the online buffer exactly once, the counters continue, the episode log
  (the distributed learning curve) keeps every episode.
- `robot-rl train --distributed` itself SIGKILLed at a random moment (its nodes die with it),
  run again: it resumes and completes, each transition stored once, the curve continuous.
"""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from robot_rl import transport
from robot_rl.actor import Actor, ActorConfig
from robot_rl.agents.sac import SACAgent
from robot_rl.buffers import ReplayBuffer
from robot_rl.run_env import make_env_and_expert
from robot_rl.spool import Spool

from tests.ros.test_actor_learner import AckProbe, Processes, write_config
from tests.ros.test_actor_learner_loops import Wire, small_config


def spooled_actor(wire: Wire, spool_dir: Path, **cfg) -> Actor:
    handle = make_env_and_expert("point_reach", seed=0)
    agent = SACAgent(wire.cfg.agent, handle.env.observation_space, handle.env.action_space, seed=0)
    actor = Actor(ActorConfig(actor_id="a", resend_after_s=0.0, spool_dir=str(spool_dir), **cfg),
                  handle, agent, send=lambda b: wire.learner.receive(b), key=wire.key)
    wire.actors.append(actor)
    return actor


def test_a_killed_actors_spool_is_resent_and_stored_exactly_once(tmp_path):
    wire = Wire(small_config(tmp_path / "run"))
    spool_dir = tmp_path / "spool"
    old = spooled_actor(wire, spool_dir)
    old.run_episode(seed=0)
    wire.settle()
    assert not old.unacked and not list((spool_dir / old.session).glob("*.seg"))   # acked: deleted
    acked_episode = old.next_seq
    # Episode 1 finishes but the learner never gets it; episode 2: 4 steps arrive, 3 are lost.
    delivered = []
    old.send = lambda b: None
    old.run_episode(seed=1)
    obs, _ = old.env.reset(seed=2)
    for i in range(7):
        old.send = (lambda b: (delivered.append(b), wire.learner.receive(b))) if i < 4 else (lambda b: None)
        a = old.agent.act(obs)
        nxt, r, term, trunc, info = old.env.step(a)
        old._record(old.episode, i, obs, a, r, nxt, False, False, 0.0, False, success=False)
        obs = nxt
    recorded = old.next_seq
    wire.learner.step()
    assert len(wire.learner.online) == acked_episode        # nothing of it stored yet
    wire.actors.remove(old)                                 # SIGKILL: no close, no flush
    assert len(list((spool_dir / old.session).glob("*.seg"))) == 2

    new = spooled_actor(wire, spool_dir)
    assert new.session != old.session and [s.session for s in new.spooled] == [old.session]
    sent = []
    new.send = lambda b: (sent.append(b), wire.learner.receive(b))

    def settle_in_background():
        import threading
        stop = threading.Event()

        def loop():
            while not stop.is_set():
                wire.learner.step()
        t = threading.Thread(target=loop, daemon=True)
        t.start()
        return stop, t
    stop, t = settle_in_background()
    try:
        results = new.recover_spooled(timeout_s=30)
    finally:
        stop.set()
        t.join(5)
    lr = wire.learner
    assert len(results) == 2 and all(r["recovered"] for r in results)
    assert [r["length"] for r in results] == [recorded - acked_episode - 7, 7]
    assert len(lr.online) == recorded                       # every recorded transition, once
    assert lr.sessions[old.key]["acked"] == recorded - 1
    ends = [e["end"] for e in lr.online.episodes()]
    assert ends[-1] == "truncated"                          # the killed episode, closed
    assert not (spool_dir / old.session).exists() and not new.spooled
    # Late and repeated deliveries (the old actor's, the recovery's) are dropped as duplicates.
    for b in delivered + sent:
        lr.receive(b)
    for _ in range(3):
        lr.step()
    assert len(lr.online) == recorded and lr.stats["duplicates"] > 0
    # The new session goes on as usual.
    new.run_episode(seed=9)
    wire.settle()
    assert not new.unacked and len(lr.online) == recorded + new.next_seq
    actions = lr.online.gather(lr.online.transition_indices())["action"]
    assert len(np.unique(actions, axis=0)) == len(actions)       # no transition stored twice
    lr.close()


def test_spool_records_survive_a_torn_tail_and_bad_policies_are_refused(tmp_path):
    with pytest.raises(ValueError, match="fsync"):
        Spool(tmp_path, "s", fsync="sometimes")
    spool = Spool(tmp_path, "s", fsync="step")
    spool.append(0, 0, b"first", True, episode_ends=False)
    spool.append(0, 1, b"second", False, episode_ends=False)
    seg = tmp_path / "s" / "00000000.seg"
    with open(seg, "ab") as f:
        f.write(b"\x10\x00\x00")                          # a record header cut short
    (tmp_path / "s" / "00000001.seg").write_bytes(open(seg, "rb").read()[:-6][:13] + b"x" * 9)
    got = Spool.recover(tmp_path)
    assert [r.message for r in got[0].records] == [b"first", b"second"]      # the torn tails: dropped
    assert got[0].records[0].success and not got[0].records[1].success
    assert Spool.recover(tmp_path, exclude="s") == []


def _seqs_in_spool(spool_dir: Path) -> dict[str, int]:
    """session -> the highest seq spooled (what the killed actor recorded last)."""
    out = {}
    for s in Spool.recover(spool_dir):
        out[s.session] = max(transport.peek_header(r.message)["seq"] for r in s.records)
    return out


@pytest.mark.slow
def test_actor_then_both_sigkilled_at_random_moments_nothing_lost(tmp_path, kill_rng):
    """~60 s: learner + actor processes; SIGKILL the actor, restart it; SIGKILL both, restart both."""
    rng, seed = kill_rng, kill_rng.seed_value
    run_dir = tmp_path / "run"
    steps = 500
    cfg = write_config(run_dir, steps=steps)
    spool_dir = run_dir / "spool" / "actor_actor0"
    procs = Processes(tmp_path)
    from tests.ros.conftest import Graph
    graph = Graph()
    try:
        probe = AckProbe(graph.probe, run_dir)
        learner = procs.start("learner", "robot_rl.tasks.ros.learner_node", config_file=cfg)
        actor = procs.start("actor", "robot_rl.tasks.ros.actor_node", config_file=cfg, pace_hz=150.0, resend_after_s=1.0)
        # 1. The actor alone, at a random moment.
        probe.wait(lambda: probe.max_acked() >= rng.randrange(30, 120), 90, "acks before the actor kill")
        time.sleep(rng.uniform(0.0, 0.3))
        actor.send_signal(signal.SIGKILL)
        actor.wait(timeout=10)
        killed = _seqs_in_spool(spool_dir)
        assert killed, f"seed {seed}: nothing spooled"
        actor = procs.start("actor2", "robot_rl.tasks.ros.actor_node", config_file=cfg, pace_hz=150.0, resend_after_s=1.0)
        # 2. Both at once, at a random moment after the restarted actor recovered and went on.
        probe.wait(lambda: len(probe.acked) >= 2 and min(probe.acked.values()) >= 0
                   and max(v for k, v in probe.acked.items() if k.split("/")[1] not in killed) >= rng.randrange(20, 90),
                   90, "the restarted actor's acks")
        time.sleep(rng.uniform(0.0, 0.3))
        for p in (actor, learner):
            p.send_signal(signal.SIGKILL)
        for p in (actor, learner):
            p.wait(timeout=10)
        killed.update(_seqs_in_spool(spool_dir))
        with ReplayBuffer.open(run_dir / "buffers" / "online") as online:
            stored_before = len(online)
        # 3. Restart both; the run completes.
        learner = procs.start("learner2", "robot_rl.tasks.ros.learner_node", config_file=cfg, stop_after_steps=steps)
        actor = procs.start("actor3", "robot_rl.tasks.ros.actor_node", config_file=cfg, steps=150, resend_after_s=1.0)
        assert procs.wait(actor, 150) == 0, f"seed {seed}\n" + procs.log("actor3")[-4000:]
        learner.send_signal(signal.SIGINT)
        assert procs.wait(learner, 60) == 0, procs.log("learner2")
    finally:
        procs.stop_all()
        graph.shutdown()

    lr = json.loads((run_dir / "learner_stats.json").read_text())
    a3 = json.loads((run_dir / "actor_actor0.json").read_text())
    assert a3["unacked"] == 0 and a3["acked"] == a3["next_seq"] - 1
    for session, last_seq in killed.items():       # every transition a killed actor recorded
        assert lr["acked"][f"actor0/{session}"] >= last_seq, (seed, session, last_seq, lr["acked"])
    assert not any(Path(spool_dir).glob("*/*.seg")), "the spool was not emptied"
    with ReplayBuffer.open(run_dir / "buffers" / "online") as online:
        n = len(online)
        assert n >= stored_before and n == online.transitions_added
        assert n == sum(v + 1 for v in lr["acked"].values()) == lr["counters"]["env_steps"]
        actions = online.gather(online.transition_indices())["action"]
        assert len(np.unique(actions, axis=0)) == n, f"seed {seed}: a transition was stored twice"
    # The episode log (the distributed curve): every stored transition's episode is in it once.
    from robot_rl.tasks.ros.actor_node import read_episode_log
    log = read_episode_log(run_dir / "actor_actor0_episodes.jsonl")
    keys = [(e["session"], e["episode"]) for e in log]
    assert len(keys) == len(set(keys)), f"seed {seed}: an episode logged twice"
    assert sum(e["length"] for e in log) == n, (seed, sum(e["length"] for e in log), n)


@pytest.mark.slow
def test_robot_rl_train_distributed_sigkilled_then_rerun_resumes(tmp_path, kill_rng):
    """~50 s: `robot-rl train --distributed` SIGKILLed at a random moment (its actor and learner
    die with it), then run again on the same run dir: it resumes and completes the steps."""
    import os
    import subprocess
    import sys

    rng, seed = kill_rng, kill_rng.seed_value
    run_dir = tmp_path / "run"
    steps = 240
    cfg = write_config(run_dir, steps=steps, final_eval_episodes=2)
    root = Path(__file__).resolve().parents[2]
    log = tmp_path / "train.log"

    def start():
        with open(log, "a") as f:
            return subprocess.Popen([sys.executable, "-m", "robot_rl.cli", "train", "--distributed",
                                     "--config", str(cfg)], cwd=root, stdout=f, stderr=subprocess.STDOUT,
                                    start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def stored() -> int:
        try:
            return json.loads((run_dir / "learner_state.json").read_text())["counters"]["env_steps"]
        except (OSError, ValueError, KeyError):
            return -1
    proc = start()
    try:
        threshold, deadline = rng.randrange(30, 150), time.monotonic() + 120
        while stored() < threshold:
            assert proc.poll() is None, f"seed {seed}: exited early\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"seed {seed}: no progress\n{log.read_text()[-3000:]}"
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.3))
        os.killpg(proc.pid, signal.SIGKILL)           # the CLI process (its children have their own groups)
        proc.wait(timeout=10)
        # The children die with it (PR_SET_PDEATHSIG): the buffers' locks are free again.
        deadline = time.monotonic() + 15
        while True:
            try:
                with ReplayBuffer.open(run_dir / "buffers" / "online") as online:
                    before = len(online)
                break
            except RuntimeError:
                assert time.monotonic() < deadline, "an orphaned node still holds the buffer"
                time.sleep(0.2)
        proc = start()
        assert proc.wait(timeout=240) == 0, f"seed {seed}\n{log.read_text()[-4000:]}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    ev = json.loads((run_dir / "eval.json").read_text())
    curve = json.loads((run_dir / "progress.json").read_text())
    with ReplayBuffer.open(run_dir / "buffers" / "online") as online:
        n = len(online)
        actions = online.gather(online.transition_indices())["action"]
    assert n >= before and ev["env_steps"] == n and steps <= n < steps + 60, (seed, n, ev["env_steps"])
    assert len(np.unique(actions, axis=0)) == n, f"seed {seed}: a transition was stored twice"
    assert curve["episode_step"][-1] == n and curve["episode_step"] == sorted(set(curve["episode_step"]))
