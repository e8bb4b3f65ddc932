"""`robot-rl record-demos`: demos from a SpaceMouse, a keyboard or the scripted expert, into an
episode dataset (robot_rl.datasets, docs/datasets.md).

    robot-rl record-demos --task pick_cube --episodes 20 --out demos/pick [--input spacemouse|keyboard|expert]
                          [--obs state|pixels] [--keyboard-device PATH] [--hz HZ] [--max-steps N]
    robot-rl record-demos --ros --task pick_cube --obs pixels --episodes 20 --out demos/pick
                          [--namespace /franka] [--reset-mode cartesian|service] [--gains-node NODE]

--ros records from the live graph (a real arm brought up with `robot-rl up franka`, or the twin
node): the robot over the topic contract (tasks.ros.backend, no ground-truth topic, a Cartesian
reset to the task's reset pose) and the operator from the teleop topics /spacemouse/twist and
/spacemouse/joy (tasks.ros.teleop: the SpaceMouse or keyboard node), with the same marks from
the Joy buttons (success, failure, reset = re-record). Ctrl-C stops.

Every input drives the env through the same `Operator` interface: an action per control step and
marks (success, failure, re-record, stop). Human inputs go through the actor's own takeover path
(robot_rl.actor.Takeover: the teleop twist in the base frame, rotated into the end-effector
frame); in the twin the scripted expert stands in for the human through the same loop.

Keys (keyboard, and the terminal next to a SpaceMouse): s success, f failure, r re-record,
Ctrl-C stop; motion i/k j/l u/o q/e, c close, x open, space takeover (drivers/keyboard.py).
The SpaceMouse's left/right buttons close/open the gripper; Joy buttons 2..4 (success, failure,
reset) mark the episode where a device has them.

An episode ends on the env's success (saved), the operator's success mark (saved), the
operator's failure mark or the env's failure/time limit (discarded), a re-record mark
(discarded, recorded again) or stop (discarded, recording ends). Saved episodes are on disk
(fsynced) before the next one starts; if the disk is full the episode stays in memory and is
retried after each following episode. A JSON summary ends the run (stdout); progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable, Protocol

import numpy as np

MARKS = ("success", "failure", "rerecord", "stop")


class Operator(Protocol):
    """Whoever chooses the actions: a human through a teleop device, or the scripted expert."""

    source: str              # dataset metadata: "spacemouse", "keyboard", "expert"
    realtime: bool           # a human needs the loop paced at the control rate

    def act(self, obs: dict, info: dict) -> np.ndarray: ...
    def poll_marks(self) -> set[str]: ...   # new marks since the last call, a subset of MARKS
    def close(self) -> None: ...


class ExpertOperator:
    """The scripted expert in the human's seat; it never marks: the env's success decides."""

    source = "expert"
    realtime = False

    def __init__(self, expert: Any):
        self.expert = expert

    def act(self, obs: dict, info: dict) -> np.ndarray:
        return self.expert.act(obs, info)

    def poll_marks(self) -> set[str]:
        return set()

    def close(self) -> None:
        pass


class TeleopSource(Protocol):
    """A teleop device as the Joy contract of drivers/teleop.py: a base-frame twist and buttons."""

    ended: str | None        # why the input ended (end of input, Ctrl-C), None while it runs

    def snapshot(self) -> tuple[np.ndarray, list[int]]: ...
    def close(self) -> None: ...


class KeyboardSource:
    """robot_rl.drivers.keyboard over a terminal (stdin, or a tty/pty path) or an input device."""

    def __init__(self, device: str = ""):
        from robot_rl.drivers.errors import DeviceNotFoundError
        from robot_rl.drivers.keyboard import EvdevKeys, KeyboardTeleop, KeyReader, TerminalKeys

        self.ended: str | None = None
        self.teleop = KeyboardTeleop()
        try:
            keys = EvdevKeys(device) if device.startswith("/dev/input/") else TerminalKeys(device)
        except OSError as e:
            raise DeviceNotFoundError(f"keyboard input {device or 'stdin'}: {e}") from e
        self.raw_stdin = not device
        self.reader = KeyReader(keys, self.teleop, time.monotonic, lambda t: None, self._on_end)

    def _on_end(self, why: str) -> None:
        self.ended = why

    def snapshot(self) -> tuple[np.ndarray, list[int]]:
        return self.teleop.snapshot(time.monotonic())

    def close(self) -> None:
        self.reader.stop()


class SpaceMouseSource:
    """A 3Dconnexion device over hidapi (drivers.spacemouse); fails clearly when none is attached."""

    def __init__(self, device: str = "", button_close: int = 0, button_open: int = 1,
                 reports: Any = None):
        """reports: a drivers.spacemouse ReportSource (e.g. a ReplayReportSource of a recording)
        instead of the device."""
        from robot_rl.drivers.spacemouse import HidReportSource, SpaceMouseReader, TeleopMapping

        self.ended: str | None = None
        self.mapping = TeleopMapping()
        self.button_close, self.button_open = button_close, button_open
        self._state = None
        source = reports if reports is not None else HidReportSource(path=device)
        self.reader = SpaceMouseReader(source, self._on_update, self._on_error)

    def _on_update(self, state: Any, kind: str, t: float) -> None:
        self._state = state

    def _on_error(self, e: Exception) -> None:
        self.ended = f"SpaceMouse lost: {e}"

    def snapshot(self) -> tuple[np.ndarray, list[int]]:
        from robot_rl.drivers.teleop import joy_buttons

        state = self._state
        if state is None:
            return np.zeros(6), joy_buttons()
        active = set()
        if state.button(self.button_close):
            active.add("gripper_close")
        elif state.button(self.button_open):
            active.add("gripper_open")
        n_raw = max(self.button_close, self.button_open, state.buttons.bit_length() - 1) + 1
        return self.mapping.command(state.axes()), joy_buttons(active, [int(state.button(i)) for i in range(n_raw)])

    def close(self) -> None:
        self.reader.stop()


class TeleopOperator:
    """A human on teleop sources (their twists add, their buttons OR), through the actor's Takeover."""

    realtime = True

    def __init__(self, source: str, devices: list[TeleopSource], env: Any):
        from robot_rl.actor import Takeover, tcp_rotation

        self.source, self.devices, self.env = source, devices, env
        self.takeover = Takeover()
        self._rotation = lambda: tcp_rotation(self.env)
        self._held: set[int] = set()

    def snapshot(self) -> tuple[np.ndarray, list[int]]:
        """The devices' twists added and their buttons ORed (a teleop source, for the scene pause)."""
        return self._read()

    def _read(self) -> tuple[np.ndarray, list[int]]:
        twist, buttons = np.zeros(6), []
        for d in self.devices:
            t, b = d.snapshot()
            twist = twist + t
            width = max(len(buttons), len(b))
            buttons = [max(buttons[i] if i < len(buttons) else 0, b[i] if i < len(b) else 0)
                       for i in range(width)]
        return twist, buttons

    def act(self, obs: dict, info: dict) -> np.ndarray:
        from robot_rl.drivers.teleop import TAKEOVER, gripper_from_buttons

        twist, buttons = self._read()
        self.takeover.on_twist(twist)
        self.takeover.on_joy(gripper_from_buttons(buttons), bool(buttons[TAKEOVER]))
        action = self.takeover.action(self._rotation())
        return np.zeros(7, np.float32) if action is None else action   # idle: hold still

    def poll_marks(self) -> set[str]:
        from robot_rl.drivers.teleop import FAILURE, RESET, SUCCESS

        _, buttons = self._read()
        pressed = {i for i in (SUCCESS, FAILURE, RESET) if i < len(buttons) and buttons[i]}
        rising, self._held = pressed - self._held, pressed   # a held key marks once
        marks = {name for i, name in ((SUCCESS, "success"), (FAILURE, "failure"), (RESET, "rerecord"))
                 if i in rising}
        if any(d.ended for d in self.devices):
            marks.add("stop")
        return marks

    def close(self) -> None:
        for d in self.devices:
            d.close()


# ---------------------------------------------------------------------- the recording loop

def record_episode(env: Any, operator: Operator, seed: int, hz: float,
                   on_start: Callable[[], None] = lambda: None) -> tuple[str, Any, dict]:
    """Runs one episode; returns (outcome, EpisodeBuilder, last info). outcome: "success-env",
    "success-operator", "failure-env" (task failure or time limit), "failure-operator",
    "rerecord" or "stop". on_start() runs once the env is reset, before the first step."""
    from robot_rl.datasets import EpisodeBuilder

    obs, info = env.reset(seed=seed)
    builder = EpisodeBuilder(obs)
    on_start()
    period = 1.0 / hz if hz > 0 else 0.0
    next_tick = time.monotonic()
    while True:
        marks = operator.poll_marks()
        if "stop" in marks:
            return "stop", builder, info
        if "rerecord" in marks:
            return "rerecord", builder, info
        if "failure" in marks:
            return "failure-operator", builder, info
        if "success" in marks and len(builder):
            return "success-operator", builder, info
        action = operator.act(obs, info)
        next_obs, reward, terminated, truncated, info = env.step(action)
        builder.add(action, reward, next_obs, terminated, truncated,
                    grasp_penalty=info.get("grasp_penalty", 0.0), intervention=True)
        obs = next_obs
        if info.get("success", False):
            return "success-env", builder, info
        if terminated or truncated:
            return "failure-env", builder, info
        if period:
            next_tick += period
            time.sleep(max(0.0, next_tick - time.monotonic()))
            next_tick = max(next_tick, time.monotonic() - period)   # a slow step does not bunch up


def record_demos(env: Any, operator: Operator, dataset: Any, episodes: int, task: str, seed: int = 0,
                 hz: float = 0.0, max_attempts: int | None = None,
                 say: Callable[[str], None] = print, scene_reset_timeout: float = 0.0) -> dict[str, Any]:
    """Records until `episodes` successful episodes are saved, the operator stops (a stop mark
    or Ctrl-C), or `max_attempts` attempts are used. Returns the summary.

    scene_reset_timeout > 0 (a human operator): before each attempt the tool says so and waits
    for a new press of any button (the scene is set) or the timeout (tasks/apps/scene_pause.py); the
    arm holds meanwhile. The press that ends the pause marks nothing."""
    from robot_rl.tasks.apps.scene_pause import wait_for_scene_reset
    from robot_rl.datasets import DatasetWriteError

    robot_env = env.unwrapped
    control_hz = float(robot_env.task.control_hz)
    counts = {"recorded": 0, "failures": 0, "rerecords": 0, "attempts": 0}
    written: list[dict] = []
    stopped, write_error = False, None
    started = time.time()
    while counts["recorded"] < episodes and not stopped:
        if max_attempts is not None and counts["attempts"] >= max_attempts:
            break
        n = counts["recorded"] + 1
        episode_seed = seed + counts["attempts"]
        counts["attempts"] += 1
        t0 = time.time()
        try:
            if scene_reset_timeout > 0:
                wait_for_scene_reset(operator, scene_reset_timeout, lambda line: say(f"episode {n}/{episodes}: {line}"))
                operator.poll_marks()       # the pause's press is not a mark of the next episode
            outcome, builder, info = record_episode(
                env, operator, episode_seed, hz, on_start=lambda: say(
                    f"episode {n}/{episodes} (attempt {counts['attempts']}, seed {episode_seed}): recording"))
        except KeyboardInterrupt:   # Ctrl-C outside raw mode: a stop like any other
            outcome, builder, info = "stop", None, {}
        steps = len(builder) if builder is not None else 0
        if outcome == "stop":
            stopped = True
            say(f"episode {n}/{episodes}: stopped by the operator after {steps} steps; discarded")
            continue
        if outcome == "rerecord":
            counts["rerecords"] += 1
            say(f"episode {n}/{episodes}: re-record asked after {steps} steps; discarded")
            continue
        if outcome.startswith("failure"):
            counts["failures"] += 1
            why = "failure mark" if outcome == "failure-operator" else "no success (task failure or time limit)"
            say(f"episode {n}/{episodes}: {why} after {steps} steps; discarded")
            continue
        by = outcome.split("-")[1]
        ep = builder.build(task=task, success=True, source=operator.source, seed=episode_seed,
                           success_source=by, started_at=t0, ended_at=time.time(),
                           control_hz=control_hz, obs=robot_env.obs_mode)
        if by == "operator" and not info.get("ground_truth", True):
            # No ground truth (a real robot): the operator's mark is the sparse success reward.
            ep.rewards[-1] = 1.0
            ep.terminated[-1] = True
        ep.metadata["return"] = float(ep.rewards.sum())
        counts["recorded"] += 1
        try:
            written.extend(dataset.retry() if dataset.pending else [])
            meta = dataset.append(ep)
            written.append(meta)
            write_error = None
            say(f"episode {n}/{episodes}: success ({by}), {len(ep)} steps; saved as episode "
                f"{meta['index']} in {dataset.directory}")
        except DatasetWriteError as e:
            write_error = str(e)
            say(f"episode {n}/{episodes}: success ({by}), {len(ep)} steps; NOT SAVED YET: {e}")
    if dataset.pending:
        try:
            written.extend(dataset.retry())
            write_error = None
        except DatasetWriteError as e:
            write_error = str(e)
            say(f"{len(dataset.pending)} recorded episode(s) could not be written and are lost "
                f"when this process ends: {e}")
    return {"task": task, "input": operator.source, "out": str(dataset.directory),
            "requested": episodes, "recorded": counts["recorded"], "written": len(written),
            "pending": len(dataset.pending), "attempts": counts["attempts"],
            "failures": counts["failures"], "rerecords": counts["rerecords"], "stopped": stopped,
            "dataset_episodes": len(dataset), "write_error": write_error,
            "episodes": [{"index": m["index"], "length": m["length"],
                          "success_source": m.get("success_source")} for m in written],
            "wall_s": round(time.time() - started, 3)}


# ---------------------------------------------------------------------- CLI

def make_operator(kind: str, env: Any, task: str, seed: int, noise: float, keyboard_device: str,
                  spacemouse_device: str) -> Any:
    if kind == "expert":
        from robot_rl.tasks.experts import make_expert
        return ExpertOperator(make_expert(task, env, noise=noise, seed=seed))
    if kind == "keyboard":
        return TeleopOperator("keyboard", [KeyboardSource(keyboard_device)], env)
    if kind == "ros":
        from robot_rl.tasks.ros.teleop import RosTeleopSource
        return TeleopOperator("ros_teleop", [RosTeleopSource()], env)
    if kind == "spacemouse":
        devices: list[Any] = [SpaceMouseSource(spacemouse_device)]
        # Marks come from the keyboard of the terminal next to it, when there is one.
        if keyboard_device or sys.stdin.isatty():
            try:
                devices.append(KeyboardSource(keyboard_device))
            except BaseException:
                devices[0].close()
                raise
        return TeleopOperator("spacemouse", devices, env)
    raise ValueError(f"unknown input {kind!r}; use spacemouse, keyboard or expert")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """--override KEY=VALUE items -> task field overrides (VALUE read as YAML: 0, [], [front]).
    Recordings meant for a run take the run's task_overrides, so that their observations and
    reset pose are the run's (e.g. cameras=[] for a proprio-only policy)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--override {item!r}: use KEY=VALUE, e.g. tcp_start_xy_range=0")
        try:
            out[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"--override {item!r}: the value is not YAML ({e})") from None
    return out


def cmd_record_demos(args: argparse.Namespace) -> int:
    from robot_rl import tasks
    from robot_rl.drivers.errors import DeviceNotFoundError
    from robot_rl.datasets import EpisodeDataset

    if args.episodes < 1:
        print("robot-rl record-demos: --episodes must be >= 1", file=sys.stderr)
        return 2
    try:
        overrides = parse_overrides(args.override or [])
    except ValueError as e:
        print(f"robot-rl record-demos: {e}", file=sys.stderr)
        return 2
    if args.max_steps:
        overrides["max_steps"] = args.max_steps
    if not 0.0 <= args.scene_reset_timeout <= 3600.0:
        print(f"robot-rl record-demos: --scene-reset-timeout must be in [0, 3600] s, got {args.scene_reset_timeout}",
              file=sys.stderr)
        return 2
    if args.scene_reset_timeout > 0 and args.input == "expert":
        print("robot-rl record-demos: --scene-reset-timeout waits for a human's key; --input expert has none",
              file=sys.stderr)
        return 2
    if args.ros:
        if args.input == "expert":
            print("robot-rl record-demos: --input expert needs the in-process twin, not --ros", file=sys.stderr)
            return 2
        from robot_rl.tasks.ros.backend import make_ros_env
        try:
            env = make_ros_env(args.task, obs=args.obs, seed=args.seed, namespace=args.namespace,
                               task_state=False, robot_options={"reset_mode": args.reset_mode,
                                                                "gains_node": args.gains_node},
                               **overrides)
        except (ValueError, TimeoutError) as e:
            print(f"robot-rl record-demos: {e}", file=sys.stderr)
            return 2
        args.input = "ros"
    else:
        try:
            env = tasks.make_env(args.task, obs=args.obs, **overrides)
        except ValueError as e:
            print(f"robot-rl record-demos: {e}", file=sys.stderr)
            return 2
    try:
        try:
            dataset = EpisodeDataset.open_or_create(args.out, env.observation_space,
                                                    env.action_space.shape[0])
        except (ValueError, RuntimeError) as e:
            print(f"robot-rl record-demos: {e}", file=sys.stderr)
            return 2
        seed = args.seed
        if seed is None:   # continue after the seeds already in the dataset: new initial states
            seeds = [m["seed"] for m in dataset.episodes if isinstance(m.get("seed"), int)]
            seed = max(seeds, default=-1) + 1
        try:
            operator = make_operator(args.input, env, args.task, seed, args.noise,
                                     args.keyboard_device, args.spacemouse_device)
        except (DeviceNotFoundError, TimeoutError) as e:
            dataset.close()
            print(f"robot-rl record-demos: no {args.input} input: {e}", file=sys.stderr)
            return 2
        raw_terminal = any(getattr(d, "raw_stdin", False) for d in getattr(operator, "devices", []))
        end = "\r\n" if raw_terminal else "\n"   # a terminal in raw mode needs the carriage return

        def say(line: str) -> None:
            print(f"record-demos: {line}", end=end, file=sys.stderr, flush=True)

        control_hz = float(env.unwrapped.task.control_hz)
        hz = args.hz if args.hz is not None else (control_hz if operator.realtime else 0.0)
        if args.input == "ros":
            say("operator: /spacemouse/twist moves, /spacemouse/joy buttons mark success | failure | "
                "reset (re-record); Ctrl-C stops")
        elif operator.realtime:
            say("keys: s success | f failure | r re-record | Ctrl-C stop | i/k j/l u/o q/e move | "
                "c close x open | space takeover")
        if len(dataset):
            say(f"appending to {args.out} ({len(dataset)} episodes already), first seed {seed}")
        try:
            summary = record_demos(env, operator, dataset, args.episodes, args.task, seed=seed,
                                   hz=hz, max_attempts=None if operator.realtime else 3 * args.episodes,
                                   say=say, scene_reset_timeout=args.scene_reset_timeout)
        finally:
            operator.close()
            dataset.close()
    finally:
        env.close()
    print(json.dumps(summary), flush=True)
    if summary.get("pending"):
        return 1
    if not summary.get("stopped") and summary.get("recorded", 0) < args.episodes:
        print(f"robot-rl record-demos: only {summary.get('recorded')} of {args.episodes} episodes "
              f"succeeded in {summary.get('attempts')} attempts", file=sys.stderr)
        return 1
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("record-demos", help="record demos (SpaceMouse, keyboard or the "
                                                   "scripted expert) into an episode dataset")
    p.add_argument("--task", required=True)
    p.add_argument("--episodes", type=int, required=True, help="successful episodes to save")
    p.add_argument("--out", required=True, help="episode dataset directory (created or appended to)")
    p.add_argument("--input", choices=["spacemouse", "keyboard", "expert"], default="spacemouse")
    p.add_argument("--obs", choices=["state", "pixels"], default="state")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the first episode's reset (default: after the dataset's last seed)")
    p.add_argument("--hz", type=float, default=None,
                   help="loop rate (default: the task's control rate for a human, unpaced for the expert)")
    p.add_argument("--max-steps", type=int, default=None, help="episode time limit (task default)")
    p.add_argument("--override", action="append", metavar="KEY=VALUE",
                   help="a task field, as the run's task_overrides (e.g. cameras=[] records proprio only, "
                        "tcp_start_xy_range=0 a fixed reset pose); repeatable")
    p.add_argument("--noise", type=float, default=0.1, help="expert action noise (diversity)")
    p.add_argument("--keyboard-device", default="",
                   help="keyboard input: '' = this terminal, a tty/pty path, or /dev/input/eventN")
    p.add_argument("--spacemouse-device", default="", help="hidraw path ('' = the first found)")
    p.add_argument("--ros", action="store_true", help="record from the live ROS 2 graph: the robot over "
                   "its topics, the operator from /spacemouse/twist and /spacemouse/joy")
    p.add_argument("--namespace", default=None, help="--ros: the robot's namespace (default: the task's)")
    p.add_argument("--reset-mode", choices=["cartesian", "service"], default="cartesian",
                   help="--ros: reset through the controller to the task's reset pose, or the driver's reset service")
    p.add_argument("--gains-node", default="", help="--ros: node whose impedance gains go to the precision "
                   "profile during resets, e.g. /franka/franka ('' = keep)")
    p.add_argument("--scene-reset-timeout", type=float, default=0.0, help="before each attempt, wait "
                   "for a new press of any button (the scene is reset) or this many s; the arm holds (0: no pause)")
    p.set_defaults(func=cmd_record_demos)


def main(argv: list[str] | None = None) -> int:
    from robot_rl.cli import main as cli_main
    return cli_main(["record-demos", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
