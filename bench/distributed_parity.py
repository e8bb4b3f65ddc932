"""Distributed vs in-process training, same config and seeds:
`python -m robot_rl.bench.distributed_parity [--task pick_cube] [--steps 15000] [--seeds 0 1 2]`.

For each seed it runs `robot-rl train` (robot_rl.train.train, one process) and
`robot-rl train --distributed` (tasks.ros.distributed.run_distributed: actor and learner as two
processes over ROS 2) from the same TrainConfig, each in a fresh run dir under --out, and
prints the final evaluation success (the same seeded evaluation episodes for both), the
training episodes' success, env steps, updates and wall time, with the machine and its load.
Parity means the distributed success is within the seed-to-seed noise of the in-process one
(the distributed actor acts with weights up to `--max-policy-lag` steps old, so runs are not
step-for-step identical). Ends with one JSON line; figures go to docs/benchmarks.md.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from robot_rl.bench.learner import machine
    from robot_rl.bench.learning_runs import learning_bench_parser
    from robot_rl import config as config_lib
    from robot_rl.train import TrainConfig, train
    from robot_rl.tasks.ros.distributed import run_distributed

    parser = learning_bench_parser("robot_rl.bench.distributed_parity", "runs/bench_distributed_parity",
                                   final_eval_episodes=50)
    parser.add_argument("--task", default="pick_cube")
    parser.add_argument("--obs", default="state", choices=["state", "pixels"])
    parser.add_argument("--steps", type=int, default=15_000)
    parser.add_argument("--max-policy-lag", type=int, default=100)
    args = parser.parse_args(argv)
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f}", flush=True)
    report: dict = {"machine": machine(), "task": args.task, "obs": args.obs, "steps": args.steps,
                    "config": args.config or None, "overrides": args.set, "runs": []}
    for seed in args.seeds:
        for mode in ("in_process", "distributed"):
            run_dir = Path(args.out) / mode / f"seed{seed}"
            if run_dir.exists():
                shutil.rmtree(run_dir)          # fresh: an existing run dir would be resumed
            overrides = [f"task={args.task}", f"obs={args.obs}", f"steps={args.steps}", f"seed={seed}",
                         f"run_dir={run_dir}", "eval_every=0", "progress=false",
                         f"final_eval_episodes={args.final_eval_episodes}", *args.set]
            cfg = config_lib.load(TrainConfig, args.config or None, overrides)
            load0, started = os.getloadavg()[0], time.perf_counter()
            final = train(cfg) if mode == "in_process" else run_distributed(cfg, max_policy_lag=args.max_policy_lag)
            wall = time.perf_counter() - started
            progress = json.loads((run_dir / "progress.json").read_text())
            train_success = progress["episode_success"]
            row = {"seed": seed, "mode": mode, "success_rate": final["success_rate"],
                   "train_success_last_20": (sum(train_success[-20:]) / len(train_success[-20:])
                                             if train_success else None),
                   "env_steps": final["env_steps"], "updates": final["updates"], "wall_s": round(wall, 1),
                   "load_average": round((load0 + os.getloadavg()[0]) / 2, 1)}
            report["runs"].append(row)
            print(f"seed {seed} {mode:11s}: eval success {row['success_rate']:.2f}, training episodes "
                  f"(last 20) {row['train_success_last_20']}, {row['env_steps']} env steps, "
                  f"{row['updates']} updates, {row['wall_s']:.0f} s (load {row['load_average']})", flush=True)
    for mode in ("in_process", "distributed"):
        rates = [r["success_rate"] for r in report["runs"] if r["mode"] == mode]
        walls = [r["wall_s"] for r in report["runs"] if r["mode"] == mode]
        report[mode] = {"mean_success": statistics.fmean(rates),
                        "stdev_success": statistics.stdev(rates) if len(rates) > 1 else None,
                        "mean_wall_s": statistics.fmean(walls)}
        print(f"{mode:11s}: mean eval success {report[mode]['mean_success']:.2f} "
              f"(sd {report[mode]['stdev_success']}), mean wall {report[mode]['mean_wall_s']:.0f} s")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
