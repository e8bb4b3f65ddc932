"""The synchronous RLPD training run: scripted demos, online SAC with a 50/50 batch, evaluation.

One `TrainConfig` describes one run. The run directory holds everything a person or a resume
needs:

    RUN_DIR/config.yaml          the full config, as run
    RUN_DIR/buffers/{online,demo} memory-mapped replay buffers (crash-safe)
    RUN_DIR/checkpoint.safetensors, checkpoint.json
                                 agent weights, optimisers, RNGs (safetensors) and counters (JSON)
    RUN_DIR/tb/                  TensorBoard logs
    RUN_DIR/progress.json        the learning curve, as numbers
    RUN_DIR/learning_curve.png   the learning curve, as a picture
    RUN_DIR/eval.json            the final evaluation

The distributed version (actor beside the robot, learner on a GPU box) runs the same agent and
buffers split over two processes; this loop is the single-process form used in the twin.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch

from robot_rl import config as config_lib
from robot_rl.agents.sac import SACAgent, SACConfig
from robot_rl.buffers import BufferConfig, ReplayBuffer
from robot_rl.buffers.rlpd import RLPDSampler, to_torch
from robot_rl import checkpoint as ckpt
from robot_rl.run_env import EnvHandle, make_env_and_expert

log = logging.getLogger("robot_rl.train")


@dataclass
class TrainConfig:
    task: str = "pick_cube"
    obs: Literal["state", "pixels"] = "state"
    steps: int = 10_000                 # online env steps
    seed: int = 0
    run_dir: str = "runs/default"
    demos: int = 20                     # successful scripted demos put in the demo buffer
    demo_noise: float = 0.1             # expert action noise, for demo diversity
    random_steps: int = 0               # uniform-random actions before the policy acts
    learning_starts: int = 256          # online transitions before the first update
    updates_per_step: float = 1.0       # learner updates (each a full UTD cycle) per env step
    batch_size: int = 256               # total; split between online and demo buffers
    eval_every: int = 2_000             # env steps between evaluations (0: only at the end)
    eval_episodes: int = 10             # episodes per periodic evaluation
    final_eval_episodes: int = 20
    checkpoint_every: int = 5_000       # env steps between checkpoints
    resume: bool = True                 # continue from RUN_DIR's checkpoint if there is one
    device: str = "auto"                # auto: cuda when available
    threads: int = 0                    # torch intra-op threads (0: torch's default)
    progress: bool = True
    agent: SACConfig = field(default_factory=SACConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def checkpoint_exists(path: Path) -> bool:
    return path.with_name(path.name + ".safetensors").exists()


def run_episode(env_handle: EnvHandle, policy: Callable[[dict], np.ndarray], seed: int,
                on_step: Callable[..., None] | None = None) -> dict[str, Any]:
    """Runs one episode; calls on_step(obs, action, reward, next_obs, terminated, truncated, info)."""
    env = env_handle.env
    obs, info = env.reset(seed=seed)
    ret, length, success, started = 0.0, 0, False, time.perf_counter()
    while True:
        action = policy(obs)
        next_obs, reward, terminated, truncated, info = env.step(action)
        if on_step is not None:
            on_step(obs, action, reward, next_obs, terminated, truncated, info)
        ret += float(reward)
        length += 1
        success = success or bool(info.get("success", False))
        obs = next_obs
        if terminated or truncated:
            break
    return {"return": ret, "length": length, "success": success,
            "cycle_time_s": length / env_handle.control_hz if success else None,
            "wall_s": time.perf_counter() - started}


def evaluate(env_handle: EnvHandle, agent: SACAgent, episodes: int, seed: int) -> dict[str, Any]:
    """Deterministic policy over `episodes` seeded episodes; seeds never overlap training's."""
    results = [run_episode(env_handle, lambda o: agent.act(o, deterministic=True), seed + i)
               for i in range(episodes)]
    successes = [r for r in results if r["success"]]
    return {
        "success_rate": float(np.mean([r["success"] for r in results])) if results else 0.0,
        "episodes": len(results),
        "mean_episode_length": float(np.mean([r["length"] for r in results])) if results else 0.0,
        "mean_return": float(np.mean([r["return"] for r in results])) if results else 0.0,
        "mean_cycle_time_s": float(np.mean([r["cycle_time_s"] for r in successes])) if successes else None,
    }


def collect_demos(env_handle: EnvHandle, buffer: ReplayBuffer, episodes: int, seed: int,
                  max_attempts_factor: int = 3) -> dict[str, Any]:
    """Fills `buffer` with `episodes` successful expert episodes; failed ones are thrown away."""
    kept, attempts = 0, 0
    while kept < episodes and attempts < max_attempts_factor * max(episodes, 1):
        staged: list[tuple] = []
        result = run_episode(env_handle, env_handle.expert.act, seed + attempts,
                             on_step=lambda *t: staged.append(t))
        attempts += 1
        if not result["success"]:
            continue
        for obs, action, reward, next_obs, terminated, truncated, info in staged:
            buffer.add(obs, action, reward, next_obs, terminated, truncated,
                       grasp_penalty=info.get("grasp_penalty", 0.0), intervention=True)
        buffer.commit()
        kept += 1
    if kept < episodes:
        raise RuntimeError(f"the scripted expert succeeded in only {kept} of {attempts} episodes; "
                           f"{episodes} demos were asked for")
    return {"demos": kept, "attempts": attempts, "expert_success_rate": kept / attempts}


class _Curve:
    """The learning curve, kept as numbers (progress.json) and drawn as a PNG."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "progress.json"
        self.data: dict[str, list] = {"eval_step": [], "eval_success": [],
                                      "episode_step": [], "episode_success": [], "episode_return": []}
        if self.path.exists():
            self.data.update(json.loads(self.path.read_text()))

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")  # atomic: a kill never leaves a half-written curve
        tmp.write_text(json.dumps(self.data))
        tmp.replace(self.path)

    def plot(self, png: Path, title: str) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        steps = np.asarray(self.data["episode_step"])
        succ = np.asarray(self.data["episode_success"], dtype=float)
        if len(steps):
            window = max(1, min(20, len(succ)))
            rolling = np.convolve(succ, np.ones(window) / window, mode="valid")
            ax.plot(steps[window - 1:], rolling, color="tab:blue", alpha=0.6,
                    label=f"training episodes (rolling {window})")
        if self.data["eval_step"]:
            ax.plot(self.data["eval_step"], self.data["eval_success"], "o-", color="tab:red",
                    label="evaluation (deterministic)")
        ax.set_xlabel("online env steps")
        ax.set_ylabel("success rate")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        ax.set_title(title)
        fig.tight_layout()
        fig.savefig(png, dpi=100)
        plt.close(fig)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Runs (or resumes) one training run and returns the final evaluation."""
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_lib.save(cfg, run_dir / "config.yaml")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = _device(cfg.device)

    handle = make_env_and_expert(cfg.task, cfg.obs, seed=cfg.seed, expert_noise=cfg.demo_noise)
    env = handle.env
    agent = SACAgent(cfg.agent, env.observation_space, env.action_space, device=device, seed=cfg.seed)
    if cfg.obs == "pixels" and device.type == "cpu":
        log.warning("pixel training on the CPU: a ResNet-10 encodes ~100 images/s here, so each "
                    "update of batch %d takes seconds to minutes; use a GPU (device=cuda) for "
                    "pixel runs", cfg.batch_size)
    action_dim = env.action_space.shape[0]

    from torch.utils.tensorboard import SummaryWriter
    writer = SummaryWriter(str(run_dir / "tb"))
    curve = _Curve(run_dir)

    # Resume: a checkpoint plus both buffers, reopened as they were at the last commit.
    ckpt_path = run_dir / "checkpoint"
    online_dir, demo_dir = run_dir / "buffers" / "online", run_dir / "buffers" / "demo"
    counters = {"env_steps": 0, "episodes": 0, "updates": 0}
    if cfg.resume and checkpoint_exists(ckpt_path) and online_dir.exists() and demo_dir.exists():
        counters.update(ckpt.load_agent(agent, ckpt_path)["counters"])
        online, demo = ReplayBuffer.open(online_dir), ReplayBuffer.open(demo_dir)
        log.info("resumed from %s at env step %d", ckpt_path, counters["env_steps"])
    else:
        for d in (online_dir, demo_dir):
            if d.exists():
                raise FileExistsError(f"{d} exists but there is no checkpoint to resume from; "
                                      f"use a fresh --run-dir")
        online = ReplayBuffer.create(online_dir, env.observation_space, action_dim,
                                     capacity=cfg.buffer.capacity, fsync=cfg.buffer.fsync)
        demo = ReplayBuffer.create(demo_dir, env.observation_space, action_dim,
                                   capacity=cfg.buffer.demo_capacity, fsync=cfg.buffer.fsync)
        started = time.perf_counter()
        demo_stats = collect_demos(handle, demo, cfg.demos, seed=10_000_000 + cfg.seed * 1000)
        demo_stats["wall_s"] = time.perf_counter() - started
        (run_dir / "demos.json").write_text(json.dumps(demo_stats, indent=2))
        log.info("demos: %s", demo_stats)

    sampler = RLPDSampler(online, demo, batch_size=cfg.batch_size, demo_ratio=cfg.buffer.demo_ratio,
                          pin_memory=cfg.buffer.pin_memory)
    rng = np.random.default_rng(cfg.seed + counters["env_steps"])

    from tqdm import tqdm
    bar = tqdm(total=cfg.steps, initial=counters["env_steps"], disable=not cfg.progress,
               desc=f"{cfg.task}/{cfg.obs}", unit="step", dynamic_ncols=True)
    last_eval = curve.data["eval_success"][-1] if curve.data["eval_success"] else None
    update_debt = 0.0
    train_started = time.perf_counter()
    steps_at_start = counters["env_steps"]

    def policy(obs):
        if counters["env_steps"] < cfg.random_steps:
            return env.action_space.sample()
        return agent.act(obs, deterministic=False)

    def on_step(obs, action, reward, next_obs, terminated, truncated, info):
        nonlocal update_debt
        online.add(obs, action, reward, next_obs, terminated, truncated,
                   grasp_penalty=info.get("grasp_penalty", 0.0), intervention=False)
        online.commit()
        counters["env_steps"] += 1
        bar.update(1)
        if len(online) >= cfg.learning_starts:
            update_debt += cfg.updates_per_step
            while update_debt >= 1.0:
                # One full RLPD batch per gradient step of the UTD cycle (critic steps, then joint).
                batches = [to_torch(sampler.sample(rng), device)
                           for _ in range(cfg.agent.critic_actor_ratio)]
                metrics = agent.update(batches)
                counters["updates"] += 1
                update_debt -= 1.0
                if counters["updates"] % 100 == 0:
                    for k, v in metrics.items():
                        writer.add_scalar(f"learner/{k}", v, counters["env_steps"])

    while counters["env_steps"] < cfg.steps:
        episode_seed = cfg.seed * 1_000_003 + counters["episodes"]
        result = run_episode(handle, policy, episode_seed, on_step=on_step)
        counters["episodes"] += 1
        step = counters["env_steps"]
        writer.add_scalar("episode/return", result["return"], step)
        writer.add_scalar("episode/success", float(result["success"]), step)
        writer.add_scalar("episode/length", result["length"], step)
        if result["cycle_time_s"] is not None:
            writer.add_scalar("episode/cycle_time_s", result["cycle_time_s"], step)
        writer.add_scalar("speed/env_steps_per_s",
                          (step - steps_at_start) / (time.perf_counter() - train_started), step)
        curve.data["episode_step"].append(step)
        curve.data["episode_success"].append(bool(result["success"]))
        curve.data["episode_return"].append(result["return"])

        recent = curve.data["episode_success"][-20:]
        postfix = {"train_success": f"{np.mean(recent):.2f}", "updates": counters["updates"]}
        if cfg.eval_every and (step // cfg.eval_every) > ((step - result["length"]) // cfg.eval_every):
            ev = evaluate(handle, agent, cfg.eval_episodes, seed=20_000_000 + step)
            last_eval = ev["success_rate"]
            writer.add_scalar("eval/success_rate", ev["success_rate"], step)
            writer.add_scalar("eval/mean_episode_length", ev["mean_episode_length"], step)
            curve.data["eval_step"].append(step)
            curve.data["eval_success"].append(ev["success_rate"])
        if last_eval is not None:
            postfix["eval_success"] = f"{last_eval:.2f}"
        bar.set_postfix(postfix)
        if cfg.checkpoint_every and (step // cfg.checkpoint_every) > ((step - result["length"]) // cfg.checkpoint_every):
            ckpt.save_agent(agent, ckpt_path, {"counters": counters})
            curve.save()
    bar.close()

    train_wall = time.perf_counter() - train_started
    ckpt.save_agent(agent, ckpt_path, {"counters": counters})
    final = evaluate(handle, agent, cfg.final_eval_episodes, seed=30_000_000 + cfg.seed)
    final.update({
        "task": cfg.task, "obs": cfg.obs, "seed": cfg.seed,
        "env_steps": counters["env_steps"], "updates": counters["updates"],
        "updates_per_env_step": counters["updates"] / max(counters["env_steps"], 1),
        "train_wall_s": train_wall,
        "env_steps_per_s": (counters["env_steps"] - steps_at_start) / max(train_wall, 1e-9),
    })
    writer.add_scalar("eval/final_success_rate", final["success_rate"], counters["env_steps"])
    curve.data["eval_step"].append(counters["env_steps"])
    curve.data["eval_success"].append(final["success_rate"])
    curve.save()
    curve.plot(run_dir / "learning_curve.png", f"{cfg.task} ({cfg.obs}), seed {cfg.seed}")
    (run_dir / "eval.json").write_text(json.dumps(final, indent=2))
    writer.close()
    online.close()
    demo.close()
    handle.close()
    return final
