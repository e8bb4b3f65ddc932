"""The in-process training run: the same `Actor` and `Learner` as a distributed run, joined by
an in-memory link (robot_rl/local_link.py) instead of ROS topics.

One `TrainConfig` describes one run, in-process or distributed. The run directory holds
everything a person or a resume needs (robot_rl/run_files.py):

    RUN_DIR/config.yaml          the full config, as run
    RUN_DIR/buffers/{online,demo} memory-mapped replay buffers (crash-safe)
    RUN_DIR/checkpoint.safetensors, checkpoint.json
                                 agent weights, optimisers, RNGs (safetensors) and counters (JSON)
    RUN_DIR/tb/                  TensorBoard logs
    RUN_DIR/progress.json        the learning curve, as numbers
    RUN_DIR/learning_curve.png, episodes.png
                                 the learning curve and the training episodes, as pictures
    RUN_DIR/eval.json            the final evaluation
    RUN_DIR/videos/              every video_every-th training episode as GIFs (when set)

Everything a run does is implemented once and shared with the distributed run: the demos
(robot_rl/demos.py), the buffers, checkpoint and resume (run_files.py), intervention routing
(interventions.py, in the learner), the update budget and minibatching (updates.py), the
episodes (actor.py), evaluation (evaluation.py) and the curve (curve.py).
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from robot_rl import resume as resume_lib
from robot_rl.actor import Actor, ActorConfig
from robot_rl.agents.sac import SACConfig
from robot_rl.buffers import BufferConfig
from robot_rl.config_ranges import validate_train_config
from robot_rl.curve import LearningCurve
from robot_rl.demos import collect_demos  # noqa: F401  (robot_rl.train's public names)
from robot_rl.envs.gym_adapter import GymEnvConfig
from robot_rl.evaluation import evaluate, run_episode  # noqa: F401
from robot_rl.learner import Learner, LearnerConfig
from robot_rl.local_link import LocalLink
from robot_rl.run_env import make_run_env
from robot_rl.run_files import checkpoint_exists, device_for  # noqa: F401
from robot_rl.video import EpisodeVideo
from robot_rl.scripted_human import InterventionConfig, ScriptedHuman
from robot_rl.scripted_human import make_expert as make_human_expert

log = logging.getLogger("robot_rl.train")



@dataclass
class TrainConfig:
    task: str = "pick_cube"
    # A gymnasium env instead of a built-in task: "package.module:factory" or a registered id;
    # `gym` says how it maps onto the agent (robot_rl/envs/gym_adapter.py, docs/your_env.md).
    env: str = ""
    obs: Literal["state", "pixels"] = "state"
    # TaskSpec fields to change for this run, e.g. {max_steps: 50} or, for pick_cube with a
    # turning hand, {rpy_low: [-0.3, -0.3, -1.0], rpy_high: [0.3, 0.3, 1.0]}; every tool that
    # reopens the run (eval, deploy, export, the distributed actor) builds the same task.
    task_overrides: dict[str, Any] = field(default_factory=dict)
    steps: int = 10_000                 # online env steps
    seed: int = 0
    run_dir: str = "runs/default"
    demos: int = 20                     # successful scripted demos put in the demo buffer
    demo_dataset: str = ""              # an episode dataset dir: its successful episodes are the
                                        # demos (instead of scripted ones)
    reward_classifier: str = ""         # a trained reward classifier for the env (run_env)
    demo_noise: float = 0.1             # expert action noise, for demo diversity
    random_steps: int = 0               # uniform-random actions before the policy acts
    learning_starts: int = 256          # online transitions before the first update
    updates_per_step: float = 1.0       # learner updates (each a full UTD cycle) per env step
    batch_size: int = 256               # total; split between online and demo buffers
    eval_every: int = 2_000             # env steps between evaluations (0: only at the end)
    eval_episodes: int = 10             # episodes per periodic evaluation
    final_eval_episodes: int = 20
    stop_at_success: float = 0.0        # >0: end training at the first periodic evaluation that
                                        # reaches this success rate (benchmarks: steps to X%)
    checkpoint_every: int = 5_000       # env steps between checkpoints
    resume: bool = True                 # continue from RUN_DIR's checkpoint if there is one
    device: str = "auto"                # auto: cuda when available
    threads: int = 0                    # torch intra-op threads (0: torch's default)
    progress: bool = True
    video_every: int = 0                # every N-th training episode as GIFs of the cameras,
                                        # RUN_DIR/videos/ep*.gif (0: none); the actor node too
    agent: SACConfig = field(default_factory=SACConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    intervention: InterventionConfig = field(default_factory=InterventionConfig)  # scripted human (twin)
    gym: GymEnvConfig = field(default_factory=GymEnvConfig)    # only with `env`


def _crossed(step: int, length: int, every: int) -> bool:
    """Whether the episode that ended at `step` (after `length` steps) passed a multiple of `every`."""
    return bool(every) and step // every > (step - length) // every


def train(cfg: TrainConfig, stop: threading.Event | None = None) -> dict[str, Any]:
    """Runs (or resumes) one training run and returns the final evaluation.

    stop (robot_rl/stop_signals.py: Ctrl-C): once set, the run ends after the current env step
    with a checkpoint and returns {"stopped": True, ...} without the final evaluation; the
    unfinished episode is dropped (never committed), and the same command resumes the run."""
    validate_train_config(cfg)
    run_dir = Path(cfg.run_dir)
    # A resume that changes a fixed setting is refused before the env is built (read-only; the
    # learner plans it again and applies it).
    resume_lib.plan_resume(cfg, run_dir)
    torch.manual_seed(cfg.seed)
    handle = make_run_env(cfg, reward_classifier=cfg.reward_classifier)
    from torch.utils.tensorboard import SummaryWriter
    link = LocalLink()
    key = os.urandom(32)       # the link never leaves the process: a key for this run only
    try:
        # The learner checks a resume against config.yaml, opens (or creates) the buffers, the
        # demos and the checkpoint; it checkpoints when this loop says (every checkpoint_every steps).
        learner = Learner(cfg, LearnerConfig(checkpoint_every_s=float("inf")), link.publish_weights,
                          link.publish_ack, key=key, handle=handle, curve_file=None)
    except BaseException:
        handle.close()
        raise
    encoder = getattr(learner.agent, "encoder", None)
    if (cfg.obs == "pixels" and device_for(cfg.device).type == "cpu"
            and getattr(encoder, "backbone_name", "") == "resnet10" and not encoder.frozen):
        log.warning("pixel training on the CPU: a ResNet-10 encodes ~100 images/s here, so each "
                    "update of batch %d takes seconds to minutes; use a GPU (device=cuda) for "
                    "pixel runs", cfg.batch_size)
    writer = SummaryWriter(str(run_dir / "tb"))
    learner.writer = writer
    human = (ScriptedHuman(cfg.intervention, make_human_expert(cfg.task, handle.env, seed=cfg.seed), seed=cfg.seed)
             if cfg.intervention.enabled else None)
    video = EpisodeVideo(run_dir / "videos", cfg.video_every, handle.control_hz) if cfg.video_every else None
    actor = Actor(ActorConfig(random_steps=cfg.random_steps), handle, learner.agent, link.send,
                  seed=cfg.seed, key=key, assist=human, video=video)
    link.connect(actor, learner)
    if stop is not None:
        actor.stop_event = stop       # the actor checks it after every env step
    # A resume continues the episode seeds and the random_steps count where the buffers stand.
    actor.episodes_before, actor.steps_before = learner.counters["episodes"], learner.counters["env_steps"]
    curve = LearningCurve(run_dir)
    curve.trim(learner.counters["env_steps"])

    from tqdm import tqdm
    bar = tqdm(total=cfg.steps, initial=learner.counters["env_steps"], disable=not cfg.progress,
               desc=f"{cfg.task}/{cfg.obs}", unit="step", dynamic_ncols=True)
    started, steps_at_start = time.perf_counter(), learner.counters["env_steps"]
    reached_target = False
    while learner.counters["env_steps"] < cfg.steps and not reached_target:
        result = actor.run_episode(seed=cfg.seed * 1_000_003 + actor.episodes_before + actor.episode)
        if actor.stop_event.is_set():
            break                     # the unfinished episode is dropped: resumed runs start afresh
        step = learner.counters["env_steps"]
        bar.update(result.length)
        for name in ("interventions", "intervention_rate", "return", "length"):
            writer.add_scalar(f"episode/{name}", result[name], step)
        writer.add_scalar("episode/success", float(result.success), step)
        if result.cycle_time_s is not None:
            writer.add_scalar("episode/cycle_time_s", result.cycle_time_s, step)
        writer.add_scalar("speed/env_steps_per_s", (step - steps_at_start) / (time.perf_counter() - started), step)
        curve.add_episode(step, result)
        curve.save()                  # every episode: a killed run's curve ends where its buffer does

        if _crossed(step, result.length, cfg.eval_every):
            ev = evaluate(handle, learner.agent, cfg.eval_episodes, seed=20_000_000 + step)
            reached_target = 0 < cfg.stop_at_success <= ev["success_rate"]
            writer.add_scalar("eval/success_rate", ev["success_rate"], step)
            writer.add_scalar("eval/mean_episode_length", ev["mean_episode_length"], step)
            curve.add_eval(step, ev["success_rate"])
        postfix = {"train_success": f"{np.mean(curve.data['episode_success'][-20:]):.2f}",
                   "updates": learner.counters["updates"]}
        if human is not None:
            postfix["interventions"] = f"{np.mean(curve.data['episode_intervention_rate'][-20:]):.2f}"
        if curve.last_eval is not None:
            postfix["eval_success"] = f"{curve.last_eval:.2f}"
        bar.set_postfix(postfix)
        if _crossed(step, result.length, cfg.checkpoint_every):
            learner.checkpoint()
    bar.close()

    train_wall = time.perf_counter() - started
    learner.checkpoint(wait=True)
    counters = learner.counters
    if actor.stop_event.is_set():
        log.warning("stopped at env step %d (%d updates); checkpoint saved: the same command resumes",
                    counters["env_steps"], counters["updates"])
        final = {"stopped": True, "task": cfg.env or cfg.task, "seed": cfg.seed,
                 "env_steps": counters["env_steps"], "updates": counters["updates"], "train_wall_s": train_wall}
    else:
        final = evaluate(handle, learner.agent, cfg.final_eval_episodes, seed=30_000_000 + cfg.seed)
        final.update({
            "task": cfg.env or cfg.task, "obs": cfg.obs, "seed": cfg.seed,
            "env_steps": counters["env_steps"], "updates": counters["updates"],
            "updates_per_env_step": counters["updates"] / max(counters["env_steps"], 1),
            "train_wall_s": train_wall,
            "env_steps_per_s": (counters["env_steps"] - steps_at_start) / max(train_wall, 1e-9),
            "intervention_steps": int(sum(curve.data["episode_interventions"])),
            "demo_transitions": len(learner.demo),      # demos + intervention segments
        })
        writer.add_scalar("eval/final_success_rate", final["success_rate"], counters["env_steps"])
        curve.add_eval(counters["env_steps"], final["success_rate"])
        (run_dir / "eval.json").write_text(json.dumps(final, indent=2))
    curve.save()
    curve.draw(run_dir, f"{cfg.task} ({cfg.obs}), seed {cfg.seed}")
    writer.close()
    actor.close()
    learner.close()
    return final
