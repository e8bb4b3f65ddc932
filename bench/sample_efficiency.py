"""The sample-efficiency bar: `python -m robot_rl.bench.sample_efficiency [--rows pick_state ...] [--seeds 0 1 2]`.

| row         | task       | obs    | demos | goal                              |
|-------------|------------|--------|-------|-----------------------------------|
| pick_state  | pick_cube  | state  | 10    | >= 90% success within 15k steps   |
| pick_pixels | pick_cube  | pixels | 20    | >= 90% success within 30k steps   |
| peg_pixels  | peg_insert | pixels | 20    | >= 90% success within 30k steps   |

Each run starts from `--config` (default configs/train_default.yaml, i.e. what `make train` runs:
its UTD, agent settings and one torch thread), then the row's task/obs/demos/steps, then `--set`.
Each row trains `seeds` runs with evaluation every `--eval-every` env steps, and reports the
first env step at which the evaluation success reached 90% (None if never), the first at which
it reached 90% *and held it* (the evaluation after it, or the final one when training stopped
there, also >= 90%: one lucky 20-episode evaluation does not count), the final success rate,
wall time, env steps/s and learner updates per env step, with the machine and its load
(the wall time of a run depends on what else shares the CPU). The pixel rows are judged by env
steps, not wall time: run them on a GPU machine when one is available.
Seeds run one after another; to use more cores, start one process per seed (`--seeds 1`).
Prints one summary line per row and one JSON line at the end; figures go to docs/benchmarks.md.
"""
from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

ROWS = {
    "pick_state": dict(task="pick_cube", obs="state", demos=10, steps=15_000),
    "pick_pixels": dict(task="pick_cube", obs="pixels", demos=20, steps=30_000),
    "peg_pixels": dict(task="peg_insert", obs="pixels", demos=20, steps=30_000),
}


def steps_to(evals: list[tuple[int, float]], rate: float, held: bool = False) -> int | None:
    """The env step of the first evaluation at >= rate; with held, the first one whose next
    evaluation (periodic or final) is at >= rate too. evals: (env step, success) in order."""
    for i, (step, success) in enumerate(evals):
        if success >= rate and (not held or (i + 1 < len(evals) and evals[i + 1][1] >= rate)):
            return step
    return None


def main(argv: list[str] | None = None) -> int:
    from robot_rl.bench.learner import machine
    from robot_rl.bench.learning_runs import learning_bench_parser, train_seed

    parser = learning_bench_parser("robot_rl.bench.sample_efficiency", "runs/bench_sample_efficiency",
                                   final_eval_episodes=50, eval_every=2_500, eval_episodes=20)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    args = parser.parse_args(argv)

    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f}")
    report: dict = {"machine": machine(), "config": args.config or None, "rows": {}}
    for row in args.rows:
        spec = ROWS[row]
        runs = []
        for seed in args.seeds:
            run_dir = Path(args.out) / row / f"seed{seed}"
            evals, record = train_seed(args, run_dir, seed, [f"{k}={v}" for k, v in spec.items()])
            runs.append({"seed": seed, "steps_to_90": steps_to(evals, 0.9),
                         "steps_to_90_held": steps_to(evals, 0.9, held=True), **record})
            print(f"{row} seed {seed}: {runs[-1]}", flush=True)
        finals = [r["final_success"] for r in runs]
        met = all(r["steps_to_90_held"] is not None for r in runs)
        report["rows"][row] = {"goal_steps": spec["steps"], "runs": runs, "met": met,
                               "mean_final_success": round(statistics.fmean(finals), 3),
                               "min_final_success": min(finals)}
        print(f"{row}: final success {' '.join(f'{x:.2f}' for x in finals)} (mean "
              f"{statistics.fmean(finals):.2f}); steps to 90%: {[r['steps_to_90'] for r in runs]}, "
              f"held: {[r['steps_to_90_held'] for r in runs]}; bar (>= 90% held within "
              f"{spec['steps']} steps, every seed) {'met' if met else 'NOT met'}",
              flush=True)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
