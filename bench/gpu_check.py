"""The GPU check: every figure that needs a GPU, in one run of <= 10 min, as one JSON line.

    bash bench/gpu_check.sh            # on a GPU machine (the device tool copies the tree)
    bash bench/gpu_check.sh --cpu      # the same steps, reduced, on this CPU: proves it runs

Steps, each in its own process with its own time limit, so one failure is reported and the
others still run:
1. `robot-rl bench learner` (state 2 and 10 critics, pixels frozen and trained backbone,
   actor latency), its JSON line taken whole;
2. a short pixel training run of pick_cube (two 128x128 cameras) on the GPU: wall time,
   env steps/s, updates, evaluation success (a smoke and speed check, not a learning claim);
3. the CUDA tests the CPU suite skips.
The last line printed is the summary, with the device's name.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script from the working tree the device tool copies (bench/gpu_check.sh), before any
# install: its children and the CUDA tests run from there, with the tree on PYTHONPATH.
ROOT = str(Path(__file__).resolve().parents[1])


def _run(cmd: list[str], timeout_s: float, env: dict[str, str]) -> dict:
    """Runs one step; returns rc, wall time, the last JSON line printed (if any) and the tail."""
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
        rc, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        rc = 124
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    result: dict = {"rc": rc, "wall_s": round(time.perf_counter() - started, 1)}
    for line in reversed(out.splitlines()):
        if line.startswith("{") and line.endswith("}"):
            try:
                result["json"] = json.loads(line)
                break
            except json.JSONDecodeError:
                pass
    if rc != 0:
        result["tail"] = out[-1500:]
    sys.stdout.write(out[-3000:] + "\n")
    sys.stdout.flush()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/gpu_check.py")
    parser.add_argument("--cpu", action="store_true", help="reduced run on the CPU (checks the script)")
    args = parser.parse_args(argv)

    import torch
    cuda = torch.cuda.is_available()
    if not cuda and not args.cpu:
        print(json.dumps({"error": "no CUDA device: run on a GPU machine, or with --cpu for a reduced check"}))
        return 2
    device = "cuda" if cuda and not args.cpu else "cpu"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
           "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p)}
    py = sys.executable
    summary: dict = {"device": device,
                     "device_name": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
                     "torch": torch.__version__, "cpu_check": args.cpu}

    learner_cmd = [py, "-m", "robot_rl.bench.learner", "--device", device]
    if args.cpu:
        learner_cmd.append("--quick")
    # Limits: <= 9 min in all on a GPU; the --cpu check only has to finish, so it gets room.
    summary["bench_learner"] = _run(learner_cmd, 900 if args.cpu else 210, env)

    with tempfile.TemporaryDirectory() as run_dir:
        steps, demos = (120, 1) if args.cpu else (3000, 10)
        train_cmd = [py, "-m", "robot_rl.cli", "train", "--task", "pick_cube", "--obs", "pixels",
                     "--steps", str(steps), "--run-dir", run_dir, "--set", f"device={device}",
                     "--set", f"demos={demos}", "--set", "eval_every=0", "--set", "final_eval_episodes=5",
                     "--set", "progress=false"]
        if args.cpu:
            train_cmd += ["--set", "batch_size=16", "--set", "learning_starts=60",
                          "--set", "final_eval_episodes=1"]
        step = _run(train_cmd, 900 if args.cpu else 270, env)
        eval_json = Path(run_dir) / "eval.json"
        if eval_json.exists():
            ev = json.loads(eval_json.read_text())
            step["eval"] = {k: ev.get(k) for k in ("success_rate", "env_steps", "updates",
                                                   "train_wall_s", "env_steps_per_s")}
        summary["pixel_train"] = step

    summary["cuda_tests"] = _run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                  "tests/robot_rl/test_buffer_rlpd.py", "-k", "cuda"], 60, env)
    summary["ok"] = all(summary[k]["rc"] in (0, 5 if args.cpu else 0)
                        for k in ("bench_learner", "pixel_train", "cuda_tests"))
    for k in ("bench_learner", "pixel_train", "cuda_tests"):
        summary[k].pop("tail", None) if summary[k]["rc"] == 0 else None
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
