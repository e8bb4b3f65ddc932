"""The twin tasks as robot_rl's task provider: the learning core finds them through the
`robot_rl.task_providers` entry point (setup.py), so robot_rl/ never imports tasks/."""
from __future__ import annotations

from typing import Any, Mapping

from robot_rl.run_env import EnvHandle


def task_names() -> list[str]:
    from robot_rl import tasks

    return sorted(tasks.TASKS)


def provides(task: str) -> bool:
    """A built-in twin task, or a task file."""
    from robot_rl import tasks

    return task in tasks.TASKS or task.endswith((".yaml", ".yml"))


def make_env_and_expert(task: str, obs: str = "state", seed: int = 0, expert_noise: float = 0.0,
                        reward_classifier: str = "",
                        task_overrides: Mapping[str, Any] | None = None) -> EnvHandle:
    """See robot_rl.run_env.make_env_and_expert."""
    from robot_rl import tasks
    from robot_rl.tasks.experts import make_expert

    from robot_rl.tasks.classifier_reward import ClassifierReward, task_classifier

    _, classifier, options = task_classifier(task, task_overrides, reward_classifier)
    env = tasks.make_env(task, obs=obs, seed=seed, **dict(task_overrides or {}))
    expert = make_expert(task, env, noise=expert_noise, seed=seed)
    if classifier is not None:
        env = ClassifierReward(env, classifier, **options)
    return EnvHandle(env, expert, control_hz=float(getattr(env.unwrapped, "control_hz", 10.0)))


def make_expert(task: str, env: Any, noise: float = 0.0, seed: int = 0) -> Any:
    from robot_rl.tasks.experts import make_expert as make_twin_expert

    return make_twin_expert(task, env, noise=noise, seed=seed)
