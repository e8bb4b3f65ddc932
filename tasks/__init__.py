"""Tasks and the gymnasium RobotEnv.

    env = tasks.make_env("pick_cube", obs="state" | "pixels", seed=0, **spec_overrides)
    env = tasks.make_env("my_task.yaml")          # a task file (tasks/task_file.py)

A task is a file: `TASKS` lists the built-in ones (tasks/task_files/<name>.yaml), and any
path ending in .yaml is a user's task file. Without a `robot`, make_env builds the MuJoCo
twin for the task: the FR3 (sim.twin.TwinRobot), or the WidowX 250 (sim.widowx.WidowXTwin) for
tasks whose spec says `robot = "widowx"` (the `widowx_*` tasks); pass `robot=` to drive another
RobotInterface (ROS). `make_env("pick_cube", robot_model="widowx")` is `make_env("widowx_pick_cube")`.
"""
from __future__ import annotations

from typing import Any

from robot_rl.tasks.env import RobotEnv
from robot_rl.tasks.spec import TaskSpec
from robot_rl.tasks.task_file import TaskFileError, bases, build_spec, is_task_file, shipped_tasks, task_path

TASKS: tuple[str, ...] = tuple(shipped_tasks())   # built-in task names (their files ship in tasks/task_files)
ROBOT_MODELS = ("franka", "widowx")

# Spec fields the twin's scene must agree with.
_SCENE_FIELDS = ("cube_half_size", "peg_tip_below_tcp", "hole_depth")


def make_spec(name: str, **overrides: Any) -> TaskSpec:
    """The TaskSpec of a built-in task or a task file; overrides change fields for one run."""
    return build_spec(task_path(name), **overrides)


def task_name_for(name: str, robot_model: str | None) -> str:
    """The task name for a robot: ("pick_cube", "widowx") -> "widowx_pick_cube"."""
    if robot_model is None or is_task_file(name) or robot_model == getattr(bases().get(name), "robot", "franka"):
        return name
    if robot_model not in ROBOT_MODELS:
        raise ValueError(f"unknown robot_model {robot_model!r}; known: {ROBOT_MODELS}")
    variant = name if robot_model == "franka" else f"{robot_model}_{name}"
    if robot_model == "franka" and name.startswith("widowx_"):
        variant = name[len("widowx_"):]
    if variant not in TASKS:
        raise ValueError(f"task {name!r} has no {robot_model} variant; known: {sorted(TASKS)}")
    return variant


def make_twin(spec: TaskSpec, obs: str = "state", pretty: bool = False, impedance=None):
    """The MuJoCo twin for a task: its objects, and its cameras when obs == 'pixels' (cropped
    ones rendered at their frame size and cropped as over ROS: tasks.camera_view)."""
    twin = _make_bare_twin(spec, obs, pretty, impedance)
    if obs == "pixels" and spec.camera_crops:
        from robot_rl.tasks.camera_view import CroppedTwinCameras
        return CroppedTwinCameras(twin, spec)
    return twin


def _make_bare_twin(spec: TaskSpec, obs: str, pretty: bool, impedance):
    primitives = getattr(spec, "primitives", ())
    # Cropped cameras are rendered by CroppedTwinCameras, at their own frame size.
    cameras = tuple(c for c in spec.cameras if c not in spec.camera_crops) if obs == "pixels" else ()
    if spec.robot == "widowx":
        from robot_rl.sim.widowx import WidowXSceneConfig, WidowXTwin, WidowXTwinConfig

        if impedance is not None:
            raise ValueError("the WidowX twin is position-controlled through IK: no impedance config")
        scene = WidowXSceneConfig(objects=spec.objects, cameras=cameras,
                                  image_size=spec.image_size, pretty=pretty, primitives=primitives,
                                  cube_half_size=getattr(spec, "cube_half_size", 0.02))
        return WidowXTwin(WidowXTwinConfig(scene=scene, control_hz=spec.control_hz))
    from robot_rl.controllers.impedance import ImpedanceConfig
    from robot_rl.sim.scene import SceneConfig
    from robot_rl.sim.twin import TwinConfig, TwinRobot

    scene = SceneConfig(objects=spec.objects, cameras=cameras,
                        image_size=spec.image_size, pretty=pretty, primitives=primitives,
                        **{k: getattr(spec, k) for k in _SCENE_FIELDS if hasattr(spec, k)})
    return TwinRobot(TwinConfig(scene=scene, control_hz=spec.control_hz,
                                impedance=impedance or ImpedanceConfig()))


def make_env(name: str, obs: str = "state", seed: int | None = None, robot=None,
             pretty: bool = False, impedance=None, robot_model: str | None = None,
             **overrides: Any) -> RobotEnv:
    """A RobotEnv for task `name`. seed seeds the first reset (and the action space);
    overrides replace TaskSpec fields (e.g. max_steps=50); impedance: an ImpedanceConfig;
    robot_model: "franka" | "widowx" picks the task's variant for that robot (None: as named)."""
    spec = make_spec(task_name_for(name, robot_model), **overrides)
    if robot is None:
        robot = make_twin(spec, obs=obs, pretty=pretty, impedance=impedance)
    return RobotEnv(robot, spec, obs=obs, seed=seed)


__all__ = ["RobotEnv", "TaskSpec", "TaskFileError", "TASKS", "ROBOT_MODELS", "make_env", "make_spec",
           "make_twin", "task_name_for"]
