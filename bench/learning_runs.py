"""What the learning benchmarks share: their flags (seeds, base config, output folder,
overrides) and one seeded training run with its record, so sample_efficiency, widowx_pick and
distributed_parity do these one way."""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any


def learning_bench_parser(prog: str, out: str, final_eval_episodes: int,
                          eval_every: int | None = None, eval_episodes: int | None = None) -> argparse.ArgumentParser:
    """A parser with --seeds, --final-eval-episodes, --config, --out and --set; --eval-every and
    --eval-episodes too when their defaults are given. The benchmark adds its own flags."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    if eval_every is not None:
        parser.add_argument("--eval-every", type=int, default=eval_every)
    if eval_episodes is not None:
        parser.add_argument("--eval-episodes", type=int, default=eval_episodes)
    parser.add_argument("--final-eval-episodes", type=int, default=final_eval_episodes)
    parser.add_argument("--config", default="configs/train_default.yaml",
                        help="base TrainConfig YAML ('' for the dataclass defaults)")
    parser.add_argument("--out", default=out)
    parser.add_argument("--set", action="append", default=[], help="extra TrainConfig overrides")
    return parser


def train_seed(args: argparse.Namespace, run_dir: Path, seed: int,
               overrides: list[str]) -> tuple[list[tuple[int, float]], dict[str, Any]]:
    """`robot-rl train` for one seed into run_dir, with the benchmark's overrides, evaluation
    flags and --set; returns its evaluations (env step, success; the last is the final one) and
    its record: final success, wall time, throughput, the curve and the machine's load."""
    from robot_rl import config as config_lib
    from robot_rl.train import TrainConfig, train

    overrides = overrides + [
        f"seed={seed}", f"run_dir={run_dir}", f"eval_every={args.eval_every}",
        f"eval_episodes={args.eval_episodes}", f"final_eval_episodes={args.final_eval_episodes}",
        "progress=false"] + args.set
    cfg = config_lib.load(TrainConfig, args.config or None, overrides)
    started = time.perf_counter()
    final = train(cfg)
    curve = json.loads((run_dir / "progress.json").read_text())
    evals = list(zip(curve["eval_step"], curve["eval_success"]))
    return evals, {"final_success": final["success_rate"],
                   "wall_s": round(time.perf_counter() - started, 1),
                   "env_steps_per_s": round(final["env_steps_per_s"], 1),
                   "updates_per_env_step": round(final["updates_per_env_step"], 2),
                   "eval_curve": evals, "load_average": round(os.getloadavg()[0], 1)}
