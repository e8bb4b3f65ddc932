"""The rehearsal: a whole HIL-SERL session over ROS, with the twin standing in for the robot.

    .venv/bin/python -m robot_rl.bench.rehearsal [--out runs/rehearsal] [--demos 20] [--positives 150]
        [--steps 4000] [--deploy-episodes 20] [--quick]

Every step is the command a lab runs, as a subprocess, with no shortcut (docs/real_session.md):

0. `robot-rl up twin` is the robot (its own ROS_DOMAIN_ID, so nothing else on the machine joins);
1. `robot-rl record-demos --ros`: the operator drives `--demos` demos over the teleop topics;
2. `robot-rl record-labels --ros --input ros` (the operator holds success while the cube is up,
   stops short in near-misses), then `robot-rl train-classifier`;
3. `robot-rl-learner` and `robot-rl-actor` with backend ros: the classifier is the only reward,
   the operator takes over when the policy stalls and resets the scene at the actor's prompt;
4. `robot-rl deploy --profile franka` (the hardware profile, against the twin's identical
   topics): success from the classifier; the operator resets the scene at its prompt.

The operator (bench/rehearsal_operator.py) is the person: its own process, the only one with
the bench that reads the twin's ground truth. On this CPU the policy learns from proprio only
(task_overrides cameras=[]) on a variant with the cube and the reset pose fixed, while the
classifier sees the front camera; with a GPU, `--pixels` runs the same session with the policy
on the cameras too.

Report (OUT/rehearsal.json and OUT/rehearsal.md): ground-truth success (from the operator's
eyes, read only by the bench), classifier-versus-truth agreement per episode, intervention rate
over time, env steps and wall time of each phase. Every process is stopped by its pid (SIGINT,
then SIGKILL), also when a phase fails; logs are in OUT/logs/.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl import checkout_root

ROOT = checkout_root()   # None for an installed copy: its children then run as this one does
BIN = Path(sys.executable).parent        # the venv's console scripts: robot-rl, robot-rl-actor, ...
# The learning variant: cube and reset pose fixed, so the proprio says where the cube is.
FIXED = {"object_xy_range": 0.0, "object_yaw_range": 0.0, "tcp_start_xy_range": 0.0}
GAINS_NODE = "/franka/twin"              # the twin's impedance parameters (the controller's on a Franka)
# The recorders' time limit: longer than the operator's attempt (it ends every recording itself,
# with success or failure, as a person does), whatever the RL episodes' length.
RECORD_MAX_STEPS = 400


class PhaseError(RuntimeError):
    """A phase's command failed (names it and its log)."""


class Session:
    """The processes of one rehearsal: started with logs under OUT/logs, stopped by pid."""

    def __init__(self, out: Path, domain: int):
        self.out, self.logs = out, out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
                    "PYTHONUNBUFFERED": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
                    "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p)}
        self.procs: dict[str, subprocess.Popen] = {}
        self.commands: list[str] = []

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "w")
        self.commands.append(" ".join(args))
        # SIGINT back to its default in the child: a bench started in the background (`&`) has it
        # ignored, which the child would inherit, and Ctrl-C (SIGINT) is how every tool stops cleanly.
        proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        log.close()
        self.procs[name] = proc
        return proc

    def log_text(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_line(self, name: str, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log_text(name):
            proc = self.procs[name]
            if proc.poll() is not None:
                raise PhaseError(f"{name} exited ({proc.returncode}) before saying {text!r}; see {self.logs / name}.log")
            if time.monotonic() > deadline:
                raise PhaseError(f"{name} did not say {text!r} within {timeout:.0f} s; see {self.logs / name}.log")
            time.sleep(0.2)

    def run(self, name: str, args: list[str], timeout: float) -> str:
        """Runs a command to its end; its output. PhaseError on a failure or a timeout."""
        proc = self.start(name, args)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(name)
            raise PhaseError(f"{name} ran past {timeout:.0f} s; see {self.logs / name}.log") from None
        if proc.returncode != 0:
            raise PhaseError(f"{name} failed ({proc.returncode}): {self.log_text(name)[-600:]}")
        return self.log_text(name)

    def stop(self, name: str, grace: float = 30.0) -> int | None:
        """SIGINT to the process we started, then SIGKILL after `grace` s; its exit status."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):     # tools first, the robot last
            self.stop(name, grace=15.0)


def operator_args(role: str, overrides: dict, out: Path, a: argparse.Namespace, console: str = "",
                  seed: int = 0) -> list[str]:
    args = [sys.executable, "-m", "robot_rl.bench.rehearsal_operator", "--role", role, "--overrides",
            json.dumps(overrides), "--report", str(out / f"operator_{role}.jsonl"), "--seed", str(seed),
            "--stall-steps", str(a.stall_steps), "--attempt-timeout", str(a.attempt_timeout),
            "--near-miss", str(a.near_miss)]
    return args + (["--console", console] if console else [])


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def agreement(said: list[Any], truth: list[dict]) -> dict[str, Any]:
    """Per episode, the tool's success (classifier) against the operator's ground truth."""
    n = min(len(said), len(truth))
    pairs = [(bool(said[i]), bool(truth[i]["truth_success"])) for i in range(n)]
    return {"episodes": n, "agree": sum(a == b for a, b in pairs),
            "both_success": sum(a and b for a, b in pairs), "classifier_only": sum(a and not b for a, b in pairs),
            "truth_only": sum(b and not a for a, b in pairs),
            "rate": (sum(a == b for a, b in pairs) / n) if n else None}


def over_time(values: list[float], windows: int) -> list[float]:
    chunks = [c for c in np.array_split(np.asarray(values, float), min(windows, len(values))) if len(c)]
    return [round(float(c.mean()), 3) for c in chunks]


def machine() -> str:
    load = os.getloadavg()[0]
    return f"{platform.machine()}, {os.cpu_count()} cores, load {load:.1f} at the start"


def rehearse(a: argparse.Namespace) -> dict[str, Any]:
    out = Path(a.out).resolve()
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"robot_rl.bench.rehearsal: {out} is not empty; a rehearsal starts from nothing (--out)")
    out.mkdir(parents=True, exist_ok=True)
    run_dir, demos_dir, labels_dir, clf_dir = out / "run", out / "demos", out / "labels", out / "clf"
    overrides = {**FIXED, "max_steps": a.max_steps, **({} if a.pixels else {"cameras": []})}
    def override_flags(skip: tuple[str, ...] = ()) -> list[str]:
        return [f for k, v in overrides.items() if k not in skip for f in ("--override", f"{k}={json.dumps(v)}")]
    report: dict[str, Any] = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                              "settings": vars(a), "task_overrides": overrides, "phases": {}}
    s = Session(out, a.domain)
    rl = str(BIN / "robot-rl")
    t_all = time.monotonic()
    try:
        # 0. The robot.
        s.start("twin", [rl, "up", "twin"])
        s.wait_line("twin", "up, composed", timeout=180.0)

        # 1. Demos over ROS, the operator driving.
        t0 = time.monotonic()
        s.start("operator_demos", operator_args("demos", overrides, out, a, seed=a.seed))
        s.wait_line("operator_demos", "ready", timeout=120.0)
        done = s.run("record_demos", [rl, "record-demos", "--ros", "--task", "pick_cube", "--obs", "pixels",
                                      "--episodes", str(a.demos), "--out", str(demos_dir), "--seed", "0",
                                      "--gains-node", GAINS_NODE, *override_flags(skip=("max_steps",)),
                                      "--max-steps", str(RECORD_MAX_STEPS)], timeout=a.phase_timeout)
        s.stop("operator_demos")
        summary = json.loads([line for line in done.splitlines() if line.startswith("{")][-1])
        from robot_rl.datasets import EpisodeDataset
        ds = EpisodeDataset.open(demos_dir)
        demo_steps = sum(int(m.get("length", 0)) for m in ds.episodes)
        ds.close()
        report["phases"]["demos"] = {"wall_s": round(time.monotonic() - t0, 1), "recorded": summary["recorded"],
                                     "attempts": summary["attempts"], "env_steps_saved": demo_steps}

        # 2. Labels over ROS, then the classifier.
        t0 = time.monotonic()
        s.start("operator_labels", operator_args("labels", overrides, out, a, seed=a.seed + 1))
        s.wait_line("operator_labels", "ready", timeout=120.0)
        done = s.run("record_labels", [rl, "record-labels", "--ros", "--input", "ros", "--task", "pick_cube",
                                       "--out", str(labels_dir), "--positives", str(a.positives),
                                       "--cameras", a.classifier_cameras, "--gains-node", GAINS_NODE,
                                       *override_flags(skip=("cameras", "max_steps")),
                                       "--override", f"max_steps={RECORD_MAX_STEPS}"],
                     timeout=a.phase_timeout)
        s.stop("operator_labels")
        labels = json.loads([line for line in done.splitlines() if line.startswith("{")][-1])
        t1 = time.monotonic()
        done = s.run("train_classifier", [rl, "train-classifier", "--labels", str(labels_dir), "--cameras",
                                          a.classifier_cameras, "--out", str(clf_dir), "--epochs", str(a.epochs),
                                          "--threads", "1", "--shift-variants", str(a.shift_variants),
                                          "--target-precision", str(a.target_precision)],
                     timeout=a.phase_timeout)
        clf = json.loads((clf_dir / "report.json").read_text())
        report["phases"]["labels"] = {"wall_s": round(t1 - t0, 1), "env_steps": labels["frames_this_session"],
                                      "episodes": labels["episodes"], "positives": labels["positives"],
                                      "negatives": labels["negatives"]}
        report["phases"]["classifier"] = {"wall_s": round(time.monotonic() - t1, 1),
                                          **{k: clf.get(k) for k in ("accuracy", "precision", "recall", "threshold")}}

        # 3. Learner + actor: the classifier is the only reward, the operator intervenes.
        import yaml
        run_dir.mkdir()
        config = {"task": "pick_cube", "obs": "pixels", "run_dir": str(run_dir), "seed": a.seed,
                  "steps": a.steps, "demos": 0, "demo_dataset": str(demos_dir),
                  "reward_classifier": str(clf_dir / "classifier.safetensors"), "task_overrides": overrides,
                  "progress": False, "threads": 1, "device": "cpu", "updates_per_step": a.utd,
                  "learning_starts": a.learning_starts}
        cfg_file = run_dir / "config.yaml"
        cfg_file.write_text(yaml.safe_dump(config, sort_keys=False))
        t0 = time.monotonic()
        s.start("learner", [str(BIN / "robot-rl-learner"), "--ros-args", "-p", f"config_file:={cfg_file}",
                            "-p", "backend:=ros"])
        s.wait_line("learner", "learner session", timeout=180.0)
        actor_log = str(s.logs / "actor.log")
        s.start("operator_train", operator_args("train", overrides, out, a, console=actor_log, seed=a.seed + 2))
        s.wait_line("operator_train", "ready", timeout=120.0)
        s.run("actor", [str(BIN / "robot-rl-actor"), "--ros-args", "-p", f"config_file:={cfg_file}",
                        "-p", "backend:=ros", "-p", f"steps:={a.steps}", "-p", f"gains_node:={GAINS_NODE}",
                        "-p", "scene_reset_timeout_s:=30.0", "-p", f"sync_updates_per_step:={a.sync}"],
              timeout=a.phase_timeout * 4)
        s.stop("operator_train")
        learner_rc = s.stop("learner", grace=120.0)
        episodes = read_jsonl(run_dir / "actor_actor0_episodes.jsonl")
        truth = read_jsonl(out / "operator_train.jsonl")
        stats = json.loads((run_dir / "learner_stats.json").read_text())
        rates = [e["intervention_rate"] for e in episodes]
        report["phases"]["train"] = {
            "wall_s": round(time.monotonic() - t0, 1), "env_steps": sum(e["length"] for e in episodes),
            "episodes": len(episodes), "learner_exit": learner_rc,
            "classifier_success_rate": float(np.mean([e["success"] for e in episodes])) if episodes else None,
            "truth_success_rate": float(np.mean([t["truth_success"] for t in truth[:len(episodes)]])) if truth else None,
            "truth_success_last_10": (float(np.mean([t["truth_success"] for t in truth[:len(episodes)][-10:]]))
                                      if truth else None),
            "intervention_rate_over_time": over_time(rates, 5) if rates else [],
            "intervention_rate": float(np.mean(rates)) if rates else None,
            "classifier_vs_truth": agreement([e["success"] for e in episodes], truth),
            "learner": {"online": stats["online"], "demo": stats["demo"], "updates": stats["counters"]["updates"],
                        "interventions": stats["counters"]["interventions"]}}

        # 4. Deploy on the hardware profile: success from the classifier.
        t0 = time.monotonic()
        deploy_log = str(s.logs / "deploy.log")
        s.start("operator_deploy", operator_args("deploy", overrides, out, a, console=deploy_log, seed=a.seed + 3))
        s.wait_line("operator_deploy", "ready", timeout=120.0)
        s.run("deploy", [rl, "deploy", str(run_dir), "--profile", "franka", "--episodes", str(a.deploy_episodes),
                         "--scene-reset-timeout", "30", "--gains-node", GAINS_NODE, "--out", str(out / "deploy"),
                         "--connect-timeout", "30"], timeout=a.phase_timeout)
        s.stop("operator_deploy")
        result = json.loads((out / "deploy" / "deploy.json").read_text())
        truth = read_jsonl(out / "operator_deploy.jsonl")[:result["episodes"]]
        report["phases"]["deploy"] = {
            "wall_s": round(time.monotonic() - t0, 1), "env_steps": sum(r["length"] for r in result["per_episode"]),
            "episodes": result["episodes"], "success_source": result["success_source"],
            "classifier_success_rate": result["success_rate"],
            "truth_success_rate": float(np.mean([t["truth_success"] for t in truth])) if truth else None,
            "classifier_vs_truth": agreement([r["success"] for r in result["per_episode"]], truth)}
        report["ground_truth_success"] = report["phases"]["deploy"]["truth_success_rate"]
    except PhaseError as e:
        report["error"] = str(e)
    finally:
        s.stop_all()
        report["wall_s"] = round(time.monotonic() - t_all, 1)
        report["commands"] = s.commands
        (out / "rehearsal.json").write_text(json.dumps(report, indent=2))
        (out / "rehearsal.md").write_text(markdown(report))
    return report


def markdown(r: dict[str, Any]) -> str:
    p = r["phases"]
    rows = [("phase", "wall (s)", "env steps", "what came out")]
    if "demos" in p:
        d = p["demos"]
        rows.append(("1 record-demos --ros", d["wall_s"], d["env_steps_saved"],
                     f"{d['recorded']} demos saved of {d['attempts']} attempts"))
    if "labels" in p:
        d, c = p["labels"], p.get("classifier", {})
        rows.append(("2 record-labels --ros", d["wall_s"], d["env_steps"],
                     f"{d['positives']} positive / {d['negatives']} negative frames, {d['episodes']} episodes"))
        if c:
            rows.append(("2 train-classifier", c["wall_s"], "-", f"held-out accuracy {c['accuracy']:.3f}, "
                         f"precision {c['precision']:.3f}, recall {c['recall']:.3f} at {c['threshold']:.2f}"))
    for key, name in (("train", "3 learner + actor"), ("deploy", "4 deploy --profile franka")):
        if key in p:   # episodes judged by the classifier, against the twin's ground truth
            d, ag = p[key], p[key]["classifier_vs_truth"]
            truth = f"truth success {d['truth_success_rate']}"
            text = (f"{d['episodes']} episodes; {truth}, last 10 {d['truth_success_last_10']}; classifier "
                    f"{d['classifier_success_rate']}; agreement {ag['agree']}/{ag['episodes']}; intervention "
                    f"rate over time {d['intervention_rate_over_time']}" if key == "train" else
                    f"{d['episodes']} episodes; **{truth}**, classifier {d['classifier_success_rate']}; "
                    f"agreement {ag['agree']}/{ag['episodes']} ({ag['classifier_only']} classifier-only, "
                    f"{ag['truth_only']} truth-only)")
            rows.append((name, d["wall_s"], d["env_steps"], text))
    lines = ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    lines.insert(1, "|" + "---|" * len(rows[0]))
    head = [f"Rehearsal {r['started']}, {r['machine']}; total {r['wall_s']} s"]
    if r.get("error"):
        head.append(f"**stopped: {r['error']}**")
    return "\n".join(head + [""] + lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/rehearsal")
    p.add_argument("--demos", type=int, default=20)
    p.add_argument("--positives", type=int, default=150)
    p.add_argument("--classifier-cameras", default="front")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--steps", type=int, default=4000, help="actor env steps")
    p.add_argument("--max-steps", type=int, default=80, help="episode length")
    p.add_argument("--utd", type=float, default=1.0, help="learner updates per env step")
    p.add_argument("--learning-starts", type=int, default=256)
    p.add_argument("--sync", type=float, default=0.5, help="actor: wait for this many updates per step")
    p.add_argument("--deploy-episodes", type=int, default=20)
    p.add_argument("--pixels", action="store_true", help="the policy on the cameras too (a GPU)")
    p.add_argument("--phase-timeout", type=float, default=1800.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--domain", type=int, default=200 + os.getpid() % 30, help="ROS_DOMAIN_ID of the session")
    p.add_argument("--stall-steps", type=int, default=15, help="operator: takes over after this many steps "
                   "without progress")
    p.add_argument("--shift-variants", type=int, default=4, help="train-classifier: shifted copies per frame")
    p.add_argument("--attempt-timeout", type=float, default=20.0, help="operator: s before giving up a demo")
    p.add_argument("--near-miss", type=float, default=0.4, help="operator: fraction of labelling episodes "
                   "stopped short of the success height")
    p.add_argument("--target-precision", type=float, default=0.98, help="train-classifier: the threshold's "
                   "target precision (a false success ends an episode early)")
    return p.parse_args(argv)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    # SIGINT and SIGTERM stop the session: every process is stopped by pid, the report written.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    r = rehearse(parse_args(argv))
    print(markdown(r))
    print(json.dumps({k: r.get(k) for k in ("ground_truth_success", "wall_s", "error")}))
    return 1 if r.get("error") else 0


if __name__ == "__main__":
    sys.exit(main())
