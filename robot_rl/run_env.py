"""Builds a task's env and its scripted expert by name, for the CLI and the training loop; or,
for a run with `env` set, any gymnasium env through robot_rl/envs/gym_adapter.py.

The learning core does not depend on the twin: the built-in `point_reach` task needs only
numpy, and the twin tasks come from the task provider that tasks/ registers (an entry point).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import gymnasium as gym


@dataclass
class EnvHandle:
    env: gym.Env
    expert: Any                 # has .act(obs, info=None) -> action; None: no expert (--env)
    control_hz: float

    def close(self) -> None:
        self.env.close()


BUILTIN_TASKS = ("point_reach",)


def make_run_env(cfg: Any, **kwargs: Any) -> EnvHandle:
    """The env and expert of the run a TrainConfig describes: its task, observations, seed,
    demo noise and task_overrides, so every tool that rebuilds a run's env (train, learner, eval,
    export, deploy, the actors) builds the same one. kwargs go to make_env_and_expert."""
    if getattr(cfg, "env", ""):
        return make_gym_run_env(cfg, **kwargs)
    kw: dict[str, Any] = dict(seed=cfg.seed, expert_noise=cfg.demo_noise, task_overrides=cfg.task_overrides)
    kw.update(kwargs)
    handle = make_env_and_expert(cfg.task, cfg.obs, **kw)
    try:
        check_gripper_mode(cfg, handle.env)
    except BaseException:
        handle.close()
        raise
    return handle


def check_gripper_mode(cfg: Any, env: gym.Env) -> None:
    """A task whose gripper mode is grasp_critic (its task file's `gripper:`) is learned with the
    grasp critic, and only such a task: otherwise a[6] would be learned by the wrong head."""
    from robot_rl.config import ConfigError

    mode = getattr(getattr(env.unwrapped, "task", None), "gripper_mode", "")
    agent = getattr(cfg, "agent", None)
    if agent is None or not mode:
        return
    if mode == "grasp_critic" and not agent.grasp_critic:
        raise ConfigError(f"task {cfg.task}: gripper mode grasp_critic needs the grasp critic: "
                          "--set agent.grasp_critic=true (or gripper: binary in the task file)")
    if mode == "none" and agent.grasp_critic:
        raise ConfigError(f"task {cfg.task}: gripper mode none has no gripper action for "
                          "agent.grasp_critic=true to learn")


def make_gym_run_env(cfg: Any, reward_classifier: str = "") -> EnvHandle:
    """A `--env` run: the user's gymnasium env through the adapter; expert None without gym.expert
    (then the run's demos come from demo_dataset, or there are none)."""
    from robot_rl.envs.gym_adapter import GymEnvError, make_gym_env

    if reward_classifier:
        raise GymEnvError("reward_classifier works on the built-in twin tasks; a --env env gives "
                          "its own reward")
    if cfg.task_overrides:
        raise GymEnvError("task_overrides change a built-in task; a --env env takes gym.kwargs")
    if cfg.intervention.enabled:
        raise GymEnvError("intervention (the scripted human) needs a built-in twin task, not --env")
    env, expert = make_gym_env(cfg.env, cfg.gym, cfg.obs)
    return EnvHandle(env, expert, control_hz=float(cfg.gym.control_hz))


def make_env_and_expert(task: str, obs: str = "state", seed: int = 0,
                        expert_noise: float = 0.0, reward_classifier: str = "",
                        task_overrides: Mapping[str, Any] | None = None) -> EnvHandle:
    """reward_classifier: a classifier file (robot-rl train-classifier); when set, the env's
    reward and success come from it (tasks.classifier_reward.ClassifierReward) and the twin's
    own success is kept as info["ground_truth_success"]. task_overrides: TaskSpec fields to
    change (TrainConfig.task_overrides)."""
    if task == "point_reach":
        if task_overrides:
            raise ValueError("point_reach is built in and takes no task_overrides")
        from robot_rl.toy_env import PointReachEnv, PointReachExpert
        if obs != "state":
            raise ValueError("point_reach has state observations only")
        if reward_classifier:
            raise ValueError("point_reach has no cameras for a reward classifier")
        env = PointReachEnv()
        return EnvHandle(env, PointReachExpert(env, noise=expert_noise, seed=seed), control_hz=10.0)
    provider = task_provider()
    if not provider.provides(task):
        raise ValueError(f"unknown task {task!r}: built-in tasks are {provider.task_names() + list(BUILTIN_TASKS)}, "
                         "or give a task file (my_task.yaml)")
    return provider.make_env_and_expert(task, obs, seed=seed, expert_noise=expert_noise,
                                        reward_classifier=reward_classifier, task_overrides=task_overrides)


# Higher layers register their tasks downward, as packages do for pytest or gymnasium: an entry
# point in this group names a module with task_names(), provides(task), make_env_and_expert(...)
# and make_expert(task, env, noise, seed). robot_rl's own twin tasks are `twin = robot_rl.tasks.provider`.
TASK_PROVIDERS = "robot_rl.task_providers"


def task_provider(name: str = "twin") -> Any:
    """The installed task provider `name` (its module)."""
    from importlib.metadata import entry_points

    found = {ep.name: ep for ep in entry_points(group=TASK_PROVIDERS)}
    if name not in found:
        raise RuntimeError(f"no task provider {name!r} is installed (entry point group {TASK_PROVIDERS}; "
                           f"found {sorted(found)}): reinstall robot_rl (pip install -e . or make) for the "
                           f"twin tasks; built-in tasks without it: {BUILTIN_TASKS}")
    return found[name].load()
