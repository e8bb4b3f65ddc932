"""WidowX pick bench: `python -m bench.widowx_pick [--seeds 0 1 2] [--steps 20000]`.

pick_cube for the WidowX 250 6-DoF in its MuJoCo twin (task `widowx_pick_cube`: the env's
equilibrium pose -> the DLS IK -> the servo PIDs), learned from state with the same RLPD loop
and config as `make train` (robot_rl.train, configs/train_default.yaml), scripted demos from the
unchanged pick_cube expert. Goal: >= 80% success within 20k env steps.

Reports, per seed: the first evaluated env step with success >= 80% (None if never), the final
success rate, wall time, env steps/s, and the machine and its load; one JSON line at the end.
Figures go to docs/benchmarks.md ("WidowX pick").
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

GOAL_SUCCESS = 0.8
GOAL_STEPS = 20_000


def main(argv: list[str] | None = None) -> int:
    from bench.learner import machine
    from robot_rl import config as config_lib
    from robot_rl.train import TrainConfig, train

    parser = argparse.ArgumentParser(prog="bench.widowx_pick")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=GOAL_STEPS)
    parser.add_argument("--demos", type=int, default=20)
    parser.add_argument("--eval-every", type=int, default=2_500)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--final-eval-episodes", type=int, default=20)
    parser.add_argument("--config", default="configs/train_default.yaml",
                        help="base TrainConfig YAML ('' for the dataclass defaults)")
    parser.add_argument("--out", default="runs/bench_widowx_pick")
    parser.add_argument("--set", action="append", default=[], help="extra TrainConfig overrides")
    args = parser.parse_args(argv)

    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f}", flush=True)
    runs = []
    for seed in args.seeds:
        run_dir = Path(args.out) / f"seed{seed}"
        overrides = [
            "task=widowx_pick_cube", "obs=state", f"demos={args.demos}", f"steps={args.steps}",
            f"seed={seed}", f"run_dir={run_dir}", f"eval_every={args.eval_every}",
            f"eval_episodes={args.eval_episodes}", f"final_eval_episodes={args.final_eval_episodes}",
            "progress=false"] + args.set
        cfg = config_lib.load(TrainConfig, args.config or None, overrides)
        started = time.perf_counter()
        final = train(cfg)
        curve = json.loads((run_dir / "progress.json").read_text())
        evals = list(zip(curve["eval_step"], curve["eval_success"]))
        reached = next((s for s, r in evals if r >= GOAL_SUCCESS), None)
        runs.append({"seed": seed, "steps": args.steps, "steps_to_goal": reached,
                     "final_success": final["success_rate"],
                     "wall_s": round(time.perf_counter() - started, 1),
                     "env_steps_per_s": round(final["env_steps_per_s"], 1),
                     "updates_per_env_step": round(final["updates_per_env_step"], 2),
                     "eval_curve": evals, "load_average": round(os.getloadavg()[0], 1)})
        print(f"widowx_pick seed {seed}: {runs[-1]}", flush=True)
    finals = [r["final_success"] for r in runs]
    met = all(r["steps_to_goal"] is not None and r["steps_to_goal"] <= GOAL_STEPS for r in runs)
    print(f"widowx_pick: final success {' '.join(f'{x:.2f}' for x in finals)} "
          f"(mean {statistics.fmean(finals):.2f}); steps to {GOAL_SUCCESS:.0%}: "
          f"{[r['steps_to_goal'] for r in runs]}; goal (>= {GOAL_SUCCESS:.0%} within {GOAL_STEPS} "
          f"steps, every seed) {'met' if met else 'NOT met'}", flush=True)
    print(json.dumps({"machine": machine(), "config": args.config or None, "runs": runs, "met": met}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
