"""Actor and learner as real rclpy nodes across processes (point_reach: fast, no physics).

- an actor process and a learner process exchange transitions, acks and weights;
- a late subscriber gets the newest weights at once (TRANSIENT_LOCAL, depth 1);
- SIGKILL the learner mid-run: every transition acknowledged before the kill is in the
  reopened buffers, and after a restart the run completes with each transition stored once;
- a synthetic SpaceMouse stream takes over within one control step, and the intervened
  transitions land in the online AND demo buffers;
- malformed / mismatched messages are rejected with a logged error; the nodes keep running.
Every process is started with its own log file and stopped by pid in a finally.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

from geometry_msgs.msg import TwistStamped  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from std_msgs.msg import UInt8MultiArray  # noqa: E402

from robot_rl import transport  # noqa: E402
from robot_rl.auth import KEY_FILE, AuthError, MessageAuth, ensure_key, load_key  # noqa: E402
from robot_rl.buffers import ReplayBuffer  # noqa: E402
from robot_rl.tasks.ros import rl_graph  # noqa: E402
from tests.robot_rl.conftest import write_small_run_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def write_config(run_dir: Path, **changes) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    ensure_key(run_dir)                    # the run's auth key, as whoever creates the run dir does
    return write_small_run_config(run_dir, **{"steps": 300, "learning_starts": 64, "updates_per_step": 0.25,
                                             **changes})


class Processes:
    """Node processes of one test, each logging to a file; all stopped by pid at the end."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, module: str, **params) -> subprocess.Popen:
        args = [sys.executable, "-m", module, "--ros-args"]
        for k, v in params.items():
            args += ["-p", f"{k}:={v}"]
        log = open(self.log_dir / f"{name}.log", "a")
        proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
        log.close()
        self.procs.append((name, proc))
        return proc

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text()

    def wait(self, proc: subprocess.Popen, timeout: float) -> int:
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)          # the node dumps its threads' stacks
            time.sleep(1.0)
            names = [n for n, p in self.procs if p is proc]
            raise AssertionError(f"{names} did not finish in {timeout} s:\n" +
                                 "\n".join(self.log(n)[-6000:] for n in names)) from None

    def stop_all(self) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10
        for _, proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def procs(tmp_path):
    p = Processes(tmp_path)
    try:
        yield p
    finally:
        p.stop_all()


class AckProbe:
    """Watches /robot_rl/acks from the test process: the highest seq acked per session."""

    def __init__(self, node, run_dir: Path):
        self.auth = MessageAuth(load_key(Path(run_dir) / KEY_FILE))     # acks are signed with the run's key
        self.acked: dict[str, int] = {}
        self.learner_sessions: list[str] = []
        self._lock = threading.Lock()
        node.create_subscription(UInt8MultiArray, rl_graph.ACKS_TOPIC, self._on, rl_graph.ACKS_QOS)

    def _on(self, msg) -> None:
        try:
            payload = self.auth.verify(rl_graph.from_msg(msg))
        except AuthError:
            return                    # a forged ack on the graph (tests/security): not the learner's
        session, table = transport.decode_ack(payload)
        with self._lock:
            if session not in self.learner_sessions:
                self.learner_sessions.append(session)
            for k, v in table.items():
                self.acked[k] = max(self.acked.get(k, -1), v["acked"])

    def max_acked(self) -> int:
        with self._lock:
            return max(self.acked.values(), default=-1)

    def wait(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what} (acks seen: {self.acked})"
            time.sleep(0.02)


@pytest.mark.slow
def test_actor_and_learner_processes_exchange_transitions_and_weights(tmp_path, procs, graph):
    """~20 s: two processes, 300 steps; the actor waits for trained weights between episodes."""
    run_dir = tmp_path / "run"
    cfg = write_config(run_dir, steps=300)
    learner = procs.start("learner", "robot_rl.tasks.ros.learner_node", config_file=cfg, stop_after_steps=300,
                          weights_every_s=0.2)
    actor = procs.start("actor", "robot_rl.tasks.ros.actor_node", config_file=cfg, sync_updates_per_step=0.25,
                        max_policy_lag=60)
    assert procs.wait(actor, 120) == 0, procs.log("actor")
    assert procs.wait(learner, 60) == 0, procs.log("learner")

    a = json.loads((run_dir / "actor_actor0.json").read_text())
    lr = json.loads((run_dir / "learner_stats.json").read_text())
    n = a["env_steps"]                        # whole episodes: the last one may run past 300
    assert n >= 300 and a["next_seq"] == n and a["unacked"] == 0 and a["acked"] == n - 1
    assert a["weights_version"] > 0 and a["stats"]["weights_loaded"] >= 2   # trained weights came back
    assert lr["online"] == n and lr["counters"]["env_steps"] == n
    # The run's update budget (robot_rl/updates.py): 0.25 per env step from learning_starts (64) on.
    assert lr["counters"]["updates"] >= int(0.25 * (n - 64 + 1)) - 1
    assert lr["acked"][f"actor0/{a['session']}"] == n - 1
    with ReplayBuffer.open(run_dir / "buffers" / "online") as online:
        assert len(online) == n

    # Late joiner: the learner has exited, but a NEW learner on the run dir republishes at
    # start; a subscriber that joins afterwards gets the newest weights at once.
    learner2 = procs.start("learner2", "robot_rl.tasks.ros.learner_node", config_file=cfg)
    probe = AckProbe(graph.probe, run_dir)
    probe.wait(lambda: probe.learner_sessions, 30, "the restarted learner's heartbeat")
    got = []
    graph.probe.create_subscription(UInt8MultiArray, rl_graph.WEIGHTS_TOPIC,
                                    lambda m: got.append(rl_graph.from_msg(m)), rl_graph.WEIGHTS_QOS)
    probe.wait(lambda: got, 10, "weights for a late subscriber")
    header = transport.peek_header(probe.auth.verify(got[0]))
    assert header["kind"] == "weights" and header["weights_version"] == lr["counters"]["updates"]
    assert len(got) == 1                      # depth 1: only the newest, not a backlog
    learner2.send_signal(signal.SIGINT)
    assert procs.wait(learner2, 30) == 0


@pytest.mark.slow
def test_sigkill_learner_loses_no_acknowledged_transition(tmp_path, procs, graph):
    """~35 s: kill -9 the learner mid-run, count the reopened buffers against the acks seen,
    restart it; the actor resends and the run completes with every transition stored once."""
    run_dir = tmp_path / "run"
    steps = 900
    cfg = write_config(run_dir, steps=steps)
    probe = AckProbe(graph.probe, run_dir)
    learner = procs.start("learner", "robot_rl.tasks.ros.learner_node", config_file=cfg)
    actor = procs.start("actor", "robot_rl.tasks.ros.actor_node", config_file=cfg, pace_hz=150.0, resend_after_s=1.0)
    probe.wait(lambda: probe.max_acked() >= 150, 60, "150 acked transitions")
    learner.send_signal(signal.SIGKILL)
    learner.wait(timeout=10)
    acked_before_kill = probe.max_acked()
    assert actor.poll() is None, "the actor must survive the learner"
    with ReplayBuffer.open(run_dir / "buffers" / "online") as online:
        stored = len(online)
    assert stored >= acked_before_kill + 1, (stored, acked_before_kill)

    time.sleep(1.0)                                # the actor keeps going, learner down
    learner = procs.start("learner_restarted", "robot_rl.tasks.ros.learner_node", config_file=cfg,
                          stop_after_steps=steps)
    assert procs.wait(actor, 120) == 0, procs.log("actor")
    assert procs.wait(learner, 60) == 0, procs.log("learner_restarted")
    a = json.loads((run_dir / "actor_actor0.json").read_text())
    n = a["env_steps"]                             # >= steps: whole episodes
    assert a["unacked"] == 0 and a["acked"] == n - 1 and a["stats"]["resent"] > 0
    assert len(probe.learner_sessions) == 2
    with ReplayBuffer.open(run_dir / "buffers" / "online") as online:
        assert len(online) == n                    # nothing lost, nothing stored twice
        assert online.episodes()[0]["first_frame"] == 0


def _actor_params(cfg: Path, **params):
    return [Parameter("config_file", value=str(cfg)), *(Parameter(k, value=v) for k, v in params.items())]


@pytest.mark.slow
def test_spacemouse_takes_over_within_one_step_and_feeds_the_demo_buffer(tmp_path, procs, graph):
    """~25 s: an in-process actor node paced at 20 Hz; a TwistStamped stream from the test."""
    from robot_rl.tasks.ros.actor_node import ActorNode

    run_dir = tmp_path / "run"
    steps, hz = 120, 20.0
    cfg = write_config(run_dir, steps=steps)
    learner = procs.start("learner", "robot_rl.tasks.ros.learner_node", config_file=cfg, stop_after_steps=steps)
    node = graph.add(ActorNode(context=graph.context, parameter_overrides=_actor_params(cfg, pace_hz=hz)))
    actions: list[tuple[float, np.ndarray]] = []
    real_step = node.actor.env.step

    def step(a):
        actions.append((time.monotonic(), np.array(a)))
        return real_step(a)
    node.actor.env.step = step
    # Instrument the takeover: when each twist arrived, and what each control step read.
    takeover = node.actor.takeover
    arrivals: list[float] = []
    reads: list[tuple[float, bool]] = []
    real_on_twist, real_action = takeover.on_twist, takeover.action

    def on_twist(v):
        real_on_twist(v)
        arrivals.append(time.monotonic())

    def action(rotation=None):
        t, a = time.monotonic(), real_action(rotation)
        reads.append((t, a is not None))
        return a
    takeover.on_twist, takeover.action = on_twist, action
    # Malformed weights and acks into the actor node: logged, counted, the node goes on.
    bad = graph.probe.create_publisher(UInt8MultiArray, rl_graph.ACKS_TOPIC, rl_graph.ACKS_QOS)
    graph.wait_matched(bad)
    bad.publish(rl_graph.to_msg(b"\x00garbage"))
    bad_weights = graph.probe.create_publisher(UInt8MultiArray, rl_graph.WEIGHTS_TOPIC, rl_graph.WEIGHTS_QOS)
    graph.wait_matched(bad_weights)
    foreign = transport.encode_weights({"actor": {"w": torch.zeros(3)}}, 1, "x")   # signed: the schema refuses it
    bad_weights.publish(rl_graph.to_msg(MessageAuth(load_key(run_dir / KEY_FILE)).sign(foreign)))
    twist_pub = graph.probe.create_publisher(TwistStamped, "/spacemouse/twist", 10)
    graph.wait_matched(twist_pub)

    runner = threading.Thread(target=node.run, daemon=True)
    runner.start()
    try:
        time.sleep(1.5)
        t0 = time.monotonic()
        msg = TwistStamped()
        msg.twist.linear.x = 0.6
        while time.monotonic() - t0 < 1.0:        # the human pushes for one second at 100 Hz
            twist_pub.publish(msg)
            time.sleep(0.01)
        msg.twist.linear.x = 0.0
        twist_pub.publish(msg)
        runner.join(timeout=60)
        assert not runner.is_alive(), "the actor did not finish"
    finally:
        node.actor.stop_event.set()
        runner.join(timeout=10)
    assert node.rejected >= 2            # the garbage ack and the foreign weights were refused; it went on
    human = np.array([0.6, 0, 0, 0, 0, 0, 0], np.float32)
    taken = [t for t, a in actions if np.allclose(a, human)]
    assert taken, "the twist never took over"
    # Takeover within one control step: the first step that read the teleop after the first
    # twist arrived is the human's; DDS delivery itself is well within one period.
    first_arrival = arrivals[0]
    first_read_after = next(took for t, took in reads if t >= first_arrival)
    assert first_read_after, "a control step after the twist arrived still ran the policy"
    assert first_arrival - t0 < 1.0 / hz, f"twist delivered after {first_arrival - t0:.3f} s"
    assert taken[0] - t0 <= 2.0 / hz + 0.1, f"takeover after {taken[0] - t0:.3f} s"
    n_human = len(taken)
    assert 10 <= n_human <= 1.0 * hz + 2
    assert procs.wait(learner, 60) == 0, procs.log("learner")
    summary = node.summary()
    assert summary["unacked"] == 0 and sum(e["interventions"] for e in summary["episodes"]) == n_human
    with ReplayBuffer.open(run_dir / "buffers" / "online") as online:
        flags = online.gather(online.transition_indices())["intervention"]
        assert int(flags.sum()) == n_human
    with ReplayBuffer.open(run_dir / "buffers" / "demo") as demo:
        demo_flags = demo.gather(demo.transition_indices())["intervention"]
        lr = json.loads((run_dir / "learner_stats.json").read_text())
        assert lr["demo"] == len(demo) and len(demo) >= n_human     # scripted demos + the human's
        assert demo_flags.all()
        ends = [e["end"] for e in demo.episodes()]
        assert "truncated" in ends                 # the human's segment, closed mid-episode


def test_malformed_messages_are_rejected_and_the_learner_keeps_running(tmp_path, procs, graph):
    """~12 s: garbage, another version, wrong shapes into the learner; then a valid episode is acked."""
    from safetensors.numpy import load as st_load
    from safetensors.numpy import save as st_save

    run_dir = tmp_path / "run"
    cfg = write_config(run_dir, demos=0)
    probe = AckProbe(graph.probe, run_dir)
    learner = procs.start("learner", "robot_rl.tasks.ros.learner_node", config_file=cfg)
    probe.wait(lambda: probe.learner_sessions, 40, "the learner's heartbeat")
    pub = graph.probe.create_publisher(UInt8MultiArray, rl_graph.TRANSITIONS_TOPIC, rl_graph.TRANSITIONS_QOS)
    graph.wait_matched(pub)

    from robot_rl.run_env import make_env_and_expert
    handle = make_env_and_expert("point_reach", seed=0)
    obs, _ = handle.env.reset(seed=0)
    frames, acts, rews, terms, truncs = [obs["state"]], [], [], [], []
    while True:
        a = handle.expert.act(obs)
        obs, r, term, trunc, _ = handle.env.step(a)
        frames.append(obs["state"]); acts.append(a); rews.append(r); terms.append(term); truncs.append(trunc)
        if term or trunc:
            break
    n = len(acts)
    good = transport.encode_transitions(transport.TransitionChunk(
        "tester", "s1", 0, 0, 0, {"state": np.stack(frames)}, np.stack(acts), np.array(rews, np.float32),
        np.array(terms, np.uint8), np.array(truncs, np.uint8), np.zeros(n, np.float32), np.zeros(n, np.uint8)))
    header = transport.peek_header(good)
    tensors = st_load(good)
    newer = st_save(tensors, metadata={"robot_rl.transport": json.dumps({**header, "version": 99})})
    wrong_shape = st_save({**tensors, "frame/state": np.zeros((n + 1, 9), np.float32)},
                          metadata={"robot_rl.transport": json.dumps(header)})
    # Unsigned garbage is refused by its tag; signed ones of another version / shape by the schema.
    for data in (b"garbage bytes", os.urandom(4096), probe.auth.sign(newer), probe.auth.sign(wrong_shape)):
        pub.publish(rl_graph.to_msg(data))
    pub.publish(rl_graph.to_msg(probe.auth.sign(good)))
    probe.wait(lambda: probe.acked.get("tester/s1", -1) == n - 1, 20, "the valid episode's ack")
    assert learner.poll() is None
    learner.send_signal(signal.SIGINT)
    assert procs.wait(learner, 30) == 0
    log = procs.log("learner")
    assert log.count("rejected a transition message") == 4, log
    assert "version 99 received" in log and "frame/state: expected float32(" in log


@pytest.mark.slow
def test_run_distributed_trains_evaluates_and_stops_both_processes(tmp_path):
    """~25 s: robot-rl train --distributed's function on a short point_reach run."""
    from robot_rl import config as config_lib
    from robot_rl.train import TrainConfig
    from robot_rl.tasks.ros.distributed import run_distributed

    run_dir = tmp_path / "run"
    cfg = config_lib.load(TrainConfig, write_config(run_dir, steps=200, final_eval_episodes=5))
    final = run_distributed(cfg)
    ev = json.loads((run_dir / "eval.json").read_text())
    assert ev == final and ev["distributed"] and ev["episodes"] == 5 and ev["env_steps"] >= 200
    # The run's update budget (robot_rl/updates.py): 0.25 per env step from learning_starts (64) on.
    assert ev["updates"] >= int(0.25 * (200 - 64 + 1)) - 1 and 0.0 <= ev["success_rate"] <= 1.0
    assert (run_dir / "learning_curve.png").stat().st_size > 1000
    assert "learner stopped" in (run_dir / "learner.log").read_text()
    # Both children are gone (stopped by pid): no process of ours holds the buffers' lock.
    with ReplayBuffer.open(run_dir / "buffers" / "online") as online:
        assert len(online) == ev["env_steps"]


@pytest.mark.slow
def test_learner_survives_an_actor_killed_and_restarted(tmp_path, procs, graph):
    """~20 s: SIGKILL the actor mid-episode; its unfinished episode is dropped, a new actor
    process (a new session) is taken in, and every committed transition is accounted for."""
    run_dir = tmp_path / "run"
    cfg = write_config(run_dir, steps=600)
    probe = AckProbe(graph.probe, run_dir)
    learner = procs.start("learner", "robot_rl.tasks.ros.learner_node", config_file=cfg)
    actor = procs.start("actor", "robot_rl.tasks.ros.actor_node", config_file=cfg, pace_hz=150.0)
    probe.wait(lambda: probe.max_acked() >= 60, 60, "60 acked transitions")
    actor.send_signal(signal.SIGKILL)
    actor.wait(timeout=10)
    acked_before_kill = probe.max_acked()
    actor2 = procs.start("actor2", "robot_rl.tasks.ros.actor_node", config_file=cfg, steps=90)
    assert procs.wait(actor2, 60) == 0, procs.log("actor2")
    assert learner.poll() is None, "the learner must survive the actor"
    learner.send_signal(signal.SIGINT)
    assert procs.wait(learner, 30) == 0, procs.log("learner")
    a2 = json.loads((run_dir / "actor_actor0.json").read_text())   # written by actor2 only
    lr = json.loads((run_dir / "learner_stats.json").read_text())
    assert len(lr["acked"]) == 2 and lr["acked"][f"actor0/{a2['session']}"] == a2["next_seq"] - 1
    first = [v for k, v in lr["acked"].items() if k != f"actor0/{a2['session']}"][0]
    assert first >= acked_before_kill
    assert lr["online"] == sum(v + 1 for v in lr["acked"].values())   # whole episodes, each once
