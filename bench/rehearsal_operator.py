"""The rehearsal's operator: the person at the SpaceMouse, scripted, in a process of its own.

    python -m robot_rl.bench.rehearsal_operator --role demos  [--overrides JSON] [--report FILE]
    python -m robot_rl.bench.rehearsal_operator --role train  --console runs/x/actor.log

It is the only part of a rehearsal (with the bench itself) that reads the twin's ground truth
(`task/state`): its eyes. It acts only as a person does:
- hands on the SpaceMouse: /spacemouse/twist (TwistStamped, base frame) and /spacemouse/joy
  (Joy, drivers/teleop.py: gripper buttons held while it drives, success / failure / reset keys);
  the motion is the scripted expert's (tasks/experts.py) turned into the twist the actor's
  takeover turns back into the same action (robot_rl.actor.Takeover: action = R^T twist);
- hands in the scene: between episodes it puts the cube back where the task starts it. The
  twin has no hands, so this goes through the twin node's own `reset` service (the arm is put
  at the task's reset pose, the objects at theirs); nothing the tools run calls it for that;
- eyes on the console: the actor and deploy say PROMPT (tasks/apps/scene_pause.py) before each
  reset; the operator tails that console (`--console`), resets the scene and presses a key.

Roles (one per phase of the session, bench/rehearsal.py):
- demos:  drives every episode with the expert; presses success once the cube is up (ground
  truth), failure after `--attempt-timeout` s; then resets the scene.
- labels: drives the same way and HOLDS success while the cube is up, wandering a little
  (varied positives), for `--hold-s` s, then presses reset (ends the episode); a fraction
  `--near-miss` of the episodes stop lifting short of the success height (hard negatives).
- train:  watches the policy; takes over when it stalls (robot_rl.scripted_human, trigger
  "stall": the expert's distance to go has not fallen by `--stall-progress` m in
  `--stall-steps` steps, or it went astray), drives until the task moved on, hands back; resets
  the scene at every prompt. No success key: the classifier is the reward.
- deploy: only resets the scene at every prompt.

Every episode it saw (from one scene reset to the next) is a line of `--report` (JSON lines):
whether the ground truth reached success, its takeover steps, the keys it pressed. SIGINT or
SIGTERM stops it (exit 0) after a last idle message.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROLES = ("demos", "labels", "train", "deploy")


@dataclass
class OperatorConfig:
    role: str
    task: str = "pick_cube"
    overrides: dict[str, Any] = field(default_factory=dict)   # the run's task_overrides
    namespace: str = "/franka"
    console: str = ""               # train/deploy: the tool's console log holding its prompts
    report: str = ""                # JSON lines, one per episode seen
    hz: float = 10.0                # the operator's decisions per second (the task's control rate)
    publish_hz: float = 30.0        # teleop messages per second (the actor ignores them after 0.5 s)
    attempt_timeout_s: float = 20.0   # demos/labels: give up an attempt after this long
    hold_s: float = 2.0             # labels: hold success this long
    near_miss: float = 0.3          # labels: fraction of episodes stopped short of success
    # ... at this fraction of the lift height: up to 0.85 puts hard negatives just below the
    # success height (a first rehearsal with 0.2-0.7 had its classifier fire 1-3 cm early)
    near_miss_cut: tuple[float, float] = (0.3, 0.85)
    stall_steps: int = 15           # train: no progress in this many steps ...
    stall_progress: float = 0.005   # ... of this many m: take over
    max_takeover_steps: int = 40
    budget_steps: int = 60          # takeover steps per episode at most
    seed: int = 0

    def validate(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {self.role!r}")
        if self.role in ("train", "deploy") and not self.console:
            raise ValueError(f"role {self.role} resets the scene at the tool's prompts: give --console")
        if not (0 < self.hz <= 100 and 0 < self.publish_hz <= 200):
            raise ValueError(f"hz must be in (0, 100] and publish_hz in (0, 200], got {self.hz}, {self.publish_hz}")
        if not 0.0 <= self.near_miss <= 1.0:
            raise ValueError(f"near_miss must be in [0, 1], got {self.near_miss}")


class Hands:
    """The teleop device the operator holds: the latest twist and buttons, republished at
    publish_hz on a thread (a real SpaceMouse node streams too), so the tools never see it idle."""

    def __init__(self, node, publish_hz: float):
        from geometry_msgs.msg import TwistStamped
        from sensor_msgs.msg import Joy

        self._twist_pub = node.create_publisher(TwistStamped, "/spacemouse/twist", 10)
        self._joy_pub = node.create_publisher(Joy, "/spacemouse/joy", 10)
        self._msgs = (TwistStamped, Joy)
        self._lock = threading.Lock()
        self._twist, self._buttons = np.zeros(6), set()
        self.period = 1.0 / publish_hz
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="operator_hands")
        self._thread.start()

    def set(self, twist: np.ndarray | None = None, buttons: set[str] | frozenset[str] = frozenset()) -> None:
        with self._lock:
            self._twist = np.zeros(6) if twist is None else np.asarray(twist, float)
            self._buttons = set(buttons)
        self._publish()

    def press(self, key: str, hold_s: float = 0.3) -> None:
        """One press of an episode key (success, failure, reset), hands off the puck."""
        self.set(None, {key})
        time.sleep(hold_s)
        self.set(None)

    def _publish(self) -> None:
        from robot_rl.drivers.teleop import joy_buttons

        TwistStamped, Joy = self._msgs
        with self._lock:
            twist, buttons = self._twist.copy(), set(self._buttons)
        msg = TwistStamped()
        (msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z,
         msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z) = (float(v) for v in twist)
        self._twist_pub.publish(msg)
        self._joy_pub.publish(Joy(axes=[float(v) for v in twist], buttons=joy_buttons(buttons)))

    def _run(self) -> None:
        while not self.stop.wait(self.period):
            try:
                self._publish()
            except Exception:  # noqa: BLE001 - the context is shutting down
                return

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=2.0)


class Console:
    """The tool's console log as a person reads it: new PROMPT lines since the last look."""

    def __init__(self, path: str):
        self.path, self.offset = Path(path), 0

    def prompts(self) -> int:
        from robot_rl.tasks.apps.scene_pause import PROMPT

        if not self.path.exists():
            return 0
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1           # whole lines only
        self.offset += end
        return data[:end].decode(errors="replace").count(PROMPT)


class Operator:
    def __init__(self, cfg: OperatorConfig):
        import rclpy
        from rclpy.context import Context
        from rclpy.signals import SignalHandlerOptions

        from robot_rl import tasks
        from robot_rl.scripted_human import InterventionConfig, ScriptedHuman
        from robot_rl.tasks.experts import make_expert
        from robot_rl.tasks.ros.backend import RosRobot, RosRobotConfig

        cfg.validate()
        self.cfg = cfg
        self.spec = tasks.make_spec(cfg.task, **cfg.overrides)
        self.rng = np.random.default_rng(cfg.seed)
        self.context = Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        # Its eyes: the robot's topics plus the twin's ground truth; its scene hands: the reset service.
        self.robot = RosRobot(RosRobotConfig(namespace=cfg.namespace, task_state=True, reset_mode="service",
                                             control_hz=cfg.hz, image_size=self.spec.image_size,
                                             wrench_topic=self.spec.wrench_topic, connect_timeout=60.0),
                              context=self.context)
        # The expert reads a RobotEnv's spec, last state and safety box; this one is never
        # stepped: last_state is what the operator sees now.
        self.view = tasks.make_env(cfg.task, obs="pixels", robot=self.robot, **cfg.overrides).unwrapped
        self.expert = make_expert(cfg.task, self.view, noise=0.0, seed=cfg.seed)
        if self.expert is None:
            raise ValueError(f"task {cfg.task} has no scripted expert to operate with")
        self.human = ScriptedHuman(InterventionConfig(
            enabled=True, trigger="stall", stall_steps=cfg.stall_steps, stall_progress=cfg.stall_progress,
            min_takeover_steps=10, max_takeover_steps=cfg.max_takeover_steps, budget_steps=cfg.budget_steps),
            self.expert, seed=cfg.seed)
        self.hands = Hands(self.robot.node, cfg.publish_hz)
        self.console = Console(cfg.console) if cfg.console else None
        self.stop = threading.Event()
        self.episodes: list[dict[str, Any]] = []
        self.episode: dict[str, Any] = {}

    # -- what the operator sees
    def look(self) -> tuple[Any, dict[str, np.ndarray]]:
        state = self.robot.observe()
        self.view.last_state = state
        self.view._steps = max(self.view._steps, 1)     # the expert restarts only on our reset()
        return state, self.robot.task_state()

    def truth_success(self) -> bool:
        state, truth = self.look()
        return bool(self.spec.success(state, truth))

    # -- what the operator does
    def drive(self, action: np.ndarray, wander: float = 0.0, also: set[str] | frozenset[str] = frozenset()) -> None:
        """The expert's end-effector action as the base-frame twist (and the gripper button held)
        that the takeover maps back to it; `also`: more buttons held (labels: success)."""
        from robot_rl.controllers.rotations import quat_to_matrix as quat_to_rot

        rot = quat_to_rot(self.view.last_state.tcp_quat)
        a = np.asarray(action, float).copy()
        if wander:
            a[:3] = np.clip(a[:3] + self.rng.normal(0.0, wander, 3), -1.0, 1.0)
        twist = np.concatenate([rot @ a[:3], rot @ a[3:6]])
        self.hands.set(twist, {"gripper_close" if a[6] > 0 else "gripper_open", *also})

    def reset_scene(self) -> None:
        """Puts the cube (and the arm) where the task starts them: the twin's reset service."""
        self.hands.set(None)
        self.robot.reset(options=self.spec.sample_reset(self.rng))
        self.expert.reset()
        self.human.reset()
        self.view._steps = 1

    def new_episode(self) -> None:
        if self.episode:
            self.episodes.append(self.episode)
            if self.cfg.report:
                with open(self.cfg.report, "a") as f:
                    f.write(json.dumps(self.episode) + "\n")
        self.episode = {"index": len(self.episodes), "t_start": time.time(), "truth_success": False,
                        "takeover_steps": 0, "takeovers": 0, "steps_seen": 0, "keys": []}

    def press(self, key: str) -> None:
        self.episode.setdefault("keys", []).append(key)
        self.hands.press(key)

    def tick(self, t0: float, n: int) -> None:
        """Sleeps to the n-th decision after t0."""
        time.sleep(max(0.0, t0 + n / self.cfg.hz - time.monotonic()))

    # -- the roles
    def run(self) -> None:
        getattr(self, f"_run_{self.cfg.role}")()

    def _attempts(self, on_step) -> None:
        """demos/labels: attempt after attempt; on_step(step, state, truth) -> 'done' | None."""
        while not self.stop.is_set():
            self.reset_scene()
            self.new_episode()
            say("scene reset; driving")
            start = self.look()[0].tcp_pos.copy()
            t0, n, moving_since = time.monotonic(), 0, math.inf
            while not self.stop.is_set():
                n += 1
                self.tick(t0, n)
                state, truth = self.look()
                # The attempt's clock runs once the arm follows: the tool is recording (before,
                # it was still starting or resetting, and nothing the operator did moved it).
                if moving_since == math.inf and np.linalg.norm(state.tcp_pos - start) > 0.01:
                    moving_since = time.monotonic()
                self.episode["steps_seen"] += 1
                success = bool(self.spec.success(state, truth))
                self.episode["truth_success"] |= success
                if on_step(n, success) == "done":
                    break
                if time.monotonic() - moving_since > self.cfg.attempt_timeout_s:
                    self.press("failure" if self.cfg.role == "demos" else "reset")
                    say("attempt timed out")
                    break
            time.sleep(0.5)      # the tool saves the episode and starts its reset

    def _run_demos(self) -> None:
        def on_step(n: int, success: bool) -> str | None:
            if success:
                self.press("success")
                return "done"
            self.drive(self.expert.act())
            return None
        self._attempts(on_step)

    def _run_labels(self) -> None:
        state = {"since": None, "short": False, "cut": 0.0, "short_since": None}

        def on_step(n: int, success: bool) -> str | None:
            if n == 1:
                state.update(since=None, short=bool(self.rng.random() < self.cfg.near_miss),
                             cut=float(self.rng.uniform(*self.cfg.near_miss_cut)), short_since=None)
            action = self.expert.act()
            if state["short"] and self.expert.phase == "lift":
                z = self.view.last_state.tcp_pos[2]
                if z >= self.spec.cube_half_size + state["cut"] * self.spec.lift_height:
                    action[:3] = 0.0                     # hover short of the success height
                    state["short_since"] = state["short_since"] or n
                    if n - state["short_since"] > self.cfg.hold_s * self.cfg.hz:
                        self.press("reset")
                        return "done"
            if success and state["since"] is None:
                state["since"] = n
            if state["since"] is not None:
                if n - state["since"] > self.cfg.hold_s * self.cfg.hz:
                    self.hands.set(None)
                    self.press("reset")
                    return "done"
                self.drive(action, wander=0.6, also={"success"} if success else set())   # HOLD it
                return None
            self.drive(action)
            return None
        self._attempts(on_step)

    def _run_train(self) -> None:
        self._watch(intervene=True)

    def _run_deploy(self) -> None:
        self._watch(intervene=False)

    def _watch(self, intervene: bool) -> None:
        """Scene resets at the tool's prompts; between them, takeovers when the policy stalls."""
        armed_after = math.inf       # the arm is back at the reset pose: judge the policy
        t0, n = time.monotonic(), 0
        while not self.stop.is_set():
            n += 1
            self.tick(t0, n)
            if self.console.prompts():
                self.hands.set(None)
                self.reset_scene()
                self.new_episode()
                time.sleep(0.3)
                self.press("reset")          # "the scene is back"
                say(f"scene reset for episode {len(self.episodes) + 1}")
                armed_after = time.monotonic() + 1.0
                t0, n = time.monotonic(), 0
                continue
            if not self.episode:
                continue
            state, truth = self.look()
            self.episode["steps_seen"] += 1
            self.episode["truth_success"] |= bool(self.spec.success(state, truth))
            if not intervene or time.monotonic() < armed_after:
                continue
            action, human = self.human.step({}, np.zeros(7, np.float32))
            if human:
                self.episode["takeover_steps"] += 1
                self.drive(action)
            else:
                self.hands.set(None)
            self.episode["takeovers"] = self.human.takeovers

    def close(self) -> None:
        import rclpy

        self.new_episode()          # the last episode into the report
        self.hands.set(None)
        self.hands.close()
        self.robot.close()
        if self.context.ok():
            rclpy.shutdown(context=self.context)


def say(line: str) -> None:
    print(f"[operator] {line}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--task", default="pick_cube")
    p.add_argument("--overrides", default="{}", help="the run's task_overrides, JSON")
    p.add_argument("--namespace", default="/franka")
    p.add_argument("--console", default="", help="train/deploy: the tool's console log (its prompts)")
    p.add_argument("--report", default="", help="JSON lines: one per episode seen")
    p.add_argument("--attempt-timeout", type=float, default=20.0)
    p.add_argument("--hold-s", type=float, default=2.0)
    p.add_argument("--near-miss", type=float, default=0.3)
    p.add_argument("--stall-steps", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        cfg = OperatorConfig(role=args.role, task=args.task, overrides=json.loads(args.overrides),
                             namespace=args.namespace, console=args.console, report=args.report,
                             attempt_timeout_s=args.attempt_timeout, hold_s=args.hold_s,
                             near_miss=args.near_miss, stall_steps=args.stall_steps, seed=args.seed)
        operator = Operator(cfg)
    except (ValueError, TimeoutError, RuntimeError) as e:
        print(f"rehearsal operator: cannot start: {e}", file=sys.stderr)
        return 2
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: operator.stop.set())
    say(f"ready: role {cfg.role}, pid {os.getpid()}")
    try:
        operator.run()
    finally:
        operator.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
