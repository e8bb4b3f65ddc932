"""The reward classifier in the twin: label, train, check against the ground truth, train RL on it.

    .venv/bin/python -m robot_rl.bench.reward_classifier [--positives 250] [--camera front] [--rl-steps 3000]
        [--rl-config configs/train_default.yaml] [--rl-demos 20] [--jobs 2]

1. labels: `record-labels --input expert` for pick_cube: scripted-expert episodes (motion
   noise 0.1) plus sabotaged near-misses (30%: it stops lifting short of the success height, or
   lets go), every frame labelled by the twin's ground truth (spec.success);
2. classifier: `train-classifier` on one camera, held-out episodes -> accuracy, precision, recall;
3. reward check: noisy-expert episodes in the classifier-rewarded env; per episode, does the
   classifier's success agree with the ground truth's (and how many steps apart)?
4. RL: pick_cube from state with the true reward and with the classifier as the ONLY reward
   (same seed, demos, steps; `make train`'s learner settings by default; the classifier also
   rewards the scripted demos), both scored against the ground truth.
Prints the machine and the figures, and one JSON line at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def machine() -> str:
    import torch
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {load:.1f}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads")


def record(out: Path, positives: int, camera: str, image_size: int, seed: int) -> dict:
    from robot_rl import tasks
    from robot_rl.reward.labels import LabelWriter
    from robot_rl.tasks.apps.record_labels import ExpertSource, record_labels

    env = tasks.make_env("pick_cube", obs="pixels", seed=seed, cameras=(camera,), image_size=image_size)
    try:
        source = ExpertSource(env, "pick_cube", noise=0.1, near_miss=0.3, hold_steps=10, seed=seed)
        writer = LabelWriter(out, [camera], image_size, task="pick_cube")
        return record_labels(env, source, writer, positives=positives, seed=seed * 100_000)
    finally:
        env.close()


def reward_agreement(clf_path: Path, episodes: int, seed: int) -> dict:
    """Noisy expert (with near-misses) in the classifier-rewarded env: episode-level agreement."""
    from robot_rl import tasks
    from robot_rl.tasks.classifier_reward import ClassifierReward
    from robot_rl.tasks.apps.record_labels import ExpertSource

    env = ClassifierReward(tasks.make_env("pick_cube", obs="state", seed=seed), clf_path)
    source = ExpertSource(env, "pick_cube", noise=0.1, near_miss=0.3, hold_steps=0, seed=seed + 1)
    both = clf_only = truth_only = neither = 0
    delays = []
    try:
        for ep in range(episodes):
            obs, info = env.reset(seed=50_000 + ep)
            source.start_episode(env, ep)
            first_truth = first_clf = None
            for t in range(env.unwrapped.task.max_steps):
                obs, r, term, trunc, info = env.step(source.step(env, obs).action)
                if info["ground_truth_success"] and first_truth is None:
                    first_truth = t
                if info["success"]:
                    first_clf = t
                    break
                if trunc or info.get("failure"):
                    break
            # the truth may come later than the classifier's stop: ask it after the episode too
            if first_clf is not None and first_truth is None:
                if env.unwrapped.task.success(env.unwrapped.last_state, env.unwrapped.robot.task_state()):
                    first_truth = first_clf
            both += first_clf is not None and first_truth is not None
            clf_only += first_clf is not None and first_truth is None
            truth_only += first_clf is None and first_truth is not None
            neither += first_clf is None and first_truth is None
            if first_clf is not None and first_truth is not None:
                delays.append(first_clf - first_truth)
    finally:
        env.close()
    return {"episodes": episodes, "both_success": both, "classifier_only": clf_only,
            "truth_only": truth_only, "neither": neither,
            "episode_agreement": (both + neither) / episodes,
            "mean_steps_classifier_after_truth": float(np.mean(delays)) if delays else None}


def ground_truth_eval(run_dir: Path, episodes: int, seed: int) -> dict:
    """The run's policy in the plain twin env: success is the ground truth's."""
    import torch

    from robot_rl import checkpoint as ckpt
    from robot_rl import config as config_lib
    from robot_rl.agents.sac import SACAgent
    from robot_rl.run_env import make_run_env
    from robot_rl.train import TrainConfig, evaluate

    cfg = config_lib.load(TrainConfig, run_dir / "config.yaml")
    handle = make_run_env(cfg)
    agent = SACAgent(cfg.agent, handle.env.observation_space, handle.env.action_space,
                     device=torch.device("cpu"), seed=cfg.seed)
    ckpt.load_agent(agent, run_dir / "checkpoint")
    try:
        return evaluate(handle, agent, episodes, seed=seed)
    finally:
        handle.close()


def train_rl(run_dir: Path, steps: int, seed: int, clf_path: Path | None, config: str,
             demos: int) -> dict:
    """One RL run from state with `config` (default: `make train`'s), with the true reward or
    with the classifier as the env's only reward."""
    from robot_rl import config as config_lib
    from robot_rl.train import TrainConfig, train

    overrides = ["task=pick_cube", "obs=state", f"steps={steps}", f"seed={seed}", f"run_dir={run_dir}",
                 f"demos={demos}", "eval_every=0", "final_eval_episodes=10", "progress=false",
                 "threads=1", f"checkpoint_every={steps}", "resume=false",
                 f"reward_classifier={clf_path or ''}"]
    cfg = config_lib.load(TrainConfig, config or None, overrides)
    started = time.perf_counter()
    final = train(cfg)
    final["wall_s"] = time.perf_counter() - started
    return final


def rl_comparison(args: argparse.Namespace, name: str, clf: Path | None) -> dict:
    """train_rl, then the ground-truth evaluation (a process of its own with --jobs 2)."""
    run_dir = Path(args.out) / f"rl_{name}"
    final = train_rl(run_dir, args.rl_steps, args.seed, clf, args.rl_config, args.rl_demos)
    truth = ground_truth_eval(run_dir, args.eval_episodes, seed=30_000_000 + args.seed)
    row = {"env_steps": final["env_steps"], "wall_s": final["wall_s"],
           "env_steps_per_s": final["env_steps_per_s"],
           "own_reward_success_rate": final["success_rate"],
           "ground_truth_success_rate": truth["success_rate"], "eval_episodes": truth["episodes"]}
    print(f"{name}:", json.dumps(row), flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/bench_reward_classifier")
    p.add_argument("--positives", type=int, default=250)
    p.add_argument("--camera", default="front")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--shift-variants", type=int, default=2)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--agreement-episodes", type=int, default=20)
    p.add_argument("--rl-steps", type=int, default=3000, help="0 skips the RL comparison")
    p.add_argument("--rl-config", default="configs/train_default.yaml",
                   help="TrainConfig YAML of both RL runs ('' for the dataclass defaults)")
    p.add_argument("--rl-demos", type=int, default=20)
    p.add_argument("--jobs", type=int, default=1, help="2: both RL runs at once, in processes")
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)

    import torch
    torch.set_num_threads(args.threads)
    from robot_rl.reward.train_classifier import TrainClassifierConfig, summary, train_classifier

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"machine": machine()}
    print("machine:", result["machine"], flush=True)

    labels_dir = out / "labels"
    t0 = time.perf_counter()
    if not (labels_dir / "index.json").exists():
        result["labels"] = record(labels_dir, args.positives, args.camera, args.image_size, args.seed)
        result["labels"]["wall_s"] = time.perf_counter() - t0
        print("labels:", json.dumps(result["labels"]), flush=True)

    clf_dir = out / "classifier"
    report = train_classifier(labels_dir, clf_dir, TrainClassifierConfig(
        cameras=(args.camera,), epochs=args.epochs, shift_variants=args.shift_variants, seed=args.seed))
    result["classifier"] = {k: report[k] for k in ("accuracy", "accuracy_at_0.5", "precision", "recall",
                                                   "threshold", "train", "test", "encode_s", "train_s")}
    print("classifier:", summary(report), flush=True)
    clf_path = clf_dir / "classifier.safetensors"

    if args.agreement_episodes:
        t0 = time.perf_counter()
        result["agreement"] = reward_agreement(clf_path, args.agreement_episodes, args.seed)
        result["agreement"]["wall_s"] = time.perf_counter() - t0
        print("reward agreement:", json.dumps(result["agreement"]), flush=True)

    if args.rl_steps:
        runs = (("true_reward", None), ("classifier_reward", clf_path))
        if args.jobs > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor
            with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = {name: pool.submit(rl_comparison, args, name, clf) for name, clf in runs}
                result.update({name: f.result() for name, f in futures.items()})
        else:
            result.update({name: rl_comparison(args, name, clf) for name, clf in runs})
    (out / "bench.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
