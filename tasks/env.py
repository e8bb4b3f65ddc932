"""RobotEnv: one gymnasium env for every task and both robot backends (twin or ROS).

Action, float32 (7,) in [-1, 1]: [dx, dy, dz, droll, dpitch, dyaw, gripper].
- The first six are a twist in the CURRENT END-EFFECTOR frame, scaled by the task
  (action_scale_pos m, action_scale_rot rad per step). With R the current TCP rotation:
      target_pos = pos + R @ (scale_pos * a[0:3])
      target_rot = R @ Exp(scale_rot * a[3:6])      (= Exp(R @ w) @ R)
  i.e. the twist maps to the base frame with the block-diagonal (R, R): linear and angular
  parts are both rotated by R and there is no cross term. (SERL's RelativeFrame wrapper maps
  it with an "adjoint" [[R, 0], [[p]x R, R]]: the lower-left block feeds the commanded
  translation into the commanded rotation, so a pure EE-frame translation also turns the
  gripper, by an amount growing with the distance from the base. A delta pose of the TCP
  needs no such term - it is a mistake there, not a convention, and it is not copied here.)
  The rotation part is a rotation vector (small-angle roll/pitch/yaw) in the EE frame.
- The target is the current *observed* pose plus the delta (as SERL), then clipped to the
  task's safety box: position per axis in the base frame, orientation as roll-pitch-yaw
  relative to the task's nominal orientation. Only then is it sent to the robot.
  Because the target restarts from the observed pose each step and the law filters targets
  (0.2 s time constant) against joint friction, the TCP moves only ~25-40% of the asked delta
  per step (measured in the twin: ~5 mm/step at |a| = 1 for pick_cube's 2 cm scale), as on
  SERL's hardware; the gain is that a blocked arm never winds its target up.
- Gripper: a[6] >= 0.5 closes, a[6] <= -0.5 opens, in between keeps the last command. Each flip
  of the command adds spec.gripper_penalty to info["grasp_penalty"] (not to the reward).
- A non-finite action or one of the wrong shape raises ValueError and sends nothing: the robot
  keeps its last equilibrium pose.

Observation, gymnasium.spaces.Dict:
- "state": float32; the proprio parts the task lists (spec.proprio_keys, by default all of
  tasks.spec.PROPRIO_KEYS: 20 floats, in that order) expressed relative to the pose observed
  after reset: position R0^T (p - p0), orientation q0^-1 q, velocities, force and
  torque rotated by R0^T (block-diagonal again). Relative frames make a policy indifferent to
  where the episode starts.
  With obs="state" the task's object features follow (e.g. the cube relative to the TCP), since
  without images the object would be unobservable - as in gym-hil / LeRobot state tasks.
- obs="pixels": one uint8 (H, W, 3) image per camera of the task (e.g. "wrist", "front"); the
  state holds only the proprio.

terminated = success or task failure; truncated = max_steps reached; info["success"] always.

`env.task` is the TaskSpec (`env.spec` stays gymnasium's registration EnvSpec).
"""
from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np

from robot_rl.controllers.rotations import exp_so3, matrix_to_quat, matrix_to_rpy, rpy_to_matrix
from robot_rl.controllers.rotations import quat_to_matrix as quat_to_rot
from robot_rl.robot import RobotInterface, RobotState
from robot_rl.tasks.spec import TaskSpec


class RobotEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, robot: RobotInterface, spec: TaskSpec,
                 obs: Literal["state", "pixels"] = "state", seed: int | None = None,
                 render_mode: str | None = None):
        if obs not in ("state", "pixels"):
            raise ValueError(f"obs must be 'state' or 'pixels', got {obs!r}")
        self.robot, self.task, self.obs_mode = robot, spec, obs
        self.render_mode = render_mode
        self._first_seed = seed
        state_dim = spec.proprio_dim + (spec.object_feature_dim if obs == "state" else 0)
        spaces: dict[str, gym.Space] = {
            "state": gym.spaces.Box(-np.inf, np.inf, (state_dim,), np.float32)}
        if obs == "pixels":
            size = spec.image_size
            for cam in spec.cameras:
                spaces[cam] = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (7,), np.float32)
        if seed is not None:
            self.action_space.seed(seed)
        self._box_low, self._box_high = np.array(spec.box_low), np.array(spec.box_high)
        self._rpy_low, self._rpy_high = np.array(spec.rpy_low), np.array(spec.rpy_high)
        self._nominal_rot = quat_to_rot(spec.nominal_quat)
        self.last_state: RobotState | None = None
        self.last_target: tuple[np.ndarray, np.ndarray] | None = None
        self._gripper_cmd = 0.0
        self._steps = 0

    # ---- gymnasium API --------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is None and self._first_seed is not None:
            seed, self._first_seed = self._first_seed, None
        super().reset(seed=seed)
        robot_options = self.task.sample_reset(self.np_random)
        robot_options.update(options or {})
        state = self.robot.reset(seed=seed, options=robot_options)
        self._gripper_cmd = float(robot_options.get("gripper", 0.0))
        self._reset_pos = state.tcp_pos.copy()
        self._reset_rot = quat_to_rot(state.tcp_quat)
        self._steps = 0
        self.last_state = state
        self.last_target = (state.tcp_pos.copy(), state.tcp_quat.copy())
        return self._observation(state), {"success": False, "grasp_penalty": 0.0}

    def step(self, action):
        action = self._validate(action)
        state = self.last_state
        if state is None:
            raise RuntimeError("call reset() before step()")
        pos, quat = self.target_from_action(state, action)
        penalty = self._update_gripper(action[6])
        self.robot.command(pos, quat, self._gripper_cmd)
        self.last_target = (pos, quat)
        state = self.robot.wait_step()
        self.last_state = state
        self._steps += 1
        truth = self.robot.task_state()
        if truth:
            success = bool(self.task.success(state, truth))
            failure = bool(self.task.failure(state, truth))
            reward = float(self.task.reward(state, truth))
        else:
            # A real robot has no ground truth: the reward classifier (tasks.classifier_reward)
            # or the operator's success key supplies reward and success on top of this env.
            success = failure = False
            reward = 0.0
        info = {"success": success, "failure": failure, "grasp_penalty": penalty,
                "ground_truth": bool(truth)}
        truncated = self._steps >= self.task.max_steps
        return self._observation(state), reward, success or failure, truncated, info

    def render(self):
        """rgb_array: the last image of the task's first camera; in state mode the twin renders
        its front camera on demand (for videos); None on a robot without images."""
        if self.last_state is not None and self.last_state.images:
            return next(iter(self.last_state.images.values()))
        if hasattr(self.robot, "render"):
            return self.robot.render("front")
        return None

    def close(self):
        self.robot.close()

    # ---- action -> target ---------------------------------------------------------------------
    def _validate(self, action) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (7,):
            raise ValueError(f"action must have shape (7,), got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action is not finite: {a.tolist()}; nothing was sent to the robot")
        return np.clip(a, -1.0, 1.0)

    def target_from_action(self, state: RobotState, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Equilibrium pose (base frame, quat xyzw) for an action, clipped to the safety box."""
        rot = quat_to_rot(state.tcp_quat)
        pos = state.tcp_pos + rot @ (self.task.action_scale_pos * action[:3])
        rot = rot @ exp_so3(self.task.action_scale_rot * action[3:6])
        return self.clip_to_safety_box(pos, rot)

    def clip_to_safety_box(self, pos: np.ndarray, rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos = np.clip(pos, self._box_low, self._box_high)
        rpy = matrix_to_rpy(self._nominal_rot.T @ rot)
        rpy = np.clip(rpy, self._rpy_low, self._rpy_high)
        return pos, matrix_to_quat(self._nominal_rot @ rpy_to_matrix(rpy))

    def _update_gripper(self, a: float) -> float:
        if self.task.gripper_fixed is not None:
            self._gripper_cmd = self.task.gripper_fixed
            return 0.0
        new = 1.0 if a >= 0.5 else 0.0 if a <= -0.5 else self._gripper_cmd
        flipped = new != self._gripper_cmd
        self._gripper_cmd = new
        return self.task.gripper_penalty if flipped else 0.0

    # ---- observation -------------------------------------------------------------------------
    def _observation(self, state: RobotState) -> dict[str, np.ndarray]:
        r0t = self._reset_rot.T
        proprio = {
            "tcp_pos": r0t @ (state.tcp_pos - self._reset_pos),
            "tcp_quat": matrix_to_quat(r0t @ quat_to_rot(state.tcp_quat)),
            "tcp_vel": np.concatenate([r0t @ state.tcp_vel[:3], r0t @ state.tcp_vel[3:]]),
            "tcp_force": r0t @ state.tcp_force,
            "tcp_torque": r0t @ state.tcp_torque,
            "gripper": [state.gripper],
        }
        parts = [proprio[key] for key in self.task.proprio_keys]
        if self.obs_mode == "state" and self.task.object_feature_dim:
            truth = self.robot.task_state()
            if not truth:
                raise RuntimeError(f"obs='state' for {self.task.name} needs the objects' ground "
                                   "truth, which only the twin has; use obs='pixels' on hardware")
            parts.append(self.task.object_features(state, truth, self._reset_pos, self._reset_rot))
        obs = {"state": np.concatenate(parts).astype(np.float32)}
        if self.obs_mode == "pixels":
            for cam in self.task.cameras:
                obs[cam] = state.images[cam]
        return obs

    @property
    def gripper_command(self) -> float:
        return self._gripper_cmd

    @property
    def steps(self) -> int:
        return self._steps
