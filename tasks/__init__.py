"""Tasks and the gymnasium RobotEnv.

    env = tasks.make_env("pick_cube", obs="state" | "pixels", seed=0, **spec_overrides)

`TASKS` maps task names to their TaskSpec classes. Without a `robot`, make_env builds the MuJoCo
twin (sim.twin.TwinRobot) for the task; pass `robot=` to drive another RobotInterface (ROS).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from tasks.env import RobotEnv
from tasks.peg_insert import PegInsertSpec
from tasks.pick_cube import PickCubeSpec
from tasks.spec import TaskSpec

TASKS: dict[str, type[TaskSpec]] = {"pick_cube": PickCubeSpec, "peg_insert": PegInsertSpec}

# Spec fields the twin's scene must agree with.
_SCENE_FIELDS = ("cube_half_size", "peg_tip_below_tcp", "hole_depth")


def make_spec(name: str, **overrides: Any) -> TaskSpec:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {sorted(TASKS)}")
    cls = TASKS[name]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"{name}: unknown spec fields {sorted(unknown)}; known: {sorted(known)}")
    return cls(**overrides)


def make_twin(spec: TaskSpec, obs: str = "state", pretty: bool = False, impedance=None):
    """The MuJoCo twin for a task: its objects, and its cameras when obs == 'pixels'."""
    from controllers.impedance import ImpedanceConfig
    from sim.scene import SceneConfig
    from sim.twin import TwinConfig, TwinRobot

    scene = SceneConfig(objects=spec.objects, cameras=spec.cameras if obs == "pixels" else (),
                        image_size=spec.image_size, pretty=pretty,
                        **{k: getattr(spec, k) for k in _SCENE_FIELDS if hasattr(spec, k)})
    return TwinRobot(TwinConfig(scene=scene, control_hz=spec.control_hz,
                                impedance=impedance or ImpedanceConfig()))


def make_env(name: str, obs: str = "state", seed: int | None = None, robot=None,
             pretty: bool = False, impedance=None, **overrides: Any) -> RobotEnv:
    """A RobotEnv for task `name`. seed seeds the first reset (and the action space);
    overrides replace TaskSpec fields (e.g. max_steps=50); impedance: an ImpedanceConfig."""
    spec = make_spec(name, **overrides)
    if robot is None:
        robot = make_twin(spec, obs=obs, pretty=pretty, impedance=impedance)
    return RobotEnv(robot, spec, obs=obs, seed=seed)


__all__ = ["RobotEnv", "TaskSpec", "TASKS", "make_env", "make_spec", "make_twin"]
