"""The Franka driver's 1 kHz torque loop against franky-sim: rate, jitter, misses, latency.

    python bench/franka_loop.py [--seconds 20] [--load] [--hostname 127.0.0.x]

Starts franky-sim (drivers.franka_sim) on a loopback address of its own and the driver's
loop process (drivers.franka.FrankaArm), streams equilibrium poses at 10 Hz as the env does,
and reports:
- achieved loop rate and tick period p50/p99/max (wall clock, measured in the loop process);
- missed cycles per minute: robot cycles lost between two readOnce calls (libfranka's
  duration > 1 ms) and wall periods over 1.5 ms;
- the loop's own work per tick (readOnce returned -> writeOnce returned): what a real FR3,
  which sends state every 1 ms on its own, leaves to us; and its parts (model calls, the law)
  timed on one live state without the network;
- the simulator's real-time factor (robot clock / wall clock): franky-sim is Python + MuJoCo
  + pinocchio and sets the pace of every tick here, so the loop rate is bounded by it;
- command-to-loop latency (set_target -> the loop's target in force) and command-to-motion
  latency (set_target of a 2 cm step -> the TCP moved 1 mm towards it).
--load runs a torch training-like loop in another process meanwhile (the condition that
dropped an rclpy 1 kHz timer to 600-870 Hz). Prints the machine, then one JSON line.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import time

import numpy as np

from robot_rl.drivers.franka import FrankaArm, LoopSettings
from robot_rl.drivers.franka_sim import FrankySim


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    rt = os.path.exists("/sys/kernel/realtime")
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()} (RT kernel: {rt}), " \
           f"Python {platform.python_version()}"


def torch_load(stop) -> None:
    import torch

    torch.set_num_threads(1)
    net = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256))
    opt = torch.optim.Adam(net.parameters())
    x = torch.randn(256, 256)
    while not stop.is_set():
        loss = net(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def pct(a: np.ndarray) -> dict:
    return {"p50_ms": float(np.percentile(a, 50) * 1e3), "p99_ms": float(np.percentile(a, 99) * 1e3),
            "max_ms": float(np.max(a) * 1e3)}


def measure_latency(arm: FrankaArm, trials: int = 5) -> tuple[list[float], list[float]]:
    to_loop, to_motion = [], []
    for k in range(trials):
        s0 = arm.state()
        step = np.array([0.02 if k % 2 == 0 else -0.02, 0.0, 0.0])
        target = s0.pos + step
        t0 = time.monotonic()
        arm.set_target(target, s0.quat, stamp=t0)
        got_loop = None
        while time.monotonic() - t0 < 3.0:
            s = arm.state()
            if got_loop is None and s.target_stamp == t0:
                got_loop = s.t - t0
            if float(np.dot(s.pos - s0.pos, step / np.linalg.norm(step))) > 0.001:
                to_motion.append(s.t - t0)
                break
            if time.monotonic() - t0 > 0.4:  # keep the watchdog fed, as the env would
                arm.set_target(target, s0.quat, stamp=time.monotonic())
            time.sleep(0.0002)
        if got_loop is not None:
            to_loop.append(got_loop)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:  # settle before the next trial
            arm.set_target(target, s0.quat)
            time.sleep(0.05)
    return to_loop, to_motion


def tick_breakdown(hostname: str, n: int = 5000) -> dict:
    """Median microseconds of each part of the tick, on one live robot state (no network)."""
    import gc

    import pylibfranka as pf

    from robot_rl.controllers.impedance import CartesianImpedanceController, ImpedanceConfig
    from robot_rl.drivers.franka_loop import FRANKA_HOME_Q, pose_from_o_t_ee

    robot = pf.Robot(hostname, pf.RealtimeConfig.kIgnore)
    model = robot.load_model()
    st = robot.read_once()
    law = CartesianImpedanceController(ImpedanceConfig(), np.array(FRANKA_HOME_Q))
    jcm, torques = np.zeros((7, 6)), pf.Torques([0.0] * 7)
    parts = {k: np.empty(n) for k in ("state_fields", "pose", "zero_jacobian", "coriolis", "law", "torques")}
    c = time.perf_counter
    for i in range(n):
        t0 = c()
        q, dq, o_t_ee = st.q, st.dq, st.O_T_EE
        t1 = c()
        pos, quat = pose_from_o_t_ee(o_t_ee)
        t2 = c()
        jcm.ravel()[:] = model.zero_jacobian(st)
        t3 = c()
        cor = model.coriolis(st)
        t4 = c()
        tau = law.compute(q, dq, pos, quat, jcm.T, cor)
        t5 = c()
        torques.tau_J = tau.tolist()
        t6 = c()
        for (k, a), b in zip(zip(parts, (t0, t1, t2, t3, t4, t5)), (t1, t2, t3, t4, t5, t6)):
            a_arr = parts[k]
            a_arr[i] = b - a
    del robot, model, st
    gc.collect()  # close the connection: the loop process connects next
    return {k: float(np.median(v) * 1e6) for k, v in parts.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--load", action="store_true", help="a torch training loop in another process meanwhile")
    ap.add_argument("--hostname", default=None)
    args = ap.parse_args()

    print(f"machine: {machine()}")
    stop = mp.get_context("spawn").Event()
    load = None
    if args.load:
        load = mp.get_context("spawn").Process(target=torch_load, args=(stop,), daemon=True)
        load.start()
    sim = FrankySim(hostname=args.hostname)
    arm = None
    try:
        breakdown = tick_breakdown(sim.hostname)
        arm = FrankaArm(LoopSettings(robot_ip=sim.hostname, realtime=False))
        s0 = arm.wait_ready(timeout=30.0)
        stats0 = arm.stats()
        w0, r0 = time.monotonic(), arm.state()
        t_end = w0 + args.seconds
        k = 0
        while time.monotonic() < t_end:  # an RL-like stream: a small new target every 100 ms
            offset = 0.02 * np.array([np.sin(0.5 * k * 0.1), np.cos(0.5 * k * 0.1) - 1.0, 0.0])
            arm.set_target(s0.pos + offset, s0.quat)
            k += 1
            time.sleep(0.1)
        w1, r1 = time.monotonic(), arm.state()
        stats = arm.stats()
        n0 = len(stats0["periods"])
        periods = stats["periods"][max(n0, 2):]
        computes = stats["computes"][max(n0, 2):]
        wall = w1 - w0
        ticks = r1.ticks - r0.ticks
        to_loop, to_motion = measure_latency(arm)
        minutes = wall / 60.0
        result = {
            "bench": "franka_loop", "machine": machine(), "load": bool(args.load), "seconds": wall,
            "loop_hz": ticks / wall,
            "period": pct(periods),
            "compute": pct(computes),
            "missed_robot_cycles_per_min": (r1.missed - r0.missed) / minutes,
            "periods_over_1p5ms_per_min": float(np.sum(periods > 0.0015)) / minutes,
            "command_to_loop_ms": pct(np.array(to_loop)) if to_loop else None,
            "command_to_motion_ms": pct(np.array(to_motion)) if to_motion else None,
            "tick_breakdown_us_p50": breakdown,
        }
        # The robot clock advances 1 ms per simulator step: its rate over wall time is the
        # simulator's real-time factor.
        result["sim_realtime_factor"] = (ticks + (r1.missed - r0.missed)) / 1000.0 / wall
        print(f"loop rate        {result['loop_hz']:.0f} Hz over {wall:.0f} s (load: {args.load})")
        print("tick period      p50 {p50_ms:.3f}  p99 {p99_ms:.3f}  max {max_ms:.2f} ms".format(**result["period"]))
        print("loop work/tick   p50 {p50_ms:.3f}  p99 {p99_ms:.3f}  max {max_ms:.2f} ms".format(**result["compute"]))
        print(f"missed cycles    {result['missed_robot_cycles_per_min']:.0f}/min (robot clock), "
              f"{result['periods_over_1p5ms_per_min']:.0f}/min periods > 1.5 ms")
        print(f"sim real-time    {result['sim_realtime_factor']:.2f}x")
        print("tick parts (us)  " + "  ".join(f"{k} {v:.1f}" for k, v in breakdown.items()))
        if to_loop:
            print("command->loop    p50 {p50_ms:.2f}  max {max_ms:.2f} ms".format(**result["command_to_loop_ms"]))
        if to_motion:
            print("command->motion  p50 {p50_ms:.1f}  max {max_ms:.1f} ms (TCP moved 1 mm)".format(
                **result["command_to_motion_ms"]))
        print(json.dumps(result))
    finally:
        if arm is not None:
            arm.close()
        sim.stop()
        stop.set()
        if load is not None:
            load.join(3.0)
            if load.is_alive():
                load.terminate()


if __name__ == "__main__":
    main()
