"""WidowX pick bench: `python -m robot_rl.bench.widowx_pick [--seeds 0 1 2] [--steps 20000]`.

pick_cube for the WidowX 250 6-DoF in its MuJoCo twin (task `widowx_pick_cube`: the env's
equilibrium pose -> the DLS IK -> the servo PIDs), learned from state with the same RLPD loop
and config as `make train` (robot_rl.train, configs/train_default.yaml), scripted demos from the
unchanged pick_cube expert. Goal: >= 80% success within 20k env steps.

Reports, per seed: the first evaluated env step with success >= 80% (None if never), the final
success rate, wall time, env steps/s, and the machine and its load; one JSON line at the end.
Figures go to docs/benchmarks.md ("WidowX pick").
"""
from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

GOAL_SUCCESS = 0.8
GOAL_STEPS = 20_000


def main(argv: list[str] | None = None) -> int:
    from robot_rl.bench.learner import machine
    from robot_rl.bench.learning_runs import learning_bench_parser, train_seed

    parser = learning_bench_parser("robot_rl.bench.widowx_pick", "runs/bench_widowx_pick",
                                   final_eval_episodes=20, eval_every=2_500, eval_episodes=10)
    parser.add_argument("--steps", type=int, default=GOAL_STEPS)
    parser.add_argument("--demos", type=int, default=20)
    args = parser.parse_args(argv)

    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f}", flush=True)
    runs = []
    for seed in args.seeds:
        run_dir = Path(args.out) / f"seed{seed}"
        evals, record = train_seed(args, run_dir, seed, ["task=widowx_pick_cube", "obs=state",
                                                        f"demos={args.demos}", f"steps={args.steps}"])
        reached = next((s for s, r in evals if r >= GOAL_SUCCESS), None)
        runs.append({"seed": seed, "steps": args.steps, "steps_to_goal": reached, **record})
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
