"""Time one call of the Cartesian impedance law (the 1 kHz control tick).

    python bench/impedance.py [--calls 20000] [--integral]

Prints microseconds per compute() call (p50, p90, p99, max) and the machine, then one
JSON line. The inputs are a 7-DoF state with a full-rank random Jacobian, varied every call
(the law's cost does not depend on the values), with a new target every 100 ticks and the
reference clip active, as during an RL episode. Budget: under 100 us per call.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from robot_rl.controllers.impedance import CartesianImpedanceController, ImpedanceConfig


def make_inputs(n_sets: int, rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    q_home = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])
    sets = []
    for _ in range(n_sets):
        quat = np.array([1.0, 0.0, 0.0, 0.0]) + rng.normal(scale=0.05, size=4)
        sets.append({
            "q": q_home + rng.normal(scale=0.1, size=7),
            "dq": rng.normal(scale=0.1, size=7),
            "ee_pos": np.array([0.5, 0.0, 0.3]) + rng.normal(scale=0.02, size=3),
            "ee_quat": quat / np.linalg.norm(quat),
            "jacobian": rng.normal(scale=0.3, size=(6, 7)),
            "coriolis": rng.normal(scale=0.1, size=7),
        })
    return sets


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--integral", action="store_true", help="turn the integral term on")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    inputs = make_inputs(256, rng)
    cfg = ImpedanceConfig(translational_ki=5.0, rotational_ki=0.5) if args.integral else ImpedanceConfig()
    ctrl = CartesianImpedanceController(cfg, inputs[0]["q"])
    ctrl.reset(inputs[0]["ee_pos"], inputs[0]["ee_quat"])
    targets = [(np.array([0.5, 0.0, 0.3]) + rng.normal(scale=0.03, size=3), inputs[i]["ee_quat"]) for i in range(16)]

    times_ns = np.empty(args.calls, dtype=np.int64)
    clock = time.perf_counter_ns
    warmup = 1000
    for i in range(-warmup, args.calls):
        if i % 100 == 0:
            ctrl.set_target(*targets[(i // 100) % len(targets)])
        x = inputs[i % len(inputs)]
        t0 = clock()
        ctrl.compute(x["q"], x["dq"], x["ee_pos"], x["ee_quat"], x["jacobian"], x["coriolis"])
        if i >= 0:
            times_ns[i] = clock() - t0

    us = times_ns / 1e3
    p50, p90, p99, worst = (float(np.percentile(us, p)) for p in (50, 90, 99, 100))
    machine = {
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "loadavg_1min": round(os.getloadavg()[0], 2),  # p99 on a shared box is the scheduler's
    }
    print(f"machine: {machine['processor']}, {machine['cpu_count']} cpus, "
          f"python {machine['python']}, numpy {machine['numpy']}, load {machine['loadavg_1min']}")
    print(f"CartesianImpedanceController.compute, {args.calls} calls"
          f"{' (integral on)' if args.integral else ''}:")
    print(f"  p50 {p50:.1f} us   p90 {p90:.1f} us   p99 {p99:.1f} us   max {worst:.1f} us"
          f"   (budget 100 us; 1 kHz tick = 1000 us)")
    print(json.dumps({
        "bench": "impedance_compute",
        "calls": args.calls,
        "integral": args.integral,
        "us_p50": round(p50, 2),
        "us_p90": round(p90, 2),
        "us_p99": round(p99, 2),
        "us_max": round(worst, 2),
        "under_budget_p99": p99 < 100.0,
        **machine,
    }))


if __name__ == "__main__":
    main()
