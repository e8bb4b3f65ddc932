"""Do interventions cut the env steps to 90% success? `python -m robot_rl.bench.interventions [--seeds 0 1 2]`.

For each seed, two runs of the in-process RLPD loop that differ only in
`intervention.enabled`: the same task, the same scripted demos (collected with the same seed;
checked below), the same agent config and episode seeds. With interventions, the scripted
human (robot_rl.scripted_human) takes over when the policy stalls or moves away from the goal
(`--set intervention.trigger=action`: when its actions drift from the expert's), and its steps
go to the demo buffer too (HIL-SERL).

Stopping criterion: every `--eval-every` env steps the deterministic policy is evaluated
(`--eval-episodes` episodes, no human); a run stops at the first evaluation at or above
`--target` (that step is its "steps to target") or at `--steps` (not reached: reported as
None, i.e. more than --steps). Human steps count as env steps: they are robot time too.

Prints the machine, one line per run and one JSON line at the end; figures go to
docs/benchmarks.md. `--summarize --out DIR` reads the runs' progress.json instead (runs cut
short by a deadline included).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path


def _demo_fingerprint(run_dir: Path, n: int) -> str:
    """A hash of the first `n` demo-buffer transitions (the scripted demos, before any intervention)."""
    import numpy as np
    from robot_rl.buffers import ReplayBuffer
    with ReplayBuffer.open(run_dir / "buffers" / "demo") as demo:
        batch = demo.gather(demo.transition_indices()[:n])
    h = hashlib.sha256()
    for key in sorted(batch["obs"]):
        h.update(np.ascontiguousarray(batch["obs"][key]).tobytes())
    h.update(np.ascontiguousarray(batch["action"]).tobytes())
    return h.hexdigest()[:16]


def run_one(args: argparse.Namespace, seed: int, condition: str) -> dict:
    """One training run; returns its figures."""
    from robot_rl import config as config_lib
    from robot_rl.train import TrainConfig, train

    run_dir = Path(args.out) / f"seed{seed}" / condition
    overrides = [
        f"task={args.task}", "obs=state", f"steps={args.steps}", f"seed={seed}",
        f"run_dir={run_dir}", f"demos={args.demos}", f"eval_every={args.eval_every}",
        f"eval_episodes={args.eval_episodes}", f"final_eval_episodes={2 * args.eval_episodes}",
        f"stop_at_success={args.target}", "progress=false", "threads=1", "resume=false",
        f"intervention.enabled={condition == 'scripted_human'}"] + args.set
    cfg = config_lib.load(TrainConfig, None, overrides)
    started = time.perf_counter()
    final = train(cfg)
    curve = json.loads((run_dir / "progress.json").read_text())
    evals = list(zip(curve["eval_step"][:-1], curve["eval_success"][:-1]))  # periodic only
    reached = next((s for s, r in evals if r >= args.target), None)
    last20 = curve["episode_success"][-20:]
    run = {"seed": seed, "condition": condition, "steps_to_target": reached,
           "env_steps": final["env_steps"], "final_success": final["success_rate"],
           "final_eval_episodes": final["episodes"], "evals": [[s, r] for s, r in evals],
           "human_steps": final["intervention_steps"],
           "human_share": round(final["intervention_steps"] / max(final["env_steps"], 1), 3),
           "train_success_last20": round(sum(last20) / max(len(last20), 1), 2),
           "wall_s": round(time.perf_counter() - started, 1),
           "env_steps_per_s": round(final["env_steps_per_s"], 1)}
    print(f"seed {seed} {condition}: {json.dumps(run)}", flush=True)
    return run


def summarize(out: Path) -> dict:
    """Figures of runs under `out` from their progress.json, also of runs stopped before their end
    (a deadline): evaluation success vs env steps, human steps, training success."""
    runs = []
    for run_dir in sorted(out.glob("seed*/*")):
        curve = json.loads((run_dir / "progress.json").read_text())
        last20 = curve["episode_success"][-20:]
        rate20 = curve["episode_intervention_rate"][-20:]
        runs.append({"seed": int(run_dir.parent.name[4:]), "condition": run_dir.name,
                     "env_steps": curve["episode_step"][-1] if curve["episode_step"] else 0,
                     "evals": [[s, r] for s, r in zip(curve["eval_step"], curve["eval_success"])],
                     "best_eval": max(curve["eval_success"], default=None),
                     "human_steps": int(sum(curve["episode_interventions"])),
                     "train_success_last20": round(sum(last20) / max(len(last20), 1), 2),
                     "intervention_rate_last20": round(sum(rate20) / max(len(rate20), 1), 2)})
        print(json.dumps(runs[-1]), flush=True)
    return {"runs": runs}


def main(argv: list[str] | None = None) -> int:
    from robot_rl.bench.learner import machine

    parser = argparse.ArgumentParser(prog="robot_rl.bench.interventions")
    parser.add_argument("--task", default="peg_insert")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=20_000, help="env steps per run at most")
    parser.add_argument("--demos", type=int, default=10)
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--eval-every", type=int, default=1_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--conditions", nargs="+", default=["none", "scripted_human"],
                        choices=["none", "scripted_human"])
    parser.add_argument("--out", default="runs/bench_interventions")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (separate processes)")
    parser.add_argument("--set", action="append", default=[], help="extra TrainConfig overrides")
    parser.add_argument("--summarize", action="store_true",
                        help="only read the runs under --out (e.g. ones stopped at a deadline)")
    args = parser.parse_args(argv)

    print(f"machine: {machine()}", flush=True)
    if args.summarize:
        print(json.dumps({"machine": machine(), **summarize(Path(args.out))}))
        return 0
    report: dict = {"machine": machine(), "task": args.task, "target": args.target,
                    "max_steps": args.steps, "demos": args.demos, "eval_every": args.eval_every,
                    "eval_episodes": args.eval_episodes, "runs": []}
    jobs = [(seed, condition) for seed in args.seeds for condition in args.conditions]
    if args.jobs > 1:
        # Separate processes (one torch thread each): runs share nothing but the CPU.
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(run_one, args, seed, condition) for seed, condition in jobs]
            report["runs"] = [f.result() for f in futures]
    else:
        report["runs"] = [run_one(args, seed, condition) for seed, condition in jobs]

    for seed in args.seeds:
        if len(args.conditions) == 2:
            # Same demos: the first transitions of both demo buffers (the scripted demos) agree.
            dirs = [Path(args.out) / f"seed{seed}" / c for c in args.conditions]
            from robot_rl.buffers import ReplayBuffer
            with ReplayBuffer.open(dirs[0] / "buffers" / "demo") as demo:
                n = len(demo)          # "none": the demo buffer holds the scripted demos only
            same = len({_demo_fingerprint(d, n) for d in dirs}) == 1
            report.setdefault("same_demos", {})[seed] = same
            print(f"seed {seed}: same demos in both conditions: {same}", flush=True)

    summary = {}
    for condition in args.conditions:
        runs = [r for r in report["runs"] if r["condition"] == condition]
        summary[condition] = {"steps_to_target": [r["steps_to_target"] for r in runs],
                              "reached": sum(r["steps_to_target"] is not None for r in runs),
                              "of": len(runs),
                              "human_steps": [r["human_steps"] for r in runs]}
    report["summary"] = summary
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
