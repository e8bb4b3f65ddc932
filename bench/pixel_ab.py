"""The pixel learner's update, this tree against a git revision, in ONE process:
`python -m robot_rl.bench.pixel_ab --base REV [--threads 1 2] [--seconds 4] [--rounds 3] [--rows 300]`.

On a shared CPU two separate runs differ by more than most changes do, so this builds the
frozen-backbone pixel agent of `robot-rl bench learner` (2 cameras 128x128, cached features
(K=4, 512, 4, 4) float16, batch 256, 2 critics, UTD cycle of 2) from REV's robot_rl (extracted
with `git archive` and imported under another package name) and from this tree, and alternates
them round by round. A cycle is what the learner does, `updates.update_once`: sample its
batches (RLPD, 128 online + 128 demo) from two in-RAM replay buffers of `--rows` transitions
each, built by each package's own ReplayBuffer from the same data (pixels and features), and
run `agent.update` on them. REV samples with its own sampler, this tree with `make_sampler`
when REV's robot_rl has it (older revisions: their RLPDSampler). Prints a line per measurement and, last,
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

from robot_rl.bench.learner import CAMERAS, bench_spaces, machine
from robot_rl.bench.pixel_profile import filled_buffers

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


def learner_cycle(pkg: str, agent, rows: int):
    """A function running one `update_once` of `agent` as package `pkg`'s learner does, on its
    own buffers (the same data for every package: the same seed)."""
    buffers = importlib.import_module(f"{pkg}.buffers")
    updates = importlib.import_module(f"{pkg}.updates")
    online, demo = filled_buffers(bench_spaces(CAMERAS)[0], rows, np.random.default_rng(0), buffers.ReplayBuffer)
    if hasattr(updates, "make_sampler"):
        sampler = updates.make_sampler(online, demo, batch_size=256, demo_ratio=0.5, pin_memory=False)
    else:
        sampler = importlib.import_module(f"{pkg}.buffers.rlpd").RLPDSampler(online, demo, 256, pin_memory=False)
    rng, cpu = np.random.default_rng(1), torch.device("cpu")
    return lambda: updates.update_once(agent, sampler, rng, cpu)


def cycles_per_s(cycle, seconds: float) -> tuple[float, float]:
    """(cycles per wall second, cycles per CPU second of this process). With one thread the CPU
    figure is what the cycle costs when it has a core, whatever else the machine runs."""
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    while n < 2 or time.perf_counter() - start < seconds:
        cycle()
        n += 1
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robot_rl.bench.pixel_ab")
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=4.0, help="per variant per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=300, help="transitions per replay buffer")
    args = parser.parse_args(argv)

    from robot_rl.networks.resnet import ResNet10, save_backbone_weights

    tmp = tempfile.TemporaryDirectory()
    import_revision(args.base, Path(tmp.name))
    weights = Path(tmp.name) / "resnet10.safetensors"
    save_backbone_weights(ResNet10(), weights)
    agents = {"base": build("robot_rl_base", weights), "float32": build("robot_rl", weights, head_dtype="float32"),
              "bfloat16": build("robot_rl", weights, head_dtype="bfloat16")}
    packages = {"base": "robot_rl_base", "float32": "robot_rl", "bfloat16": "robot_rl"}
    cycles = {name: learner_cycle(packages[name], agent, args.rows) for name, agent in agents.items()}
    print(f"machine: {machine()}; torch {torch.__version__}; base {args.base}")
    result: dict = {"base": args.base, "machine": machine(), "torch": torch.__version__, "rows": args.rows}
    for threads in args.threads:
        torch.set_num_threads(threads)
        wall: dict[str, list[float]] = {k: [] for k in agents}
        cpu: dict[str, list[float]] = {k: [] for k in agents}
        for cycle in cycles.values():
            cycle()  # warm-up
        for r in range(args.rounds):
            for name, cycle in cycles.items():
                w, c = cycles_per_s(cycle, args.seconds)
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
