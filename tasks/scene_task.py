"""A task defined by its file alone (`base: scene`): objects from primitives, a declared success.

The twin builds the task file's `scene` (box, cylinder and sphere primitives, free or fixed,
sim.scene.Primitive) and the ground truth reports each object's pose; the `success` check
reads it. On a real arm there is no ground truth: the reward comes from the classifier or the
operator's keys, and the state check is what rehearsal in the twin scores against.

Success checks (`success: {kind: ..., object: NAME, ...}`):
- reach: the TCP within `distance` of the object;
- lift:  the object `height` above where it was placed, within `held_within` of the TCP;
- place: the object within `distance` of `target` (x, y, z in the base frame).
A free object that falls off the table (z < -0.02) ends the episode as a failure.
In state mode each free object adds its position relative to the TCP (reset frame) to obs["state"].
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robot_rl.robot import RobotState
from robot_rl.tasks.spec import TaskSpec

SUCCESS_KINDS = {"reach": {"object", "distance"}, "lift": {"object", "height", "held_within"},
                 "place": {"object", "distance", "target"}}


@dataclass
class SceneTaskSpec(TaskSpec):
    name: str = "scene_task"
    # Each object: {name, shape: box|cylinder|sphere, size, pos, free, mass, rgba} (sim.scene.Primitive).
    scene: tuple[dict, ...] = ()
    success_check: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        from robot_rl.sim.scene import Primitive  # the dataclass that validates an object; no MuJoCo needed

        objects = []
        for i, raw in enumerate(self.scene):
            if not isinstance(raw, dict) or "name" not in raw:
                raise ValueError(f"{self.name}: scene[{i}] must be a mapping with a 'name'")
            unknown = set(raw) - {"name", "shape", "size", "pos", "free", "mass", "rgba"}
            if unknown:
                raise ValueError(f"{self.name}: scene[{i}] ({raw['name']}): unknown keys {sorted(unknown)}")
            objects.append(Primitive(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}))
        names = [p.name for p in objects]
        if len(set(names)) != len(names) or {"cube", "hole", "table"} & set(names):
            raise ValueError(f"{self.name}: scene object names must be unique and not cube/hole/table: {names}")
        self.primitives = tuple(objects)
        self.free_objects = tuple(p.name for p in objects if p.free)
        self.object_feature_dim = 3 * len(self.free_objects)     # per instance: the file decides
        check = dict(self.success_check)
        kind = check.pop("kind", None)
        if kind not in SUCCESS_KINDS:
            raise ValueError(f"{self.name}: success.kind must be one of {sorted(SUCCESS_KINDS)}, got {kind!r}")
        if set(check) != SUCCESS_KINDS[kind]:
            raise ValueError(f"{self.name}: success of kind {kind} takes exactly "
                             f"{sorted(SUCCESS_KINDS[kind])}, got {sorted(check)}")
        if check["object"] not in names:
            raise ValueError(f"{self.name}: success.object {check['object']!r} is not a scene object ({names})")
        for key in ("distance", "height", "held_within"):
            if key in check and not 0.001 <= float(check[key]) <= 1.0:
                raise ValueError(f"{self.name}: success.{key} = {check[key]} outside [0.001, 1] m")

    # ---- reset: the TCP as every task, free objects at their pos + uniform xy / yaw -------
    def sample_reset(self, rng: np.random.Generator) -> dict[str, Any]:
        options = super().sample_reset(rng)
        for p in self.primitives:
            if not p.free:
                continue
            xy = rng.uniform(-self.object_xy_range, self.object_xy_range, 2)
            yaw = rng.uniform(-self.object_yaw_range, self.object_yaw_range)
            options[f"{p.name}_pos"] = np.array([p.pos[0] + xy[0], p.pos[1] + xy[1], p.pos[2]])
            options[f"{p.name}_quat"] = np.array([0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2)])
        return options

    def object_features(self, state: RobotState, task: dict[str, np.ndarray],
                        reset_pos: np.ndarray, reset_rot: np.ndarray) -> np.ndarray:
        return np.concatenate([reset_rot.T @ (task[f"{n}_pos"] - state.tcp_pos) for n in self.free_objects]
                              or [np.zeros(0)])

    def success(self, state: RobotState, task: dict[str, np.ndarray]) -> bool:
        c = self.success_check
        obj = task[f"{c['object']}_pos"]
        if c["kind"] == "reach":
            return bool(np.linalg.norm(obj - state.tcp_pos) < c["distance"])
        if c["kind"] == "lift":
            rest = next(p.pos[2] for p in self.primitives if p.name == c["object"])
            return bool(obj[2] >= rest + c["height"] and np.linalg.norm(obj - state.tcp_pos) < c["held_within"])
        return bool(np.linalg.norm(obj - np.asarray(c["target"], dtype=float)) < c["distance"])

    def failure(self, state: RobotState, task: dict[str, np.ndarray]) -> bool:
        return any(task[f"{n}_pos"][2] < -0.02 for n in self.free_objects)
