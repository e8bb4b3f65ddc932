"""Pick_cube learned from pixels on a CPU: `python -m robot_rl.bench.pixel_learning [--rows pixels blind] [--seeds 0 1]`.

The goal (issue 20): pick_cube with NO object state (proprio + the wrist and front twin cameras),
20 scripted demos, the task's randomised cube pose (+-6 cm, +-45 deg yaw), >= 0.8 evaluation
success within 20k env steps, held (the evaluation after it is >= 0.8 too; bench.sample_efficiency's
criterion), on 2 seeds, each run within 2.5 h of one core.

| row    | what the learner sees                                              |
|--------|--------------------------------------------------------------------|
| pixels | proprio + 2 cameras, encoder `small_conv` (the CPU choice of `backbone: auto`) |
| blind  | the same learner with every image blanked (encoder.blank_images): the baseline  |

The CPU settings (PIXEL_SETTINGS): the twin renders 64x64, the small conv net averages that down
to 32x32 and is trained end to end by the critic loss and the BC loss on the demo rows
(agent.bc_trains_encoder: on the reduced task it made the difference between 0.25-0.5 and 1.0,
docs/benchmarks.md); batch 128, one update (one gradient step) per env step, one torch thread. Runs resume: start the same command again (same --out) after a stop.
Prints one line per run and one JSON line at the end; figures go to docs/benchmarks.md ("Pixels").
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

PIXEL_SETTINGS = [
    "task=pick_cube", "obs=pixels", "demos=20", "steps=20000", "threads=1", "batch_size=128",
    "updates_per_step=1", "agent.critic_actor_ratio=1", "task_overrides={image_size: 64}",
    "agent.encoder.backbone=small_conv", "agent.encoder.small_conv_resolution=32",
    "agent.bc_trains_encoder=true",
]
ROWS = {"pixels": [], "blind": ["agent.encoder.blank_images=true"]}
GOAL = 0.8


def main(argv: list[str] | None = None) -> int:
    from robot_rl.bench.learner import machine
    from robot_rl.bench.sample_efficiency import steps_to
    from robot_rl import config as config_lib
    from robot_rl.stop_signals import stop_on_signals
    from robot_rl.train import TrainConfig, train

    parser = argparse.ArgumentParser(prog="robot_rl.bench.pixel_learning")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--eval-every", type=int, default=2000)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--final-eval-episodes", type=int, default=50)
    parser.add_argument("--out", default="runs/bench_pixel_learning")
    parser.add_argument("--set", action="append", default=[], help="extra TrainConfig overrides")
    args = parser.parse_args(argv)

    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f}", flush=True)
    report: dict = {"machine": machine(), "settings": PIXEL_SETTINGS, "rows": {}}
    for row in args.rows:
        runs = []
        for seed in args.seeds:
            run_dir = Path(args.out) / row / f"seed{seed}"
            overrides = PIXEL_SETTINGS + ROWS[row] + [
                f"seed={seed}", f"run_dir={run_dir}", f"eval_every={args.eval_every}",
                f"eval_episodes={args.eval_episodes}", f"final_eval_episodes={args.final_eval_episodes}",
                "progress=false"] + args.set
            cfg = config_lib.load(TrainConfig, None, overrides)
            started, cpu_started = time.perf_counter(), time.process_time()
            with stop_on_signals() as stop:      # Ctrl-C / SIGTERM: checkpoint, then the same command resumes
                final = train(cfg, stop=stop)
            if final.get("stopped"):
                print(f"{row} seed {seed}: stopped at env step {final['env_steps']}; rerun the same "
                      "command to resume", flush=True)
                return 130
            curve = json.loads((run_dir / "progress.json").read_text())
            evals = list(zip(curve["eval_step"], curve["eval_success"]))  # the last is the final one
            runs.append({"seed": seed, f"steps_to_{GOAL}": steps_to(evals, GOAL),
                         f"steps_to_{GOAL}_held": steps_to(evals, GOAL, held=True),
                         "final_success": final["success_rate"],
                         "wall_s": round(time.perf_counter() - started, 1),
                         "cpu_s": round(time.process_time() - cpu_started, 1),
                         "train_wall_s": round(final["train_wall_s"], 1),
                         "env_steps": final["env_steps"], "eval_curve": evals,
                         "load_average": round(os.getloadavg()[0], 1)})
            print(f"{row} seed {seed}: {runs[-1]}", flush=True)
        met = all(r[f"steps_to_{GOAL}_held"] is not None for r in runs)
        report["rows"][row] = {"runs": runs, "met": met}
        print(f"{row}: final success {[r['final_success'] for r in runs]}; held >= {GOAL} at "
              f"{[r[f'steps_to_{GOAL}_held'] for r in runs]}; goal {'met' if met else 'NOT met'}", flush=True)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
