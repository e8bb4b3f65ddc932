"""Actor <-> learner transport over ROS 2, across two processes on one machine.

    .venv/bin/python -m robot_rl.bench.transport [--transitions 1000] [--weights-mb 20] [--repeats 5]
    .venv/bin/python -m robot_rl.bench.transport --auth [--weights-mb 20]      # only 3. (no ROS, ~30 s)

1. transitions/s: pixel transitions (state 20 + two 128x128 RGB cameras; 1 per message, as
   the actor sends them, and in chunks of 16, as it resends) published as fast as possible by
   this process, received AND decoded (robot_rl.transport, all checks) by a child process.
   Reliable, keep-last 200: what the writer overruns is lost and counted (the actor's ack
   protocol would resend it); the rate is over what arrived.
2. weight broadcast: a `--weights-mb` MB policy, TRANSIENT_LOCAL depth 1, encoded here,
   received and decoded there; the child answers with a small ack message. Reported: round
   trip (publish .. decoded .. answer back), and encode / decode times alone. Also the time for
   a late subscriber (created after publishing) to get the latched weights.
3. authentication on / off (in this process, no ROS): per message kind, decode alone vs
   verify + decode, and sign alone (HMAC-SHA256, robot_rl/auth.py); per learner update (a state
   SAC UTD cycle, the updates/s of `robot-rl bench learner`) the verify of its share of the
   incoming transitions plus the signing of its share of the weights and acks, as a fraction of
   the update; per actor step (state policy act() + encode + send) p50/p99 with and without the
   signature, interleaved so both see the same load.
Prints the machine, then one JSON line (last).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time

import numpy as np

os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import rclpy  # noqa: E402
import torch  # noqa: E402
from rclpy.node import Node  # noqa: E402
from std_msgs.msg import UInt8MultiArray  # noqa: E402

from robot_rl.drivers.ros_common import Spinner  # noqa: E402
from robot_rl import transport  # noqa: E402
from robot_rl.child_process import stop_child  # noqa: E402
from robot_rl.tasks.ros import rl_graph  # noqa: E402

NS = "/bench_transport"
OBS = {"state": ((20,), np.dtype(np.float32)), "wrist": ((128, 128, 3), np.dtype(np.uint8)),
       "front": ((128, 128, 3), np.dtype(np.uint8))}
SCHEMA = transport.TransitionSchema(OBS, 7)


def fake_policy(megabytes: float) -> dict[str, dict[str, torch.Tensor]]:
    """A policy state of about `megabytes` MB of float32, shaped like a conv encoder + MLP actor."""
    n = int(megabytes * 1e6 / 4)
    g = torch.Generator().manual_seed(0)
    return {"encoder": {"conv.weight": torch.randn(n // 2 // 9, 9, generator=g)},
            "actor": {"trunk.0.weight": torch.randn(n - n // 2 // 9 * 9, generator=g),
                      "mean.bias": torch.zeros(7)}}


def chunk_bytes(n: int, seq: int, rng: np.random.Generator) -> bytes:
    frames = {k: (rng.standard_normal((n + 1, *s)).astype(np.float32) if d.kind == "f"
                  else rng.integers(0, 256, (n + 1, *s), dtype=np.uint8)) for k, (s, d) in OBS.items()}
    zeros = np.zeros(n, np.uint8)
    return transport.encode_transitions(transport.TransitionChunk(
        "bench", "s", 0, seq, seq, frames, np.zeros((n, 7), np.float32), np.zeros(n, np.float32),
        zeros, zeros, np.zeros(n, np.float32), zeros))


# ----------------------------------------------------------------------------- the child

def receiver(weights_mb: float) -> int:
    rclpy.init()
    node = Node("bench_receiver")
    schema = transport.weights_schema(fake_policy(weights_mb))
    pong = node.create_publisher(UInt8MultiArray, f"{NS}/pong", rl_graph.ACKS_QOS)
    state = {"count": 0, "messages": 0, "decode_s": 0.0}

    def on_transitions(msg):
        t = time.perf_counter()
        chunk = transport.decode_transitions(rl_graph.from_msg(msg), SCHEMA)
        state["decode_s"] += time.perf_counter() - t
        state["count"] += chunk.count
        state["messages"] += 1
        report()

    def on_weights(msg):
        t = time.perf_counter()
        header, _ = transport.decode_weights(rl_graph.from_msg(msg), schema)
        decode_us = int((time.perf_counter() - t) * 1e6)
        pong.publish(rl_graph.to_msg(transport.encode_ack("rx", {"weights": {"acked": header["weights_version"],
                                                                            "expected": decode_us}})))

    def report(_msg=None):
        pong.publish(rl_graph.to_msg(transport.encode_ack("rx", {
            "transitions": {"acked": state["count"], "expected": state["messages"]},
            "decode": {"acked": int(state["decode_s"] * 1e6), "expected": 0}})))

    node.create_subscription(UInt8MultiArray, f"{NS}/transitions", on_transitions, rl_graph.TRANSITIONS_QOS)
    node.create_subscription(UInt8MultiArray, f"{NS}/weights", on_weights, rl_graph.WEIGHTS_QOS)
    node.create_subscription(UInt8MultiArray, f"{NS}/report", report, rl_graph.ACKS_QOS)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.is_set():
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.shutdown()
    return 0


# ----------------------------------------------------------------------------- the parent

class Pongs:
    def __init__(self, node: Node):
        self.msgs: list[tuple[float, dict]] = []
        self.cond = threading.Condition()
        node.create_subscription(UInt8MultiArray, f"{NS}/pong", self._on, rl_graph.ACKS_QOS)

    def _on(self, msg) -> None:
        _, table = transport.decode_ack(rl_graph.from_msg(msg))
        with self.cond:
            self.msgs.append((time.perf_counter(), table))
            self.cond.notify_all()

    def wait(self, key: str, start: int, timeout: float) -> tuple[float, dict]:
        deadline = time.perf_counter() + timeout
        with self.cond:
            while True:
                for t, table in self.msgs[start:]:
                    if key in table:
                        return t, table
                left = deadline - time.perf_counter()
                if left <= 0:
                    raise TimeoutError(f"no {key!r} answer from the receiver in {timeout} s")
                self.cond.wait(left)


def _median_s(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def auth_costs(weights_mb: float, repeats: int = 30, update_seconds: float = 5.0) -> dict:
    """Section 3 of the module docstring."""
    import secrets

    from robot_rl.bench.learner import random_batch, bench_spaces, updates_per_s
    from robot_rl.agents.sac import SACAgent, SACConfig
    from robot_rl.auth import MessageAuth

    auth = MessageAuth(secrets.token_bytes(32))
    rng = np.random.default_rng(0)
    obs_space, act_space = bench_spaces(())
    agent = SACAgent(SACConfig(), obs_space, act_space, seed=0)
    state_schema = transport.TransitionSchema.from_spaces(obs_space, act_space)
    z = np.zeros(1, np.uint8)

    def state_chunk(seq: int) -> bytes:
        return transport.encode_transitions(transport.TransitionChunk(
            "bench", "s", 0, 0, seq, {"state": rng.standard_normal((2, 19)).astype(np.float32)},
            np.zeros((1, 7), np.float32), np.zeros(1, np.float32), z, z, np.zeros(1, np.float32), z))

    big = fake_policy(weights_mb)
    acks = {f"actor{i}/{i:012x}": {"acked": 10_000 * i, "expected": 10_000 * i + 1} for i in range(8)}
    kinds = {
        "transition_state": (state_chunk(0), lambda b: transport.decode_transitions(b, state_schema)),
        "transition_pixels": (chunk_bytes(1, 0, rng), lambda b: transport.decode_transitions(b, SCHEMA)),
        "transition_pixels_x16": (chunk_bytes(16, 0, rng), lambda b: transport.decode_transitions(b, SCHEMA)),
        "ack_8_sessions": (transport.encode_ack("L", acks, 1, 1), transport.decode_ack),
        "weights_state_policy": (transport.encode_weights(agent.policy_state_dict(), 1, "L", 1),
                                 lambda b: transport.decode_weights(b, transport.weights_schema(agent.policy_state_dict()))),
        f"weights_{weights_mb:g}MB": (transport.encode_weights(big, 1, "L", 1),
                                      lambda b, sch=transport.weights_schema(big): transport.decode_weights(b, sch)),
    }
    out: dict = {"per_message": {}}
    for name, (payload, decode) in kinds.items():
        signed = auth.sign(payload)
        n = repeats if len(payload) < 5e6 else max(5, repeats // 6)
        off = _median_s(lambda: decode(payload), n)
        on = _median_s(lambda: decode(auth.verify(signed)), n)
        sign = _median_s(lambda: auth.sign(payload), n)
        out["per_message"][name] = {"bytes": len(payload), "decode_us": round(off * 1e6, 1),
                                    "verify_and_decode_us": round(on * 1e6, 1),
                                    "sign_us": round(sign * 1e6, 1)}
        print(f"auth {name} ({len(payload) / 1e3:.1f} kB): decode {off * 1e6:.0f} us, verify + decode "
              f"{on * 1e6:.0f} us, sign {sign * 1e6:.0f} us", flush=True)

    # Per learner update (state SAC, UTD cycle): updates_per_step=1 -> one transition verified per
    # update; weights (state policy) signed every weights_every_s=1 s; acks ~3/s (heartbeat + commits).
    batches = [random_batch(obs_space, 256, torch.device("cpu"), rng) for _ in range(agent.cfg.critic_actor_ratio)]
    ups = updates_per_s(agent, batches, update_seconds)
    pm = out["per_message"]
    verify_us = pm["transition_state"]["verify_and_decode_us"] - pm["transition_state"]["decode_us"]
    per_update_us = (max(verify_us, 0.0) + pm["weights_state_policy"]["sign_us"] / ups
                     + 3 * pm["ack_8_sessions"]["sign_us"] / ups)
    out["learner"] = {"state_updates_per_s": round(ups, 1), "update_ms": round(1e3 / ups, 2),
                      "auth_us_per_update": round(per_update_us, 1),
                      "auth_fraction_of_update": round(per_update_us * 1e-6 * ups, 5)}
    print(f"learner: {ups:.1f} state updates/s ({1e3 / ups:.1f} ms); authentication adds "
          f"{per_update_us:.1f} us per update ({100 * per_update_us * 1e-6 * ups:.3f} %)", flush=True)
    # A big (pixel) policy: its signing is paid once per publish (weights_every_s = 1 s), whatever
    # the update rate: the fraction of the learner loop's wall time it takes.
    big_sign_s = pm[f"weights_{weights_mb:g}MB"]["sign_us"] * 1e-6
    out["learner"]["big_weights_sign_fraction_at_1_publish_per_s"] = round(big_sign_s, 4)
    print(f"learner with a {weights_mb:g} MB policy: signing each publish takes {big_sign_s * 1e3:.1f} ms, "
          f"{100 * big_sign_s:.1f} % of the loop at one publish per second", flush=True)

    # Per actor step: act() + encode (+ sign), interleaved on and off.
    obs = {"state": rng.standard_normal(19).astype(np.float32)}
    times: dict[str, list[float]] = {"off": [], "on": []}
    for i in range(20 + 20 * repeats):
        for mode in ("off", "on") if i % 2 else ("on", "off"):
            t = time.perf_counter()
            agent.act(obs, deterministic=False)
            data = state_chunk(i)
            if mode == "on":
                data = auth.sign(data)
            if i >= 20:
                times[mode].append((time.perf_counter() - t) * 1e3)
    out["actor_step_ms"] = {m: {"p50": round(float(np.percentile(v, 50)), 3),
                                "p99": round(float(np.percentile(v, 99)), 3)} for m, v in times.items()}
    print(f"actor step (act + encode [+ sign]): off p50/p99 {out['actor_step_ms']['off']['p50']}/"
          f"{out['actor_step_ms']['off']['p99']} ms, on {out['actor_step_ms']['on']['p50']}/"
          f"{out['actor_step_ms']['on']['p99']} ms", flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--transitions", type=int, default=1000)
    p.add_argument("--weights-mb", type=float, default=20.0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--role", default="sender", choices=("sender", "receiver"))
    p.add_argument("--auth", action="store_true", help="only the authentication on/off comparison (no ROS)")
    args = p.parse_args()
    if args.role == "receiver":
        return receiver(args.weights_mb)
    if args.auth:
        print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
              f"python {platform.python_version()}, torch {torch.__version__}", flush=True)
        print(json.dumps({"bench": "transport_auth", "machine": platform.node(), "cores": os.cpu_count(),
                          **auth_costs(args.weights_mb)}))
        return 0

    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, torch {torch.__version__}, "
          f"rmw {os.environ.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp (default)')}", flush=True)
    child = subprocess.Popen([sys.executable, "-m", "robot_rl.bench.transport", "--role", "receiver",
                              "--weights-mb", str(args.weights_mb)], start_new_session=True)
    rclpy.init()
    node = Node("bench_sender")
    results: dict = {"bench": "transport", "machine": platform.node(), "cores": os.cpu_count()}
    try:
        pongs = Pongs(node)
        spin = Spinner([node])
        pubs = {name: node.create_publisher(UInt8MultiArray, f"{NS}/{name}", qos) for name, qos in
                (("transitions", rl_graph.TRANSITIONS_QOS), ("weights", rl_graph.WEIGHTS_QOS),
                 ("report", rl_graph.ACKS_QOS))}
        deadline = time.monotonic() + 60
        while any(p.get_subscription_count() == 0 for p in pubs.values()) or pongs.cond is None:
            if time.monotonic() > deadline or child.poll() is not None:
                raise RuntimeError("the receiver process did not come up")
            time.sleep(0.05)
        time.sleep(0.5)

        rng = np.random.default_rng(0)
        received = 0
        for per_msg in (1, 16):
            msgs = [chunk_bytes(per_msg, 1 + i * per_msg, rng) for i in range(16)]
            t = time.perf_counter()
            for _ in range(4):
                chunk_bytes(per_msg, 1, rng)
            encode_s = (time.perf_counter() - t) / (4 * per_msg)
            n_msgs = max(1, args.transitions // per_msg)
            base = received
            # Flow control as the actor has it: at most `window` messages in flight (< the
            # writer's keep-last 200, so nothing is overrun); the rate is end to end, decoded.
            window = max(2, 64 // per_msg)
            t0 = time.perf_counter()
            for i in range(n_msgs):
                while i - (received - base) // per_msg > window:
                    _, table = pongs.wait("transitions", len(pongs.msgs) - 1, 30)
                    received = table["transitions"]["acked"]
                    if i - (received - base) // per_msg > window:
                        with pongs.cond:
                            pongs.cond.wait(0.01)
                pubs["transitions"].publish(rl_graph.to_msg(msgs[i % len(msgs)]))
            while received - base < n_msgs * per_msg:
                pubs["report"].publish(UInt8MultiArray())
                with pongs.cond:
                    pongs.cond.wait(0.05)
                _, table = pongs.wait("transitions", len(pongs.msgs) - 1, 30)
                received = table["transitions"]["acked"]
                if time.perf_counter() - t0 > 120:
                    break
            elapsed = time.perf_counter() - t0
            got = received - base
            results[f"transitions_per_msg_{per_msg}"] = {
                "sent": n_msgs * per_msg, "received": got, "message_bytes": len(msgs[0]),
                "received_per_s": got / elapsed, "MB_per_s": got / elapsed * len(msgs[0]) / per_msg / 1e6,
                "encode_ms_per_transition": 1e3 * encode_s,
                "decode_ms_per_transition": table["decode"]["acked"] / 1e3 / max(received, 1)}
            print(f"transitions ({per_msg}/message, {len(msgs[0]) / 1e3:.0f} kB): "
                  f"{got / elapsed:.0f}/s sent, received and decoded ({got}/{n_msgs * per_msg})", flush=True)

        policy = fake_policy(args.weights_mb)
        rtts, encodes, decodes = [], [], []
        for v in range(args.repeats):
            start = len(pongs.msgs)
            t0 = time.perf_counter()
            data = transport.encode_weights(policy, v, "bench")
            t1 = time.perf_counter()
            pubs["weights"].publish(rl_graph.to_msg(data))
            t_back, table = pongs.wait("weights", start, 60)
            assert table["weights"]["acked"] == v
            encodes.append(t1 - t0)
            rtts.append(t_back - t1)
            decodes.append(table["weights"]["expected"] * 1e-6)
            time.sleep(0.2)
        # A late joiner: subscribe after the weights were published; TRANSIENT_LOCAL delivers them.
        got = threading.Event()
        t_late = time.perf_counter()
        late = node.create_subscription(UInt8MultiArray, f"{NS}/weights", lambda m: got.set(), rl_graph.WEIGHTS_QOS)
        late_s = time.perf_counter() - t_late if got.wait(30) else None
        node.destroy_subscription(late)
        results["weights"] = {"MB": len(data) / 1e6, "repeats": args.repeats,
                              "round_trip_s_median": float(np.median(rtts)), "round_trip_s_max": float(np.max(rtts)),
                              "encode_s_median": float(np.median(encodes)),
                              "receiver_decode_s_median": float(np.median(decodes)),
                              "late_joiner_s": late_s}
        print(f"weights {len(data) / 1e6:.1f} MB: round trip median {np.median(rtts) * 1e3:.0f} ms "
              f"(max {np.max(rtts) * 1e3:.0f}), encode {np.median(encodes) * 1e3:.0f} ms, "
              f"decode {np.median(decodes) * 1e3:.0f} ms, late joiner {late_s if late_s is None else round(late_s * 1e3)} ms",
              flush=True)
        spin.close()
    finally:
        stop_child(child, signal.SIGTERM)
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
