"""ClassifierReward: a RobotEnv whose reward and success come from the learned reward classifier.

    env = ClassifierReward(tasks.make_env("pick_cube", obs="state"), "runs/clf/classifier.safetensors")

After every reset and step the wrapper shows the classifier the cameras IT needs (its header
names them and their size), whatever the policy observes:
- from the observation when the env is in pixels mode and has those cameras;
- else from the robot's latest state images (RobotState.images);
- else rendered on demand by the robot (the twin's `render(camera, size)`), so a state-only
  policy can still be rewarded by a camera classifier in the twin.

Binary classifier: success when P(success) >= threshold (the classifier's own, chosen for a
target precision by train-classifier, or `threshold=` here); reward 1.0 on success, else 0.0.

Multi-stage classifier (N+1 classes: 0 = nothing yet, 1..N = stage k reached, N = done): the
predicted stage is the most probable class, except that the final class counts only when its
probability reaches the threshold (otherwise the most probable of the others). The step reward
is `stage_rewards[stage]`, by default k/N (stage 0 -> 0, final stage -> 1.0); pass a table of
N+1 numbers to change it (e.g. (0, 0.1, 0.3, 1.0) to make the last stage worth most).
info["stage"] holds the stage, info["classifier_prob"] the final class's probability.

A success (the final class past the threshold, AND the optional extra state check) sets
terminated=True and info["success"]=True. The wrapped env's own ground-truth success is kept
as info["ground_truth_success"] (the twin) and no longer ends the episode, so a run rewarded
only by the classifier can still be scored against the truth; its failures (e.g. the cube
left the table) still end it.

Extra state check (SERL checks e.g. "gripper closed and lifted" beside the classifier):
`state_check` is a callable (RobotState -> bool) or a string of conditions on the TCP state,
joined by "," (all must hold): `gripper>=0.5,z>=0.08` (fields: x, y, z = TCP position in m,
gripper 0..1, force = |external force| N; operators >=, <=, >, <).
"""
from __future__ import annotations

import operator
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np

from robot_rl.robot import RobotState

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_FIELDS: dict[str, Callable[[RobotState], float]] = {
    "x": lambda s: float(s.tcp_pos[0]), "y": lambda s: float(s.tcp_pos[1]),
    "z": lambda s: float(s.tcp_pos[2]), "gripper": lambda s: float(s.gripper),
    "force": lambda s: float(np.linalg.norm(s.tcp_force)),
}


def parse_state_check(text: str) -> Callable[[RobotState], bool]:
    """'gripper>=0.5,z>=0.08' -> a predicate on RobotState (every condition must hold)."""
    conditions = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        m = re.fullmatch(r"([a-z]+)\s*(>=|<=|>|<)\s*([-+0-9.eE]+)", part)
        if not m or m.group(1) not in _FIELDS:
            raise ValueError(f"bad state check {part!r}: use FIELD OP NUMBER with FIELD in "
                             f"{sorted(_FIELDS)} and OP in {sorted(_OPS)}")
        value = float(m.group(3))
        if not np.isfinite(value):
            raise ValueError(f"bad state check {part!r}: the number must be finite")
        conditions.append((_FIELDS[m.group(1)], _OPS[m.group(2)], value))
    if not conditions:
        raise ValueError(f"empty state check {text!r}")
    return lambda state: all(op(get(state), v) for get, op, v in conditions)


def load_for_task(path: str | Path, spec: Any, images_from_robot: bool = False):
    """The classifier at `path`, checked against the task (a TaskSpec): ValueError naming the
    file and the mismatch. images_from_robot: the frames come from the robot's cameras (the ROS
    backend), so they must be the task's image size too (the twin renders any size)."""
    from robot_rl.reward.classifier import RewardClassifier

    clf = RewardClassifier.load(path)
    missing = [c for c in clf.cfg.cameras if c not in spec.cameras]
    if missing:
        raise ValueError(f"reward classifier {str(path)!r} needs camera(s) {missing}, which task "
                         f"{spec.name} does not have (its cameras: {list(spec.cameras)})")
    if images_from_robot and clf.cfg.image_size != spec.image_size:
        raise ValueError(f"reward classifier {str(path)!r} takes {clf.cfg.image_size} px images; task "
                         f"{spec.name}'s cameras give {spec.image_size} px (set image_size or retrain)")
    return clf


def task_classifier(task: str, task_overrides: Any = None, path: str | Path = "",
                    images_from_robot: bool = False) -> tuple[str, Any, dict[str, Any]]:
    """The reward classifier of a run's task, the one way every tool finds it (the in-process
    run, the actor node, deploy): `path` (the run's reward_classifier), else the task file's
    reward section. Returns (file, classifier, ClassifierReward options: the task's threshold
    and state check), or ('', None, {}) when there is none. The classifier is checked against
    every camera of the task: the run's `cameras` override narrows only what the policy
    observes (a proprio-only policy may be rewarded from the cameras)."""
    from robot_rl import tasks

    rig = tasks.make_spec(task, **{k: v for k, v in dict(task_overrides or {}).items() if k != "cameras"})
    path = str(path or rig.reward_classifier or "")
    if not path:
        return "", None, {}
    clf = load_for_task(path, rig, images_from_robot=images_from_robot)
    return path, clf, {"threshold": rig.reward_threshold, "state_check": rig.success_state_check or None}


class ClassifierReward(gym.Wrapper):
    def __init__(self, env: gym.Env, classifier, threshold: float | None = None,
                 state_check: Callable[[RobotState], bool] | str | None = None,
                 stage_rewards: Sequence[float] | None = None):
        super().__init__(env)
        from robot_rl.reward.classifier import RewardClassifier
        if isinstance(classifier, (str, Path)):
            classifier = RewardClassifier.load(classifier)
        self.classifier = classifier.eval()
        self.threshold = float(classifier.threshold if threshold is None else threshold)
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        self.state_check = parse_state_check(state_check) if isinstance(state_check, str) else state_check
        n = classifier.cfg.num_classes
        if stage_rewards is None:
            stage_rewards = [k / (n - 1) for k in range(n)]
        stage_rewards = [float(r) for r in stage_rewards]
        if len(stage_rewards) != n or not all(np.isfinite(stage_rewards)):
            raise ValueError(f"stage_rewards needs {n} finite numbers (one per class), got {stage_rewards}")
        self.stage_rewards = stage_rewards
        self.cameras = tuple(classifier.cfg.cameras)
        self.image_size = int(classifier.cfg.image_size)

    # ---- frames ---------------------------------------------------------------------------
    def _frames(self, obs: dict) -> dict[str, np.ndarray]:
        base = self.env.unwrapped
        state = getattr(base, "last_state", None)
        images = state.images if state is not None and state.images else {}
        out = {}
        for cam in self.cameras:
            img = obs.get(cam) if isinstance(obs, dict) else None
            if img is None or img.shape[:2] != (self.image_size, self.image_size):
                img = images.get(cam)
            if img is None or img.shape[:2] != (self.image_size, self.image_size):
                render = getattr(base.robot, "render", None)
                if render is None:
                    raise RuntimeError(f"the reward classifier needs camera {cam!r} at {self.image_size} px, "
                                       "which this env neither observes nor can render; use obs='pixels' "
                                       "with that camera")
                img = render(cam, self.image_size)
            out[cam] = np.ascontiguousarray(img)
        return out

    def classify(self, obs: dict) -> tuple[int, float]:
        """(stage, P(final class)) for the current frames."""
        probs = self.classifier.probs(self._frames(obs))[0]
        final = len(probs) - 1
        p_final = float(probs[final])
        if p_final >= self.threshold:
            return final, p_final
        return int(np.argmax(probs[:final])), p_final

    # ---- gymnasium ----------------------------------------------------------------------
    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        info = dict(info)
        info["ground_truth_success"] = bool(info.get("success", False))
        info["success"] = False
        return obs, info

    def step(self, action):
        obs, _, _, truncated, info = self.env.step(action)
        info = dict(info)
        stage, p_final = self.classify(obs)
        final = len(self.stage_rewards) - 1
        success = stage == final
        if success and self.state_check is not None:
            success = bool(self.state_check(self.env.unwrapped.last_state))
            if not success:  # the classifier saw the end, the state says not yet
                stage = final - 1 if final > 1 else 0
        info["ground_truth_success"] = bool(info.get("success", False))
        info["success"] = success
        info["stage"] = stage
        info["classifier_prob"] = p_final
        reward = self.stage_rewards[stage]
        terminated = success or bool(info.get("failure", False))
        return obs, reward, terminated, truncated, info
