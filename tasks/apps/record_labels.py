"""`robot-rl record-labels`: camera frames labelled success (1) / not yet (0) for the reward classifier.

    robot-rl record-labels --task pick_cube --out labels/pick [--input keyboard|spacemouse|expert]
                           [--positives 200] [--cameras wrist,front] [--ros]

Every control step records the task's cameras with a label: 1 while the operator HOLDS the
success key/button, 0 otherwise. It stops once `--positives` success frames are on disk (after
the episode in progress), and warns when the negatives are fewer than twice the positives
(a classifier that saw few failures calls too much a success). Hold the robot in the success
state a while to give many positives; move it around in near-misses for the hard negatives.

Inputs (the operator drives the robot and labels at the same time):
- keyboard (drivers.keyboard bindings): i/k j/l u/o move, q/e yaw, c/x close/open the gripper,
  HOLD s = success, r = end the episode, Ctrl-C = stop. A terminal sees key repeats only, so
  "held" means "repeated within 0.3 s"; an input device (--keyboard-device /dev/input/eventN)
  sees real presses and releases.
- spacemouse: the 6-axis puck moves; the RIGHT button toggles the gripper; HOLD the LEFT
  button = success. End an episode by letting it time out (max_steps) or with Ctrl-C to stop.
- ros (with --ros): the teleop topics of the live graph, /spacemouse/twist moves and
  /spacemouse/joy's buttons (drivers/teleop.py) label: HOLD success = success, reset ends the
  episode, the gripper buttons close/open (tasks.ros.teleop.RosTeleopSource, as record-demos --ros).
  Each episode starts with a Cartesian reset to the task's reset pose (`--reset-mode`, precision
  gains on `--gains-node`), as record-demos --ros and the actor; `service` is the joint home.
- expert (the twin only): the scripted expert drives and the twin's ground truth labels the
  frames (spec.success), through the same recording path. After the first success it keeps
  holding (and wandering) for `--hold-steps` steps: more, and more varied, positives.
  `--near-miss` of the episodes are sabotaged for the pick tasks (it stops lifting 3+ cm short
  of the success height, or lets go there) so the negatives include near-misses; `--noise`
  perturbs the expert's motions.

Storage: robot_rl.reward.labels (npz chunks + index.json, atomic renames, episode ids).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

log = logging.getLogger(__name__)


class LabelBalanceWarning(UserWarning):
    """Fewer negatives than twice the positives."""


@dataclass
class StepInput:
    action: np.ndarray         # (7,) env action
    end_episode: bool = False
    stop: bool = False


class LabelSource(Protocol):
    def start_episode(self, env, episode: int) -> None: ...
    def label_now(self, env) -> bool: ...       # the label of the frame just observed
    def step(self, env, obs) -> StepInput: ...
    def close(self) -> None: ...


def ground_truth_success(env) -> bool:
    base = env.unwrapped
    truth = base.robot.task_state()
    if not truth:
        raise RuntimeError("--input expert needs the twin's ground truth; this robot has none")
    return bool(base.task.success(base.last_state, truth))


class ExpertSource:
    """The scripted expert drives; the twin's ground truth (spec.success) labels."""

    def __init__(self, env, task: str, noise: float = 0.1, near_miss: float = 0.0,
                 hold_steps: int = 10, seed: int = 0):
        from robot_rl.tasks.experts import make_expert
        self.expert = make_expert(task, env, noise=noise, seed=seed)
        self.task, self.near_miss, self.hold_steps = task, float(near_miss), int(hold_steps)
        self.rng = np.random.default_rng(seed + 7)
        self.sabotage = ""
        self._since_success: int | None = None

    def start_episode(self, env, episode: int) -> None:
        self._since_success = None
        self.sabotage = ""
        from robot_rl.tasks.experts import PickCubeExpert
        if isinstance(self.expert, PickCubeExpert) and self.rng.random() < self.near_miss:
            self.sabotage = str(self.rng.choice(["short_lift", "let_go"]))
            # Where it stops or lets go: a random 20-70% of the lift height. Near the success
            # state, but 3+ cm short of it, so that a camera can tell them apart.
            self._cut = float(self.rng.uniform(0.2, 0.7))

    def label_now(self, env) -> bool:
        return ground_truth_success(env)

    def step(self, env, obs) -> StepInput:
        base = env.unwrapped
        action = self.expert.act(obs)
        if self.sabotage and self.expert.phase == "lift":
            spec, z = base.task, base.last_state.tcp_pos[2]
            cut_z = spec.cube_half_size + self._cut * spec.lift_height
            if z >= cut_z:
                action[:3] = 0.0        # hover below the success height
                if self.sabotage == "let_go":
                    action[6] = -1.0
        if self._since_success is not None:
            # Holding the success: wander around it (as an operator would) so that the positives
            # are not one repeated view, and dips below the success height label as negatives.
            action[:3] = np.clip(action[:3] + self.rng.normal(0.0, 0.6, 3), -1.0, 1.0)
        return StepInput(action=action)

    def after_step(self, success: bool) -> bool:
        """True when the episode should end: hold_steps frames after the first success."""
        if success and self._since_success is None:
            self._since_success = 0
        if self._since_success is not None:
            self._since_success += 1
            return self._since_success > self.hold_steps
        return False

    def close(self) -> None:
        pass


def _twist_to_action(env, twist: np.ndarray, gripper: float) -> np.ndarray:
    """Base-frame twist (normalised units) -> the env's end-effector-frame action."""
    from robot_rl.controllers.rotations import quat_to_matrix as quat_to_rot
    rot = quat_to_rot(env.unwrapped.last_state.tcp_quat)
    a = np.zeros(7, dtype=np.float32)
    a[:3] = rot.T @ twist[:3]
    a[3:6] = rot.T @ twist[3:]
    a[6] = 1.0 if gripper >= 0.5 else -1.0
    return np.clip(a, -1.0, 1.0)


class KeyboardSource:
    """robot_rl.drivers.keyboard teleop; the success key counts while it is held (or repeating)."""

    def __init__(self, device: str = ""):
        from robot_rl.drivers.keyboard import EvdevKeys, KeyboardTeleop, KeyReader, TerminalKeys

        self.teleop = KeyboardTeleop()
        self._held_success = False
        self._ended = threading.Event()
        self._reset = threading.Event()
        keys = EvdevKeys(device) if device.startswith("/dev/input/") else TerminalKeys(device)
        success_key, reset_key = self.teleop.bindings.success, self.teleop.bindings.reset
        teleop = self.teleop
        original_press, original_release = teleop.press, teleop.release

        def press(key, t, held=False):
            if key == success_key and held:
                self._held_success = True  # an input device: held until its release
            if key == reset_key:
                self._reset.set()
            return original_press(key, t, held)

        def release(key, t):
            if key == success_key:
                self._held_success = False
            original_release(key, t)

        teleop.press, teleop.release = press, release  # type: ignore[method-assign]
        self.reader = KeyReader(keys, teleop, time.monotonic, on_key=lambda t: None,
                                on_end=lambda why: self._ended.set())
        self.gripper = 0.0

    def start_episode(self, env, episode: int) -> None:
        self._reset.clear()
        self.gripper = env.unwrapped.gripper_command
        print(f"episode {episode}: drive with i/k j/l u/o q/e, c/x gripper; HOLD s for success; "
              "r ends the episode, Ctrl-C stops", flush=True)

    def label_now(self, env) -> bool:
        from robot_rl.drivers.teleop import SUCCESS
        _, buttons = self.teleop.snapshot(time.monotonic())
        return self._held_success or bool(buttons[SUCCESS])

    def step(self, env, obs) -> StepInput:
        from robot_rl.drivers.teleop import gripper_from_buttons
        cmd, buttons = self.teleop.snapshot(time.monotonic())
        g = gripper_from_buttons(buttons)
        if g is not None:
            self.gripper = g
        return StepInput(action=_twist_to_action(env, cmd, self.gripper),
                         end_episode=self._reset.is_set(), stop=self._ended.is_set())

    def close(self) -> None:
        self.reader.stop()


class SpaceMouseSource:
    """SpaceMouse teleop: the puck moves, right button toggles the gripper, left button held = success."""

    def __init__(self, path: str = ""):
        from robot_rl.drivers.spacemouse import HidReportSource, SpaceMouseReader, TeleopMapping

        self.mapping = TeleopMapping()
        self._lock = threading.Lock()
        self._axes = np.zeros(6)
        self._buttons = 0
        self._toggle = False
        self._error: Exception | None = None

        def on_update(state, kind, t):
            with self._lock:
                self._axes = state.axes()
                if state.button(1) and not self._buttons >> 1 & 1:
                    self._toggle = True
                self._buttons = state.buttons

        def on_error(e):
            self._error = e

        self.reader = SpaceMouseReader(HidReportSource(path), on_update, on_error)
        self.gripper = 0.0

    def start_episode(self, env, episode: int) -> None:
        self.gripper = env.unwrapped.gripper_command
        print(f"episode {episode}: move the SpaceMouse; right button toggles the gripper; HOLD the "
              "left button for success; Ctrl-C stops", flush=True)

    def label_now(self, env) -> bool:
        with self._lock:
            return bool(self._buttons & 1)

    def step(self, env, obs) -> StepInput:
        if self._error is not None:
            raise RuntimeError(f"SpaceMouse lost: {self._error}")
        with self._lock:
            axes, toggle, self._toggle = self._axes.copy(), self._toggle, False
        if toggle:
            self.gripper = 0.0 if self.gripper >= 0.5 else 1.0
        return StepInput(action=_twist_to_action(env, self.mapping.command(axes), self.gripper))

    def close(self) -> None:
        self.reader.stop()


class RosTopicSource:
    """The graph's teleop topics (tasks.ros.teleop): the SpaceMouse or keyboard node drives and labels."""

    def __init__(self, teleop: Any = None):
        from robot_rl.tasks.ros.teleop import RosTeleopSource
        self.teleop = teleop or RosTeleopSource()
        self.gripper = 0.0
        self._reset_held = False

    def start_episode(self, env, episode: int) -> None:
        self.gripper = env.unwrapped.gripper_command
        print(f"episode {episode}: move with the SpaceMouse; HOLD the success button for success; "
              "the reset button ends the episode; Ctrl-C stops", flush=True)

    def snapshot(self) -> tuple[np.ndarray, list[int]]:
        """The teleop state (for the scene pause); a reset button held now ends no episode."""
        from robot_rl.drivers.teleop import RESET
        twist, buttons = self.teleop.snapshot()
        self._reset_held = len(buttons) > RESET and bool(buttons[RESET])
        return twist, buttons

    def label_now(self, env) -> bool:
        from robot_rl.drivers.teleop import SUCCESS
        _, buttons = self.teleop.snapshot()
        return len(buttons) > SUCCESS and bool(buttons[SUCCESS])

    def step(self, env, obs) -> StepInput:
        from robot_rl.drivers.teleop import RESET, gripper_from_buttons
        twist, buttons = self.teleop.snapshot()
        g = gripper_from_buttons(buttons)
        if g is not None:
            self.gripper = g
        reset = len(buttons) > RESET and bool(buttons[RESET])
        end, self._reset_held = reset and not self._reset_held, reset     # once per press
        return StepInput(action=_twist_to_action(env, twist, self.gripper), end_episode=end)

    def close(self) -> None:
        self.teleop.close()


def _frames(env, obs, cameras) -> dict[str, np.ndarray]:
    return {cam: obs[cam] for cam in cameras}


def record_labels(env, source: LabelSource, writer, positives: int = 200, max_episodes: int = 1000,
                  seed: int = 0, scene_pause: Callable[[int], Any] | None = None) -> dict[str, Any]:
    """Runs episodes, labelling every frame (the reset frame and each step's), until `positives`
    success frames are recorded (finishing the episode in progress) or `max_episodes` ran.
    scene_pause(episode), when given, runs before each reset (the operator puts the scene back)."""
    if positives < 1:
        raise ValueError(f"positives must be >= 1, got {positives}")
    cameras = writer.cameras
    episodes, frames, stopped, started = 0, 0, False, time.perf_counter()
    is_expert = isinstance(source, ExpertSource)
    first_episode = writer.next_episode
    try:
        while writer.counts()[-1] < positives and episodes < max_episodes and not stopped:
            episode = first_episode + episodes
            if scene_pause is not None:
                scene_pause(episode)
            obs, info = env.reset(seed=seed + episode)
            source.start_episode(env, episode)
            step = 0
            writer.add(_frames(env, obs, cameras), int(source.label_now(env)), episode, step)
            while True:
                inp = source.step(env, obs)
                if inp.stop:
                    stopped = True
                    break
                obs, reward, terminated, truncated, info = env.step(inp.action)
                step += 1
                label = bool(source.label_now(env))
                writer.add(_frames(env, obs, cameras), int(label), episode, step)
                # A success ends nothing here: the operator (or the expert) keeps the robot in
                # the success state while its frames are labelled. Truncation and failure end it.
                if truncated or info.get("failure", False) or inp.end_episode:
                    break
                if is_expert and source.after_step(label):
                    break
            writer.flush()  # every finished episode is durable
            episodes += 1
            frames += step + 1
            counts = writer.counts()
            log.info("episode %d: %d frames; totals: %d positives, %d negatives",
                     episode, step + 1, counts[-1], sum(counts[:-1]))
    finally:
        writer.close()
        source.close()
    counts = writer.counts()
    stats = {"episodes": episodes, "frames_this_session": frames, "positives": counts[-1],
             "negatives": int(sum(counts[:-1])), "wall_s": time.perf_counter() - started,
             "stopped_by_operator": stopped}
    if stats["negatives"] < 2 * stats["positives"]:
        msg = (f"only {stats['negatives']} negative frames for {stats['positives']} positives "
               f"(fewer than 2x): record more failures and near-misses, or the classifier will "
               f"call too much a success")
        warnings.warn(msg, LabelBalanceWarning, stacklevel=2)
        log.warning(msg)
        stats["warning"] = msg
    return stats


def _parse_cameras(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip())


def cmd_record_labels(args: argparse.Namespace) -> int:
    from robot_rl import tasks
    from robot_rl.reward.labels import LabelWriter

    from robot_rl.tasks.apps.record_demos import parse_overrides

    try:
        overrides = parse_overrides(args.override or [])
    except ValueError as e:
        raise SystemExit(f"robot-rl record-labels: {e}") from None
    if args.cameras:
        overrides["cameras"] = _parse_cameras(args.cameras)
    if args.image_size:
        overrides["image_size"] = args.image_size
    if args.input == "ros" and not args.ros:
        raise SystemExit("--input ros reads the graph's teleop topics; add --ros")
    if not 0.0 <= args.scene_reset_timeout <= 3600.0:
        raise SystemExit(f"robot-rl record-labels: --scene-reset-timeout must be in [0, 3600] s, "
                         f"got {args.scene_reset_timeout}")
    if args.scene_reset_timeout > 0 and args.input != "ros":
        raise SystemExit("robot-rl record-labels: --scene-reset-timeout waits for a button of the "
                         "graph's teleop; use it with --ros --input ros")
    if args.ros:
        if args.input == "expert":
            raise SystemExit("--input expert labels with the twin's ground truth; it needs the "
                             "in-process twin, not --ros")
        from robot_rl.tasks.ros.backend import make_ros_env
        # As record-demos --ros and the actor: a Cartesian reset to the task's reset pose (plus
        # its random range) through the controller; the driver's joint home is the recovery path.
        env = make_ros_env(args.task, obs="pixels", seed=args.seed, namespace=args.namespace,
                           task_state=False, robot_options={"reset_mode": args.reset_mode,
                                                            "gains_node": args.gains_node},
                           **overrides)
    else:
        env = tasks.make_env(args.task, obs="pixels", seed=args.seed, **overrides)
    spec = env.unwrapped.task
    try:
        if args.input == "expert":
            source = ExpertSource(env, args.task, noise=args.noise, near_miss=args.near_miss,
                                  hold_steps=args.hold_steps, seed=args.seed)
        elif args.input == "keyboard":
            source = KeyboardSource(args.keyboard_device)
        elif args.input == "ros":
            try:
                source = RosTopicSource()
            except TimeoutError as e:
                raise SystemExit(f"robot-rl record-labels: {e}") from None
        else:
            source = SpaceMouseSource(args.spacemouse_path)
        writer = LabelWriter(args.out, spec.cameras, spec.image_size, task=args.task)
        from robot_rl.tasks.apps.scene_pause import wait_for_scene_reset

        def pause(episode: int) -> None:
            wait_for_scene_reset(source, args.scene_reset_timeout, lambda line: print(
                f"record-labels: episode {episode}: {line}", file=sys.stderr, flush=True))
        stats = record_labels(env, source, writer, positives=args.positives,
                              max_episodes=args.max_episodes, seed=args.seed * 100_000,
                              scene_pause=pause if args.scene_reset_timeout > 0 else None)
    finally:
        env.close()
    print(json.dumps(stats))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("record-labels", help="record success-labelled camera frames for the reward classifier")
    p.add_argument("--task", required=True)
    p.add_argument("--out", required=True, help="label directory (created, or appended to)")
    p.add_argument("--input", choices=["keyboard", "spacemouse", "expert", "ros"], default="keyboard",
                   help="ros (with --ros): the graph's /spacemouse/twist and /spacemouse/joy")
    p.add_argument("--positives", type=int, default=200, help="stop after this many success frames")
    p.add_argument("--max-episodes", type=int, default=1000)
    p.add_argument("--cameras", default="", help="comma-separated (default: the task's cameras)")
    p.add_argument("--image-size", type=int, default=0, help="default: the task's image size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise", type=float, default=0.1, help="expert: motion noise")
    p.add_argument("--near-miss", type=float, default=0.3, help="expert: fraction of sabotaged episodes")
    p.add_argument("--hold-steps", type=int, default=10, help="expert: steps kept after the first success")
    p.add_argument("--ros", action="store_true", help="drive the robot over ROS 2 (hardware or twin node)")
    p.add_argument("--namespace", default=None, help="--ros: the robot's namespace (default: the task's)")
    p.add_argument("--reset-mode", choices=["cartesian", "service"], default="cartesian",
                   help="--ros: reset through the controller to the task's reset pose, or the driver's reset service")
    p.add_argument("--gains-node", default="", help="--ros: node whose impedance gains go to the precision "
                   "profile during resets, e.g. /franka/controller ('' = keep)")
    p.add_argument("--override", action="append", metavar="KEY=VALUE",
                   help="a task field, e.g. tcp_start_xy_range=0; repeatable")
    p.add_argument("--keyboard-device", default="", help="tty path or /dev/input/eventN (default: this terminal)")
    p.add_argument("--spacemouse-path", default="", help="HID path (default: the first SpaceMouse)")
    p.add_argument("--scene-reset-timeout", type=float, default=0.0, help="--input ros: before each "
                   "episode, wait for a new press of any button (the scene is reset) or this many s (0: no pause)")
    p.set_defaults(func=cmd_record_labels)
