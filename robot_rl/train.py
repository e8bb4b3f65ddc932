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
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch

from robot_rl import resume as resume_lib
from robot_rl.agents.sac import SACAgent, SACConfig
from robot_rl.buffers import BufferConfig, ReplayBuffer
from robot_rl.buffers.rlpd import RLPDSampler, to_torch
from robot_rl import checkpoint as ckpt
from robot_rl.atomic_io import is_disk_full, write_json_atomic
from robot_rl.config_ranges import validate_train_config
from robot_rl.buffers.disk_full import WaitWhenDiskFull, wait_when_disk_full
from robot_rl.envs.gym_adapter import GymEnvConfig
from robot_rl.run_env import EnvHandle, make_run_env
from robot_rl.interventions import InterventionRouter
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
    agent: SACConfig = field(default_factory=SACConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    intervention: InterventionConfig = field(default_factory=InterventionConfig)  # scripted human (twin)
    gym: GymEnvConfig = field(default_factory=GymEnvConfig)    # only with `env`


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def checkpoint_exists(path: Path) -> bool:
    """A complete checkpoint (tensors and JSON) at `path` (without the suffix)."""
    return ckpt.exists(path)


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
    if episodes > 0 and env_handle.expert is None:
        raise ValueError(f"{episodes} scripted demos were asked for, but the task has no scripted "
                         "expert: record demos (demo_dataset=DIR) or set demos=0")
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
    return {"demos": kept, "attempts": attempts,
            "expert_success_rate": kept / attempts if attempts else None}


class _Curve:
    """The learning curve, kept as numbers (progress.json) and drawn as a PNG."""

    def __init__(self, run_dir: Path, name: str = "progress.json"):
        self.path = run_dir / name
        self.data: dict[str, list] = {"eval_step": [], "eval_success": [],
                                      "episode_step": [], "episode_success": [], "episode_return": [],
                                      # per episode too; cycle time is None for a failed episode
                                      "episode_length": [], "episode_interventions": [],
                                      "episode_intervention_rate": [], "episode_cycle_time_s": []}
        if self.path.exists():
            self.data.update(json.loads(self.path.read_text()))

    def save(self) -> None:
        """Atomic (a kill never leaves a half-written curve); a full disk keeps it in memory."""
        try:
            write_json_atomic(self.path, self.data, fsync=False)
        except OSError as e:
            if not is_disk_full(e):
                raise
            log.error("disk full: %s not updated (kept in memory, written at the next save): %s", self.path, e)

    def trim(self, env_steps: int) -> None:
        """Drops entries past `env_steps` (resume: the buffers are the truth for the step count)."""
        n_episodes = sum(1 for s in self.data["episode_step"] if s <= env_steps)
        n_evals = sum(1 for s in self.data["eval_step"] if s <= env_steps)
        for k, values in self.data.items():
            if isinstance(values, list):
                del values[n_episodes if k.startswith("episode_") else n_evals:]

    def add_episode(self, step: int, result: dict[str, Any]) -> None:
        for key, value in (("step", step), ("success", bool(result["success"])),
                           ("return", result["return"]), ("length", result["length"]),
                           ("interventions", result["interventions"]),
                           ("intervention_rate", result["intervention_rate"]),
                           ("cycle_time_s", result["cycle_time_s"])):
            self.data[f"episode_{key}"].append(value)

    def plot_episodes(self, png: Path, title: str) -> None:
        """Per-episode figures vs env steps: success (rolling), intervention rate, return, cycle time."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        d = self.data
        steps = np.asarray(d["episode_step"], dtype=float)

        def series(key: str) -> tuple[np.ndarray, np.ndarray]:
            # A run resumed from an older progress.json lacks the first episodes of newer keys.
            values = d[key][-len(steps):] if len(steps) else []
            xs = steps[len(steps) - len(values):]
            return xs, np.asarray([np.nan if v is None else v for v in values], dtype=float)

        fig, axes = plt.subplots(4, 1, figsize=(7, 9), sharex=True)
        xs, succ = series("episode_success")
        if len(xs):
            window = max(1, min(20, len(succ)))
            axes[0].plot(xs[window - 1:], np.convolve(succ, np.ones(window) / window, mode="valid"),
                         color="tab:blue")
            axes[0].set_ylabel(f"success\n(rolling {window})")
        axes[0].set_ylim(-0.05, 1.05)
        xs, rate = series("episode_intervention_rate")
        axes[1].plot(xs, rate, ".", color="tab:orange", alpha=0.5)
        axes[1].set_ylabel("intervention\nrate")
        axes[1].set_ylim(-0.05, 1.05)
        xs, ret = series("episode_return")
        axes[2].plot(xs, ret, ".", color="tab:green", alpha=0.5)
        axes[2].set_ylabel("return")
        xs, cycle = series("episode_cycle_time_s")
        axes[3].plot(xs, cycle, ".", color="tab:red", alpha=0.5)
        axes[3].set_ylabel("cycle time (s)\nsuccesses")
        axes[3].set_xlabel("online env steps")
        for ax in axes:
            ax.grid(alpha=0.3)
        axes[0].set_title(title)
        fig.tight_layout()
        fig.savefig(png, dpi=100)
        plt.close(fig)

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


def save_checkpoint(agent: SACAgent, path: Path, counters: dict[str, int], wait: bool) -> bool:
    """Saves the agent; a full disk keeps the previous checkpoint intact (checkpoint.save_state)
    and is logged, then either waited out (wait=True: the final one) or skipped until the next."""
    save = lambda: ckpt.save_agent(agent, path, {"counters": dict(counters)})  # noqa: E731
    if wait:
        wait_when_disk_full(save, f"saving the checkpoint {path}")
        return True
    try:
        save()
        return True
    except OSError as e:
        if not is_disk_full(e):
            raise
        log.error("disk full: checkpoint %s not saved (the previous one is intact): %s", path, e)
        return False


def open_run_buffers(cfg: TrainConfig, run_dir: Path, handle: EnvHandle, agent: SACAgent,
                     save_config: Callable[[], None] = lambda: None
                     ) -> tuple[ReplayBuffer, ReplayBuffer, dict[str, int]]:
    """The run's online and demo buffers and its counters, resumed or new.

    Nothing in run_dir changes until the resume has succeeded (buffers verified on open, the
    checkpoint loaded) or a new run starts; `save_config` is called at that point, so a resume
    that fails leaves config.yaml and everything else as it was.

    The buffers are the truth for how far the run got: every env step is committed to the
    online buffer as it happens, checkpoints are periodic. So after a kill at any moment,
    env_steps = transitions ever committed to the online buffer, episodes = episodes started
    there (evicted ones included), updates = the checkpoint's (the agent is the checkpoint's;
    0 and a fresh agent if the run was killed before its first one). demos.json, written
    after the demo buffer's last commit, marks the demos as complete; a run killed before
    that has acknowledged nothing online and starts over.
    """
    ckpt_path = run_dir / "checkpoint"
    online_dir, demo_dir = run_dir / "buffers" / "online", run_dir / "buffers" / "demo"
    demos_done = (run_dir / "demos.json").exists()
    counters = {"env_steps": 0, "episodes": 0, "updates": 0}
    if cfg.resume and demos_done and online_dir.exists() and demo_dir.exists():
        online = demo = None
        try:
            online = ReplayBuffer.open(online_dir, fsync=cfg.buffer.fsync,
                                       check_continuity=cfg.buffer.check_continuity)
            demo = ReplayBuffer.open(demo_dir, fsync=cfg.buffer.fsync,
                                     check_continuity=cfg.buffer.check_continuity)
            have_ckpt = ckpt.exists(ckpt_path)
            if have_ckpt:
                saved = ckpt.load_agent(agent, ckpt_path).get("counters", {})
                counters["updates"] = int(saved.get("updates", 0))
        except BaseException:
            for b in (online, demo):
                if b is not None:
                    b.close()
            raise
        save_config()
        counters["env_steps"], counters["episodes"] = online.transitions_added, online.episodes_started
        log.info("resumed at env step %d, episode %d, update %d (%s)", counters["env_steps"],
                 counters["episodes"], counters["updates"],
                 f"checkpoint {ckpt_path}" if have_ckpt else "no checkpoint yet: a fresh agent")
        return online, demo, counters
    for d in (online_dir, demo_dir):
        if not d.exists():
            continue
        if not cfg.resume or not (d / "header.json").exists():
            raise FileExistsError(f"{d} exists but there is no checkpoint to resume from (resume=False, "
                                  f"or not a buffer); use a fresh --run-dir")
        with ReplayBuffer.open(d) as b:
            if d == online_dir and b.transitions_added:
                raise FileExistsError(f"{d} holds online data but {run_dir / 'demos.json'} is missing; "
                                      f"use a fresh --run-dir")
        # The demos never finished (killed while collecting): nothing online yet, start over.
        log.warning("%s: left by a run killed before its demos were complete; starting it over", d)
        shutil.rmtree(d)
    save_config()
    env = handle.env
    action_dim = env.action_space.shape[0]
    online = ReplayBuffer.create(online_dir, env.observation_space, action_dim,
                                 capacity=cfg.buffer.capacity, fsync=cfg.buffer.fsync)
    demo = ReplayBuffer.create(demo_dir, env.observation_space, action_dim,
                               capacity=cfg.buffer.demo_capacity, fsync=cfg.buffer.fsync)
    started = time.perf_counter()
    if cfg.demo_dataset:
        from robot_rl.datasets import load_into_buffer  # only runs with recorded demos need it
        loaded = load_into_buffer(cfg.demo_dataset, demo, successful_only=True)
        demo_stats = {"demo_dataset": cfg.demo_dataset, "loaded": loaded, "demo_transitions": len(demo)}
    elif handle.expert is None:
        # A --env run without gym.expert or demo_dataset: plain online RL from the first step.
        log.warning("no demos: %s has no expert (gym.expert) and no demo_dataset", cfg.env)
        demo_stats = {"demos": 0, "reason": "no expert and no demo_dataset"}
    else:
        demo_stats = collect_demos(handle, WaitWhenDiskFull(demo), cfg.demos,
                                   seed=10_000_000 + cfg.seed * 1000)
    demo_stats["wall_s"] = time.perf_counter() - started
    # The "demos complete" mark, after the demo buffer's last commit.
    write_json_atomic(run_dir / "demos.json", json.loads(json.dumps(demo_stats, default=str)), indent=2)
    log.info("demos: %s", demo_stats)
    return online, demo, counters


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Runs (or resumes) one training run and returns the final evaluation."""
    validate_train_config(cfg)
    run_dir = Path(cfg.run_dir)
    # A resume compares its settings with the run's before anything is written (resume.py).
    plan = resume_lib.plan_resume(cfg, run_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = _device(cfg.device)

    handle = make_run_env(cfg, reward_classifier=cfg.reward_classifier)
    env = handle.env
    agent = SACAgent(cfg.agent, env.observation_space, env.action_space, device=device, seed=cfg.seed)
    if (cfg.obs == "pixels" and device.type == "cpu"
            and getattr(agent.encoder, "backbone_name", "") == "resnet10" and not agent.encoder.frozen):
        log.warning("pixel training on the CPU: a ResNet-10 encodes ~100 images/s here, so each "
                    "update of batch %d takes seconds to minutes; use a GPU (device=cuda) for "
                    "pixel runs", cfg.batch_size)
    action_dim = env.action_space.shape[0]

    # Resume: both buffers reopened at their last commit, the agent from its last checkpoint;
    # config.yaml (with the resume's changes in its history) is written once that worked.
    ckpt_path = run_dir / "checkpoint"

    def save_config() -> None:
        resume_lib.log_changes(plan, run_dir)
        resume_lib.save_config(cfg, run_dir, plan)

    try:
        run_dir.mkdir(parents=True, exist_ok=True)    # once the task and agent could be built
        online, demo, counters = open_run_buffers(cfg, run_dir, handle, agent, save_config)
    except BaseException:
        handle.close()
        raise
    from torch.utils.tensorboard import SummaryWriter
    writer = SummaryWriter(str(run_dir / "tb"))
    curve = _Curve(run_dir)
    curve.trim(counters["env_steps"])
    disk_status: dict[str, Any] = {"disk_full": False, "error": ""}
    # A full disk: log, wait and retry the write; the step is not acknowledged until it is on disk.
    online, demo = WaitWhenDiskFull(online, disk_status), WaitWhenDiskFull(demo, disk_status)

    sampler = RLPDSampler(online.buffer, demo.buffer, batch_size=cfg.batch_size, demo_ratio=cfg.buffer.demo_ratio,
                          pin_memory=cfg.buffer.pin_memory)
    rng = np.random.default_rng(cfg.seed + counters["env_steps"])

    from tqdm import tqdm
    bar = tqdm(total=cfg.steps, initial=counters["env_steps"], disable=not cfg.progress,
               desc=f"{cfg.task}/{cfg.obs}", unit="step", dynamic_ncols=True)
    last_eval = curve.data["eval_success"][-1] if curve.data["eval_success"] else None
    # Updates the run owes after a resume: the agent restarts from its checkpoint, the buffers
    # from their last commit (later); catching up keeps the updates-per-step ratio of a run
    # that was never stopped.
    update_debt = max(0.0, cfg.updates_per_step * (counters["env_steps"] - cfg.learning_starts + 1)
                      - counters["updates"]) if len(online) >= cfg.learning_starts else 0.0
    train_started = time.perf_counter()
    steps_at_start = counters["env_steps"]

    # The scripted human (twin only) watches the policy and takes over when it drifts; what it
    # executes is recorded with intervention=True and goes to the demo buffer too.
    human = (ScriptedHuman(cfg.intervention, make_human_expert(cfg.task, env, seed=cfg.seed), seed=cfg.seed)
             if cfg.intervention.enabled else None)
    router = InterventionRouter(online, demo)
    intervened = {"now": False, "episode": 0}

    def policy(obs):
        if counters["env_steps"] < cfg.random_steps:
            action = env.action_space.sample()
        else:
            action = agent.act(obs, deterministic=False)
        if human is not None:
            action, intervened["now"] = human.step(obs, action)
        return action

    def on_step(obs, action, reward, next_obs, terminated, truncated, info):
        nonlocal update_debt
        router.add(obs, action, reward, next_obs, terminated, truncated,
                   grasp_penalty=info.get("grasp_penalty", 0.0), intervention=intervened["now"])
        intervened["episode"] += int(intervened["now"])
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

    reached_target = False
    while counters["env_steps"] < cfg.steps and not reached_target:
        episode_seed = cfg.seed * 1_000_003 + counters["episodes"]
        if human is not None:
            human.reset()
        intervened.update(now=False, episode=0)
        result = run_episode(handle, policy, episode_seed, on_step=on_step)
        result["interventions"] = intervened["episode"]
        result["intervention_rate"] = intervened["episode"] / max(result["length"], 1)
        counters["episodes"] += 1
        step = counters["env_steps"]
        writer.add_scalar("episode/interventions", result["interventions"], step)
        writer.add_scalar("episode/intervention_rate", result["intervention_rate"], step)
        writer.add_scalar("episode/return", result["return"], step)
        writer.add_scalar("episode/success", float(result["success"]), step)
        writer.add_scalar("episode/length", result["length"], step)
        if result["cycle_time_s"] is not None:
            writer.add_scalar("episode/cycle_time_s", result["cycle_time_s"], step)
        writer.add_scalar("speed/env_steps_per_s",
                          (step - steps_at_start) / (time.perf_counter() - train_started), step)
        curve.add_episode(step, result)
        curve.save()                  # every episode: a killed run's curve ends where its buffer does

        recent = curve.data["episode_success"][-20:]
        postfix = {"train_success": f"{np.mean(recent):.2f}", "updates": counters["updates"]}
        if human is not None:
            postfix["interventions"] = f"{np.mean(curve.data['episode_intervention_rate'][-20:]):.2f}"
        if cfg.eval_every and (step // cfg.eval_every) > ((step - result["length"]) // cfg.eval_every):
            ev = evaluate(handle, agent, cfg.eval_episodes, seed=20_000_000 + step)
            last_eval = ev["success_rate"]
            reached_target = 0 < cfg.stop_at_success <= last_eval
            writer.add_scalar("eval/success_rate", ev["success_rate"], step)
            writer.add_scalar("eval/mean_episode_length", ev["mean_episode_length"], step)
            curve.data["eval_step"].append(step)
            curve.data["eval_success"].append(ev["success_rate"])
        if last_eval is not None:
            postfix["eval_success"] = f"{last_eval:.2f}"
        bar.set_postfix(postfix)
        if cfg.checkpoint_every and (step // cfg.checkpoint_every) > ((step - result["length"]) // cfg.checkpoint_every):
            save_checkpoint(agent, ckpt_path, counters, wait=False)
    bar.close()

    train_wall = time.perf_counter() - train_started
    save_checkpoint(agent, ckpt_path, counters, wait=True)
    final = evaluate(handle, agent, cfg.final_eval_episodes, seed=30_000_000 + cfg.seed)
    final.update({
        "task": cfg.env or cfg.task, "obs": cfg.obs, "seed": cfg.seed,
        "env_steps": counters["env_steps"], "updates": counters["updates"],
        "updates_per_env_step": counters["updates"] / max(counters["env_steps"], 1),
        "train_wall_s": train_wall,
        "env_steps_per_s": (counters["env_steps"] - steps_at_start) / max(train_wall, 1e-9),
    })
    final["intervention_steps"] = int(sum(curve.data["episode_interventions"]))
    final["demo_transitions"] = len(demo)      # demos + intervention segments
    writer.add_scalar("eval/final_success_rate", final["success_rate"], counters["env_steps"])
    curve.data["eval_step"].append(counters["env_steps"])
    curve.data["eval_success"].append(final["success_rate"])
    curve.save()
    curve.plot(run_dir / "learning_curve.png", f"{cfg.task} ({cfg.obs}), seed {cfg.seed}")
    curve.plot_episodes(run_dir / "episodes.png", f"{cfg.task} ({cfg.obs}), seed {cfg.seed}: training episodes")
    (run_dir / "eval.json").write_text(json.dumps(final, indent=2))
    writer.close()
    online.close()
    demo.close()
    handle.close()
    return final
