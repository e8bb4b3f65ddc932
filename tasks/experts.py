"""Scripted experts: one per task, acting through the env's own action interface.

They stand in for a human on the SpaceMouse when collecting demos in the twin: each reads the
twin's ground truth (`robot.task_state()`) and the last robot state, picks a Cartesian target
with a small state machine, and turns the error into an end-effector-frame action
a = clip(R^T (target - tcp) / action_scale, -1, 1), exactly what a teleoperator's twist would be.

    expert = tasks.experts.make_expert("pick_cube", env, noise=0.1, seed=0)
    a = expert.act(obs, info)      # float32 (7,), call after every reset/step

`noise` adds N(0, noise) to the six motion components (clipped), for demo diversity.
A new episode (env.steps == 0) restarts the state machine.
"""
from __future__ import annotations

import math

import numpy as np

from robot_rl.controllers.rotations import matrix_to_quat, quat_to_axis_angle, rpy_to_matrix
from robot_rl.controllers.rotations import quat_to_matrix as quat_to_rot
from robot_rl.tasks.env import RobotEnv
from robot_rl.tasks.pick_cube import heading


class ScriptedExpert:
    def __init__(self, env, noise: float = 0.0, seed: int | None = None):
        self.env: RobotEnv = env.unwrapped
        self.noise = float(noise)
        self.rng = np.random.default_rng(seed)
        self.phase = ""
        self.reset()

    def reset(self) -> None:
        self.phase = "approach"
        self._phase_steps = 0

    def act(self, obs=None, info=None) -> np.ndarray:
        if self.env.steps == 0:  # a new episode
            self.reset()
        state = self.env.last_state
        if state is None:
            raise RuntimeError("reset the env before asking the expert for an action")
        action = self._act(state, self.env.robot.task_state())
        self._phase_steps += 1
        if self.noise > 0.0:
            action[:6] += self.rng.normal(0.0, self.noise, 6)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def distance_to_go(self, obs=None) -> float:
        """Metres left to the goal by this expert's plan, from the ground truth; the scripted
        human (robot_rl.scripted_human) watches it fall to tell progress from a stall."""
        state = self.env.last_state
        if state is None:
            raise RuntimeError("reset the env before asking the expert for its distance to go")
        return float(self._distance(state, self.env.robot.task_state()))

    def _distance(self, state, task) -> float:
        raise NotImplementedError

    def _motion(self, state, target_pos: np.ndarray, target_rot: np.ndarray) -> np.ndarray:
        """EE-frame action moving the TCP towards (target_pos, target_rot)."""
        spec = self.env.task
        rot = quat_to_rot(state.tcp_quat)
        a = np.zeros(7)
        a[:3] = rot.T @ (target_pos - state.tcp_pos) / spec.action_scale_pos
        rot_err = quat_to_axis_angle(matrix_to_quat(rot.T @ target_rot))
        a[3:6] = rot_err / spec.action_scale_rot if spec.action_scale_rot > 0 else 0.0
        return np.clip(a, -1.0, 1.0)

    def _act(self, state, task) -> np.ndarray:
        raise NotImplementedError


def _wrap(angle: float, period: float) -> float:
    """angle wrapped to [-period/2, period/2)."""
    return (angle + period / 2) % period - period / 2


class PickCubeExpert(ScriptedExpert):
    """approach above the cube (yaw to the nearest face) -> descend -> close -> lift."""

    hover = 0.07

    def _distance(self, state, task) -> float:
        """Hand to cube, plus the lift still to do."""
        spec, cube = self.env.task, task["cube_pos"]
        lift_left = max(0.0, spec.cube_half_size + spec.lift_height - cube[2])
        return np.linalg.norm(cube - state.tcp_pos) + lift_left

    def _act(self, state, task) -> np.ndarray:
        spec = self.env.task
        cube = task["cube_pos"]
        tcp_yaw = heading(quat_to_rot(state.tcp_quat))
        yaw = tcp_yaw + _wrap(heading(quat_to_rot(task["cube_quat"])) - tcp_yaw, math.pi / 2)
        target_rot = rpy_to_matrix((0.0, 0.0, yaw)) @ quat_to_rot(spec.nominal_quat)
        # Aim at the nearest orientation the task's safety box allows (a task may limit or hold
        # the yaw), instead of waiting for a turn the box clips away: the 5 cm cube's 7.1 cm
        # diagonal fits the 8 cm opening at any yaw.
        target_rot = quat_to_rot(self.env.clip_to_safety_box(state.tcp_pos, target_rot)[1])
        yaw = heading(target_rot)
        xy_err = np.linalg.norm(cube[:2] - state.tcp_pos[:2])
        yaw_err = abs(_wrap(yaw - tcp_yaw, 2 * math.pi))
        gripper = -1.0

        if self.phase in ("grasp", "lift") and np.linalg.norm(cube - state.tcp_pos) > 0.05:
            self.phase, self._phase_steps = "approach", 0   # lost it: start over
        if self.phase == "approach":
            target = np.array([cube[0], cube[1], cube[2] + self.hover])
            if xy_err < 0.006 and yaw_err < 0.06 and abs(state.tcp_pos[2] - target[2]) < 0.03:
                self.phase, self._phase_steps = "descend", 0
        if self.phase == "descend":
            target = np.array([cube[0], cube[1], cube[2]])
            if abs(state.tcp_pos[2] - target[2]) < 0.006 and xy_err < 0.008:
                self.phase, self._phase_steps = "grasp", 0
            elif xy_err > 0.015:
                self.phase, self._phase_steps = "approach", 0
                target = np.array([cube[0], cube[1], cube[2] + self.hover])
        if self.phase == "grasp":
            target, gripper = state.tcp_pos.copy(), 1.0
            if self._phase_steps >= 4:
                self.phase, self._phase_steps = "lift", 0
        if self.phase == "lift":
            gripper = 1.0
            target = np.array([state.tcp_pos[0], state.tcp_pos[1],
                               spec.cube_half_size + spec.lift_height + 0.03])
        a = self._motion(state, target, target_rot)
        a[6] = gripper
        return a


class PegInsertExpert(ScriptedExpert):
    """align the peg tip over the hole -> descend, correcting xy on the way."""

    def _distance(self, state, task) -> float:
        """Peg tip to the depth in the hole that counts as inserted."""
        top = task["hole_top"]
        goal = np.array([top[0], top[1], top[2] - self.env.task.insert_depth])
        return np.linalg.norm(goal - task["peg_tip"])

    def _act(self, state, task) -> np.ndarray:
        spec = self.env.task
        tip, top = task["peg_tip"], task["hole_top"]
        target_rot = quat_to_rot(spec.nominal_quat)
        xy_err = np.linalg.norm(top[:2] - tip[:2])
        if self.phase == "approach":
            tip_target = np.array([top[0], top[1], top[2] + 0.01])
            if xy_err < 0.0025 and tip[2] < top[2] + 0.02:
                self.phase, self._phase_steps = "insert", 0
        if self.phase == "insert":
            tip_target = np.array([top[0], top[1], top[2] - spec.hole_depth])
            if xy_err > 0.004 and tip[2] > top[2] - 0.005:  # caught on the rim: back up
                self.phase, self._phase_steps = "approach", 0
                tip_target = np.array([top[0], top[1], top[2] + 0.01])
        a = self._motion(state, state.tcp_pos + (tip_target - tip), target_rot)
        a[6] = 0.0
        return a


EXPERTS = {"pick_cube": PickCubeExpert, "peg_insert": PegInsertExpert,
           # The WidowX variant: the same state machine, its targets come from the task's spec.
           "widowx_pick_cube": PickCubeExpert}


def make_expert(name: str, env, noise: float = 0.0, seed: int | None = None) -> ScriptedExpert | None:
    """The scripted expert of a task, by name or, for a task file, by its base (a file built on
    pick_cube gets pick_cube's expert). None for a task with no script (a `scene` task file):
    its demos come from a recorded dataset, or it starts without demos."""
    if name not in EXPERTS:
        from robot_rl.tasks.task_file import TaskFileError, read_task_file, task_path
        try:
            name = read_task_file(task_path(name))[0]
        except TaskFileError as e:
            raise ValueError(f"no expert for task {name!r}: {e}") from None
        if name not in EXPERTS:
            return None
    return EXPERTS[name](env, noise=noise, seed=seed)
