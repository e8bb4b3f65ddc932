"""The pixel learner's update, this tree against a git revision, in ONE process:
`python -m bench.pixel_ab --base REV [--threads 1 2] [--seconds 4] [--rounds 3]`.

On a shared CPU two separate runs differ by more than most changes do, so this builds the
frozen-backbone pixel agent of `robot-rl bench learner` (2 cameras 128x128, cached features
(K=4, 512, 4, 4) float16, batch 256, 2 critics, UTD cycle of 2) from REV's robot_rl (extracted
with `git archive` and imported under another package name) and from this tree, feeds both the
same batches, and alternates them round by round. Prints a line per measurement and, last,
one JSON line: the median cycles per wall second and per CPU second of each variant per thread
count, and the ratios to REV. At 1 thread the CPU-second figure is the cost of a cycle when it
has a core (the wall figure also counts the time the neighbours hold it); at 2 threads the CPU
figure also counts OpenMP's spinning, so only the wall figure means anything there.
Variants: "base" (REV), "float32" and "bfloat16" (this tree with that encoder.head_dtype).
"""
from __future__ import annotations

import argparse
import importlib
import io
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bench.learner import CAMERAS, random_batch, bench_spaces, machine

ROOT = Path(__file__).resolve().parents[1]


def import_revision(rev: str, into: Path, name: str = "robot_rl_base"):
    """REV's robot_rl package as the package `name` (its own imports rewritten)."""
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "robot_rl"], check=True,
                         capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(into, filter="data")
    (into / "robot_rl").rename(into / name)
    for path in (into / name).rglob("*.py"):
        text = path.read_text()
        path.write_text(text.replace("from robot_rl.", f"from {name}.").replace("import robot_rl.", f"import {name}.")
                        .replace("from robot_rl import", f"from {name} import"))
    sys.path.insert(0, str(into))
    return importlib.import_module(name)


def build(pkg: str, weights: Path, **encoder_kw):
    sac = importlib.import_module(f"{pkg}.agents.sac")
    enc = importlib.import_module(f"{pkg}.networks.encoder")
    cfg = replace(sac.SACConfig(), critic_ensemble_size=2, critic_subsample_size=None, bc_weight=0.0,
                  encoder=enc.EncoderConfig(pretrained_backbone=str(weights), freeze_backbone=True, **encoder_kw))
    return sac.SACAgent(cfg, *bench_spaces(CAMERAS), device="cpu", seed=0)


def cycles_per_s(agent, batches, seconds: float) -> tuple[float, float]:
    """(cycles per wall second, cycles per CPU second of this process). With one thread the CPU
    figure is what the cycle costs when it has a core, whatever else the machine runs."""
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    while n < 2 or time.perf_counter() - start < seconds:
        agent.update(batches)
        n += 1
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pixel_ab")
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=4.0, help="per variant per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    from robot_rl.networks.resnet import ResNet10, save_backbone_weights

    tmp = tempfile.TemporaryDirectory()
    import_revision(args.base, Path(tmp.name))
    weights = Path(tmp.name) / "resnet10.safetensors"
    save_backbone_weights(ResNet10(), weights)
    agents = {"base": build("robot_rl_base", weights), "float32": build("robot_rl", weights, head_dtype="float32"),
              "bfloat16": build("robot_rl", weights, head_dtype="bfloat16")}
    rng = np.random.default_rng(0)
    obs_space, _ = bench_spaces(CAMERAS)
    batches = [random_batch(obs_space, 256, "cpu", rng, {c: (4, 512, 4, 4) for c in CAMERAS}) for _ in range(2)]
    print(f"machine: {machine()}; torch {torch.__version__}; base {args.base}")
    result: dict = {"base": args.base, "machine": machine(), "torch": torch.__version__}
    for threads in args.threads:
        torch.set_num_threads(threads)
        wall: dict[str, list[float]] = {k: [] for k in agents}
        cpu: dict[str, list[float]] = {k: [] for k in agents}
        for agent in agents.values():
            agent.update(batches)  # warm-up
        for r in range(args.rounds):
            for name, agent in agents.items():
                w, c = cycles_per_s(agent, batches, args.seconds)
                wall[name].append(w)
                cpu[name].append(c)
                print(f"{threads} thread(s), round {r}: {name} {w:.2f} cycles/s wall, {c:.2f} per CPU-s",
                      flush=True)
        res: dict = {}
        for label, runs in (("wall", wall), ("cpu", cpu)):
            med = {k: round(statistics.median(v), 2) for k, v in runs.items()}
            res[label] = {**med, **{f"{k}_vs_base": round(med[k] / med["base"], 2) for k in ("float32", "bfloat16")}}
        result[f"threads_{threads}"] = res
    tmp.cleanup()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
