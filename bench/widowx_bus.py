"""WidowX bus throughput against the Dynamixel peer: sync read + sync write cycles per second.

    python -m robot_rl.bench.widowx_bus [--cycles 2000]

1. The bare bus (drivers/dynamixel_bus.py): one sync read of 126..135 for the 9 servos of a
   wx250s (6 joints, 2 shadows, gripper) + one sync write of 8 goal positions, back to back.
   The peer runs in a second process (as a real chain is another device) and, for reference,
   in this process (where it competes with the SDK's busy-waiting reader for the GIL).
2. The driver's control loop (drivers/widowx.py: read + IK + write) tracking a moving target
   at the requested control rate: achieved cycles/s and cycle time p50/p99.

A pty carries bytes instantly: at 1 Mbps on a real U2D2 the same cycle puts ~270 bytes on
the wire (~2.7 ms) plus the servos' return delay and the adapter's latency timer (set it to
1 ms, docs/widowx.md), so the real arm's ceiling is roughly 200-300 cycles/s.
Ends with one JSON line.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

from robot_rl.bench.peripherals import machine
from robot_rl.controllers.widowx_model import WIDOWX_250S
from robot_rl.drivers.dynamixel_bus import BusConfig, DynamixelBus
from robot_rl.drivers.errors import DeviceLostError
from robot_rl.drivers.peers.dynamixel_peer import DynamixelPeer
from robot_rl.drivers.widowx import WidowXArm, WidowXConfig
from robot_rl.child_process import stop_child


def pct(xs, q) -> float:
    return round(float(np.percentile(np.asarray(xs) * 1e3, q)), 3)


def bus_cycles(port: str, cycles: int) -> dict:
    bus = DynamixelBus(BusConfig(port=port))
    bus.open()
    try:
        times, missed = [], 0
        q = np.zeros(6)
        for i in range(cycles):
            t0 = time.perf_counter()
            try:
                bus.read_state()
            except DeviceLostError:   # a status packet later than the SDK's timeout (busy host)
                missed += 1
            q[0] = 0.3 * np.sin(i * 0.01)
            bus.write_goal_positions(q)
            times.append(time.perf_counter() - t0)
        return {"cycles_per_s": round(cycles / sum(times), 1), "p50_ms": pct(times, 50), "p99_ms": pct(times, 99),
                "missed_reads": missed}
    finally:
        bus.close()


def control_loop(port: str, rate: float, seconds: float) -> dict:
    arm = WidowXArm(WidowXConfig(bus=BusConfig(port=port), control_rate=rate))
    try:
        s = arm.state()
        c0, t0 = s.cycles, time.monotonic()
        while time.monotonic() - t0 < seconds:
            t = time.monotonic() - t0
            arm.set_target(s.pos + np.array([0.0, 0.03 * np.sin(2 * t), 0.0]), s.quat)
            time.sleep(0.01)
        done = arm.state().cycles - c0
        times = list(arm.cycle_times)
        return {"asked_hz": rate, "achieved_hz": round(done / (time.monotonic() - t0), 1),
                "cycle_p50_ms": pct(times, 50), "cycle_p99_ms": pct(times, 99)}
    finally:
        arm.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    results = {}
    proc = subprocess.Popen([sys.executable, "-m", "robot_rl.drivers.peers.dynamixel_peer"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        port = proc.stdout.readline().strip()
        results["bus_peer_process"] = bus_cycles(port, args.cycles)
        print(f"bus, peer in its own process:  {results['bus_peer_process']}")
        for rate in (100.0, 200.0):
            key = f"control_{int(rate)}hz_peer_process"
            results[key] = control_loop(port, rate, args.seconds)
            print(f"control loop at {rate:.0f} Hz:          {results[key]}")
    finally:
        proc.stdin.close()   # the peer stops when its stdin closes
        stop_child(proc, None, grace_s=5)
    with DynamixelPeer() as peer:
        results["bus_peer_in_process"] = bus_cycles(peer.port, args.cycles)
        print(f"bus, peer in this process:     {results['bus_peer_in_process']}")
    print(json.dumps({"bench": "widowx_bus", "machine": machine(), "joints": WIDOWX_250S.n_joints, **results}))


if __name__ == "__main__":
    main()
