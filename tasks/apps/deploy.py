"""`robot-rl deploy`: run a trained policy without learning; success rate and cycle time.

    robot-rl deploy RUN_DIR --profile twin                  # the in-process MuJoCo twin
    robot-rl deploy RUN_DIR --profile twin --backend ros    # the twin node (`robot-rl up twin`)
    robot-rl up franka  &&  robot-rl deploy RUN_DIR --profile franka --episodes 20 --video

The run's checkpoint acts deterministically (tanh of the actor mean, the grasp critic's argmax)
for N episodes; nothing is learned and no buffer is written. Written to OUT (default
RUN_DIR/deploy_<profile>):

    deploy.json    per episode: seed, success, return, length, cycle time (s to success), wall
                   time, video files; over all: success rate, mean/median cycle time, ...
    deploy.png     success per episode and the cycle-time histogram
    videos/        with --video: one animated GIF per camera per episode (Pillow; no ffmpeg)

Backends. `--profile twin` runs the twin in this process by default (cycle time in env time:
steps / control rate). `--backend ros`, and the franka and widowx profiles always, drive the
same RobotEnv through tasks.ros.backend against whatever graph runs under the profile's
namespace (cycle time in wall time). Before anything moves, the graph is checked: every topic
the env reads must have a publisher, `equilibrium_pose` a subscriber, `reset` and `recover`
must exist; if not within --connect-timeout s (default 5), deploy stops naming what is missing.

Success. The twin knows the ground truth (the task's success test). A real robot has none: the
run's reward classifier (TrainConfig.reward_classifier, or `--reward-classifier FILE`) judges
each step there, as the actor does in training (tasks.classifier_reward, checked against the
task's cameras at start), and a positive ends the episode. Without a classifier the episodes
run to max_steps and success is reported as unknown (null) unless a success function is given
(`deploy(..., success_fn=...)`).

Reset over ROS. The hardware profiles reset as the actor does (`--reset-mode cartesian`, the
default there): the TCP is driven through the impedance controller to the task's reset pose
plus its random range (tasks.ros.backend, precision gains on `--gains-node`), the joint home
being the recovery path. The twin profile defaults to `service`: the twin node places the arm
and the objects. `--scene-reset-timeout S` pauses before each reset, the arm holding, until the
operator presses any button on /spacemouse/joy (the scene is back) or S s pass.

Safety. A non-finite action from the policy (or one of the wrong shape) is never sent: the
robot is told to hold its measured pose (clipped into the task's safety box) and deploy stops
with NonFiniteActionError, writing what it measured so far. Any other error or Ctrl-C also
holds first. The impedance law, safety box and watchdog below the env stay in force as always.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np

from robot_rl.config import Range, Text, check_ranges, param
from robot_rl.config_cli import add_arguments, from_args
from robot_rl.video import camera_frames, write_gif

PROFILES = ("twin", "franka", "widowx")
SEED_OFFSET = 50_000_000        # deploy seeds never overlap training's or evaluation's


class GraphNotUpError(RuntimeError):
    """The ROS 2 graph a deploy needs is not running (names the missing topics and services)."""


class NonFiniteActionError(RuntimeError):
    """The policy gave a NaN/inf action (or a wrong shape); it was not sent, the robot holds."""


@dataclass
class DeployConfig:
    """What a deploy runs; the `robot-rl deploy` flags are derived from these fields."""
    run_dir: str = param(help="the run directory (its config.yaml and checkpoint)", rule=Text())
    profile: str = param("twin", "twin: in-process MuJoCo (or --backend ros); franka, widowx: the "
                         "robot's ROS graph", Text(choices=PROFILES))
    episodes: int = param(10, "episodes to run", Range(1, 1_000_000))
    video: bool = param(False, "an animated GIF per camera per episode")
    backend: Optional[str] = param(None, "default: inprocess for twin, ros for franka/widowx",
                                   Text(choices=("inprocess", "ros"), optional=True))
    out: Optional[str] = param(None, "output folder (default RUN_DIR/deploy_<profile>)",
                               Text(optional=True))
    seed: int = param(0, "seeds the episodes' reset placements", Range(0, 2 ** 32 - 1))
    max_steps: Optional[int] = param(None, "episode length (default: the task's)",
                                     Range(1, 10_000_000, optional=True))
    namespace: Optional[str] = param(None, "robot namespace (default: the task file's, else the "
                                     "profile's, e.g. /franka)", Text(optional=True))
    connect_timeout: float = param(5.0, "s to wait for the ROS graph before giving up",
                                   Range(0.0, 3600.0))
    device: str = param("auto", "torch device for the policy (auto: cuda if available)", Text())
    reset_mode: Optional[str] = param(
        None, "ros backend: cartesian (through the controller to the task's reset pose, as the "
        "actor) or service (the driver's; the twin places the objects). Default: cartesian on "
        "franka/widowx, service on the twin", Text(choices=("cartesian", "service"), optional=True))
    gains_node: str = param("", "ros backend: node whose impedance gains go to the precision "
                            "profile during resets, e.g. /franka/controller ('' = keep)",
                            Text(allow_empty=True))
    reward_classifier: Optional[str] = param(
        None, "classifier file judging success (default: the run's reward_classifier on a robot "
        "without ground truth; '' = none)", Text(allow_empty=True, optional=True))
    scene_reset_timeout: float = param(
        0.0, "ros backend: before each episode the arm holds until an operator button on "
        "/spacemouse/joy, or this many s (0: no pause)", Range(0.0, 3600.0))

    def validate(self) -> None:
        """Every field's range (ConfigError naming it), then the rules between fields."""
        check_ranges(self)
        if self.profile != "twin" and self.backend == "inprocess":
            raise ValueError(f"profile {self.profile!r} is a real robot: it runs over ROS only "
                             f"(bring it up with `robot-rl up {self.profile}`)")

    @property
    def resolved_reset_mode(self) -> str:
        return self.reset_mode or ("service" if self.profile == "twin" else "cartesian")

    @property
    def resolved_backend(self) -> str:
        return self.backend or ("inprocess" if self.profile == "twin" else "ros")


# ----------------------------------------------------------------------------- the ROS graph
def profile_robot(profile: str) -> tuple[str, str]:
    """(namespace, base frame) of a profile's arm, from its rig file launch/<profile>.yaml."""
    from robot_rl.tasks.ros.bringup import profile_nodes

    nodes = profile_nodes(profile)
    namespace = nodes[0].namespace.rstrip("/")
    frames = [node.parameters.get(key) for node in nodes
              if node.fqn.startswith(namespace + "/") for key in ("base_frame", "frame_id")]
    frames = [f for f in frames if f]
    return namespace, frames[0] if frames else "fr3_link0"


def required_graph(namespace: str, cameras: tuple[str, ...], task_state: bool
                   ) -> dict[str, list[str]]:
    """What the env's ROS backend needs: published topics, a subscribed topic, services."""
    from robot_rl.tasks.ros.backend import STATE_TOPICS

    ns = namespace.rstrip("/")
    published = [f"{ns}/{t}" for t in STATE_TOPICS] + ([f"{ns}/task/state"] if task_state else [])
    published += [f"/cameras/{cam}/image_raw" for cam in cameras]
    return {"published": published, "subscribed": [f"{ns}/equilibrium_pose"],
            "services": [f"{ns}/reset", f"{ns}/recover"]}


def wait_for_graph(context, needs: Mapping[str, list[str]], timeout: float, profile: str) -> None:
    """Waits until every need is met; GraphNotUpError naming the missing ones after `timeout` s."""
    import rclpy

    node = rclpy.create_node("deploy_graph_probe", context=context)
    try:
        deadline = time.monotonic() + timeout
        while True:
            services = {name for name, _ in node.get_service_names_and_types()}
            missing = ([f"{t} (no publisher)" for t in needs["published"] if node.count_publishers(t) == 0]
                       + [f"{t} (no subscriber)" for t in needs["subscribed"] if node.count_subscribers(t) == 0]
                       + [f"{s} (no service)" for s in needs["services"] if s not in services])
            if not missing:
                return
            if time.monotonic() > deadline:
                raise GraphNotUpError(
                    f"the {profile} graph is not up: after {timeout:g} s still missing "
                    f"{', '.join(missing)}. Start it first with `robot-rl up {profile}` in the same "
                    f"ROS_DOMAIN_ID, or check --namespace.")
            time.sleep(0.1)
    finally:
        node.destroy_node()


# ----------------------------------------------------------------------------- the env
def make_deploy_env(cfg: DeployConfig, task: str, obs: str, stack: ExitStack,
                    task_overrides: dict | None = None, extra_cameras: tuple[str, ...] = ()):
    """(env, info): the run's task (with the run's task_overrides) on the chosen backend;
    everything it opens is closed by `stack`. extra_cameras: read these cameras too over ROS
    (the reward classifier's), beside the policy's."""
    from robot_rl import tasks

    overrides = dict(task_overrides or {})
    if cfg.max_steps is not None:
        overrides["max_steps"] = cfg.max_steps
    spec = tasks.make_spec(task, **overrides)
    if cfg.resolved_backend == "inprocess":
        env = tasks.make_env(task, obs=obs, seed=None, **overrides)
        stack.callback(env.close)
        return env, {"backend": "inprocess", "clock": "env", "ground_truth": True}

    ground_truth = cfg.profile == "twin"   # only the twin node publishes task/state
    if obs == "state" and spec.object_feature_dim and not ground_truth:
        raise ValueError(f"this run observes {task}'s objects from the twin's ground truth "
                         f"(obs='state'), which a real robot does not have: deploy a pixels run on "
                         f"the {cfg.profile} profile")
    import rclpy
    from rclpy.context import Context
    from rclpy.signals import SignalHandlerOptions

    from robot_rl.tasks.ros.backend import RosRobot, RosRobotConfig, camera_options

    namespace, base_frame = profile_robot(cfg.profile)
    # --namespace, else the task file's robot namespace, else the profile's rig.
    namespace = (cfg.namespace or spec.robot_namespace or namespace).rstrip("/") or "/"
    # Videos of a state run read the cameras too (they are not part of the observation then).
    cameras = tuple(spec.cameras) if obs == "pixels" or cfg.video else ()
    cameras += tuple(c for c in extra_cameras if c not in cameras)
    context = Context()
    # No rclpy signal handlers: Ctrl-C stays a KeyboardInterrupt, which holds the robot and
    # writes the results so far.
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    stack.callback(lambda: context.ok() and rclpy.shutdown(context=context))
    wait_for_graph(context, required_graph(namespace, cameras, ground_truth), cfg.connect_timeout,
                   cfg.profile)
    robot = RosRobot(RosRobotConfig(namespace=namespace, cameras=cameras, **camera_options(spec),
                                    control_hz=spec.control_hz, base_frame=base_frame,
                                    task_state=ground_truth, connect_timeout=cfg.connect_timeout,
                                    wrench_topic=spec.wrench_topic,
                                    reset_mode=cfg.resolved_reset_mode, gains_node=cfg.gains_node),
                     context=context)
    stack.callback(robot.close)
    env = tasks.make_env(task, obs=obs, seed=None, robot=robot, **overrides)
    return env, {"backend": "ros", "clock": "wall", "ground_truth": ground_truth,
                 "namespace": namespace, "base_frame": base_frame, "reset_mode": cfg.resolved_reset_mode,
                 "context": context}


def control_hz(env) -> float:
    """The env's control rate: its task's, or (a --env gymnasium env) the adapter's."""
    task = getattr(env.unwrapped, "task", None)
    return float(task.control_hz) if task is not None else float(env.control_hz)


def make_gym_deploy_env(cfg: DeployConfig, train_cfg, stack: ExitStack):
    """(env, info) of a --env run: its gymnasium env, rebuilt from the run's config, in process."""
    import dataclasses

    from robot_rl.run_env import make_run_env

    if cfg.profile != "twin" or cfg.resolved_backend != "inprocess":
        raise ValueError(f"run {cfg.run_dir} trained on the gymnasium env {train_cfg.env!r}: it "
                         f"deploys in that env, in process (--profile twin), not on {cfg.profile}/"
                         f"{cfg.resolved_backend}")
    if cfg.max_steps is not None:
        train_cfg = dataclasses.replace(train_cfg, gym=dataclasses.replace(
            train_cfg.gym, max_episode_steps=cfg.max_steps))
    handle = make_run_env(train_cfg)
    stack.callback(handle.close)
    return handle.env, {"backend": "inprocess", "clock": "env", "ground_truth": True, "env": train_cfg.env}


def hold(env) -> None:
    """Commands the measured pose (clipped into the safety box) and the current gripper command."""
    from robot_rl.controllers.rotations import quat_to_matrix as quat_to_rot

    env = env.unwrapped
    state = getattr(env, "last_state", None)   # None too for a --env env: no robot to hold
    if state is None:
        return
    pos, quat = env.clip_to_safety_box(state.tcp_pos, quat_to_rot(state.tcp_quat))
    env.robot.command(pos, quat, env.gripper_command)


# ----------------------------------------------------------------------------- one episode
def run_episode(env, policy: Callable[[dict], np.ndarray], seed: int, clock: str = "env",
                video: bool = False, success_fn: Callable[[dict, dict], bool] | None = None
                ) -> dict[str, Any]:
    """One deterministic episode. clock 'env': cycle time = steps / control rate; 'wall': seconds
    of wall time from the end of the reset to the successful step. Returns the record, with the
    frames per camera under '_frames' when video is on."""
    obs, info = env.reset(seed=seed)
    hz = control_hz(env)
    frames: dict[str, list] = {}

    def grab() -> None:
        for cam, image in camera_frames(env).items():
            frames.setdefault(cam, []).append(np.asarray(image, dtype=np.uint8).copy())

    if video:
        grab()
    started = time.monotonic()
    ret, length, success, ground_truth, cycle = 0.0, 0, False, True, None
    while True:
        try:
            action = np.asarray(policy(obs), dtype=np.float32)
            if action.shape != env.action_space.shape or not np.all(np.isfinite(action)):
                what = "a non-finite" if action.shape == env.action_space.shape else "a wrongly shaped"
                raise NonFiniteActionError(
                    f"the policy gave {what} action {action.tolist()} at step {length} (seed {seed}); it was not sent and "
                    "the robot holds its measured pose")
            obs, reward, terminated, truncated, info = env.step(action)
        except BaseException:
            # Whatever went wrong (also Ctrl-C), the last thing sent is "stay here"; should even
            # that fail (the graph is gone), the controller's watchdog holds instead.
            try:
                hold(env)
            except Exception as err:  # noqa: BLE001 - the original error is the one to report
                logging.getLogger("robot_rl.deploy").warning("could not send the hold command: %s", err)
            raise
        ret += float(reward)
        length += 1
        ground_truth = ground_truth and bool(info.get("ground_truth", True))
        succeeded = bool(success_fn(obs, info)) if success_fn is not None else bool(info.get("success"))
        if succeeded and not success:
            success, cycle = True, (length / hz if clock == "env" else time.monotonic() - started)
        terminated = terminated or succeeded   # a success_fn ends the episode as the twin's test does
        if video:
            grab()
        if terminated or truncated:
            break
    known = ground_truth or success_fn is not None
    record = {"seed": seed, "success": success if known else None, "return": ret, "length": length,
              "cycle_time_s": cycle, "wall_s": time.monotonic() - started}
    if video:
        record["_frames"] = frames
    return record


# ----------------------------------------------------------------------------- outputs
def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    known = [r for r in records if r["success"] is not None]
    cycles = [r["cycle_time_s"] for r in records if r["success"] and r["cycle_time_s"] is not None]
    return {
        "episodes": len(records),
        "success_rate": float(np.mean([r["success"] for r in known])) if known else None,
        "successes": sum(bool(r["success"]) for r in records),
        "mean_return": float(np.mean([r["return"] for r in records])) if records else None,
        "mean_episode_length": float(np.mean([r["length"] for r in records])) if records else None,
        "mean_cycle_time_s": float(np.mean(cycles)) if cycles else None,
        "median_cycle_time_s": float(np.median(cycles)) if cycles else None,
    }


def plot(records: list[dict[str, Any]], path: Path, title: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (ax_s, ax_c) = plt.subplots(1, 2, figsize=(10, 3.8))
    xs = np.arange(1, len(records) + 1)
    heights = [1.0 if r["success"] else (0.5 if r["success"] is None else 0.05) for r in records]
    colors = ["tab:green" if r["success"] else ("tab:gray" if r["success"] is None else "tab:red")
              for r in records]
    ax_s.bar(xs, heights, color=colors)
    ax_s.set_xlabel("episode")
    if len(records) <= 30:
        ax_s.set_xticks(xs)
    ax_s.set_yticks([0.05, 0.5, 1.0], ["fail", "unknown", "success"])
    ax_s.set_ylim(0, 1.1)
    rate = summarize(records)["success_rate"]
    ax_s.set_title("success per episode" + ("" if rate is None else f" (rate {rate:.2f})"))
    cycles = [r["cycle_time_s"] for r in records if r["success"] and r["cycle_time_s"] is not None]
    if cycles:
        ax_c.hist(cycles, bins=min(20, max(1, len(cycles))), color="tab:blue")
        ax_c.axvline(float(np.median(cycles)), color="k", ls="--", label=f"median {np.median(cycles):.2f} s")
        ax_c.legend()
    else:
        ax_c.text(0.5, 0.5, "no successful episode", ha="center", va="center", transform=ax_c.transAxes)
    ax_c.set_xlabel("cycle time (s to success)")
    ax_c.set_ylabel("episodes")
    ax_c.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_c.set_title("cycle time")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


# ----------------------------------------------------------------------------- deploy
def deploy(cfg: DeployConfig, success_fn: Callable[[dict, dict], bool] | None = None) -> dict[str, Any]:
    """Runs the deploy and writes OUT/deploy.json (+ deploy.png, videos/); returns the summary.
    On an error mid-run the results so far are written with "error" set, then it re-raises."""
    from robot_rl.export import load_run_agent, load_run_config
    from robot_rl.run_files import device_for

    cfg.validate()
    run_dir = Path(cfg.run_dir)
    train_cfg = load_run_config(run_dir)        # fails early on a missing run or checkpoint
    if train_cfg.threads > 0:
        # The run's torch threads (as its actor): on a small CPU a second OpenMP thread beside the
        # camera and classifier work made every step several times slower (1.4 s vs 0.35 s measured).
        import torch
        torch.set_num_threads(train_cfg.threads)
    out = Path(cfg.out) if cfg.out else run_dir / f"deploy_{cfg.profile}"
    records: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    started = time.monotonic()
    with ExitStack() as stack:
        classifier_file, classifier, reward_options = "", None, {}
        context = None
        if train_cfg.env:
            env, backend = make_gym_deploy_env(cfg, train_cfg, stack)
        else:
            classifier_file, classifier, reward_options = load_classifier(cfg, train_cfg)
            env, backend = make_deploy_env(cfg, train_cfg.task, train_cfg.obs, stack,
                                           train_cfg.task_overrides,
                                           extra_cameras=tuple(classifier.cfg.cameras) if classifier else ())
            context = backend.pop("context", None)
        if classifier is not None:
            from robot_rl.tasks.classifier_reward import ClassifierReward
            env = ClassifierReward(env, classifier, **reward_options)
            if success_fn is None:      # the classifier's verdict is the success (info["success"])
                success_fn = classifier_success
        scene_pause = make_scene_pause(cfg, context, stack)
        agent, train_cfg, env_steps = load_run_agent(run_dir, env.observation_space, env.action_space,
                                                     device=str(device_for(cfg.device)))
        hz = control_hz(env)
        task = getattr(env.unwrapped, "task", None)
        max_steps = task.max_steps if task is not None else env.max_episode_steps
        out.mkdir(parents=True, exist_ok=True)
        summary = {"task": train_cfg.env or train_cfg.task, "obs": train_cfg.obs, "profile": cfg.profile, **backend,
                   "run_dir": str(run_dir), "checkpoint_env_steps": env_steps, "deterministic": True,
                   "control_hz": hz, "max_steps": None if max_steps is None else int(max_steps),
                   "success_source": ("classifier" if success_fn is classifier_success else
                                      "success_fn" if success_fn else
                                      "ground_truth" if backend["ground_truth"] else "none"),
                   "reward_classifier": classifier_file or None,
                   "video_format": "gif" if cfg.video else None, "error": None}

        def policy(obs):
            return agent.act(obs, deterministic=True)

        def finish(error: str | None) -> dict[str, Any]:
            summary.update(summarize(records), per_episode=records, error=error,
                           wall_s=time.monotonic() - started)
            _write_json(out / "deploy.json", summary)
            plot(records, out / "deploy.png",
                 f"{train_cfg.env or train_cfg.task} ({train_cfg.obs}) on {cfg.profile}/{backend['backend']}")
            return summary

        try:
            for i in range(cfg.episodes):
                seed = SEED_OFFSET + cfg.seed * 10_000 + i
                if scene_pause is not None:
                    hold(env)               # the arm stays where the episode left it
                    scene_pause(i)
                record = {"episode": i, **run_episode(env, policy, seed, backend["clock"], cfg.video, success_fn)}
                frames = record.pop("_frames", None)
                if frames:
                    videos = out / "videos"
                    videos.mkdir(exist_ok=True)
                    record["videos"] = {cam: str(write_gif(f, videos / f"ep{i:03d}_{cam}.gif", hz).relative_to(out))
                                        for cam, f in frames.items()}
                records.append(record)
                _log(f"episode {i + 1}/{cfg.episodes}: success {record['success']}, return "
                     f"{record['return']:.2f}, {record['length']} steps"
                     + (f", cycle {record['cycle_time_s']:.2f} s" if record["cycle_time_s"] else ""))
        except BaseException as e:
            finish(f"{type(e).__name__}: {e}")
            raise
        return finish(None)


def load_classifier(cfg: DeployConfig, train_cfg) -> tuple[str, Any, dict[str, Any]]:
    """(file, RewardClassifier, ClassifierReward options) judging success: --reward-classifier,
    else the run's own (or its task file's) where the backend has no ground truth (a real
    robot); ('', None, {}) when none applies. Checked
    against the task's cameras and image size at start (ValueError naming the file)."""
    from robot_rl.tasks.classifier_reward import task_classifier

    path = cfg.reward_classifier
    ground_truth = cfg.resolved_backend == "inprocess" or cfg.profile == "twin"
    if path == "" or (path is None and ground_truth):
        return "", None, {}
    # The run's classifier (else its task file's), found and checked as the actor does.
    return task_classifier(train_cfg.task, train_cfg.task_overrides, path or train_cfg.reward_classifier,
                           images_from_robot=cfg.resolved_backend == "ros")


def classifier_success(obs: dict, info: dict) -> bool:
    """The reward classifier's verdict (tasks.classifier_reward sets info["success"])."""
    return bool(info.get("success"))


def make_scene_pause(cfg: DeployConfig, context, stack: ExitStack) -> Callable[[int], Any] | None:
    """The operator's scene reset before each episode (tasks.apps.scene_pause), over ROS with
    --scene-reset-timeout > 0; None otherwise."""
    if cfg.scene_reset_timeout <= 0 or context is None:
        return None
    from robot_rl.tasks.ros.teleop import RosTeleopSource
    from robot_rl.tasks.apps.scene_pause import wait_for_scene_reset

    source = RosTeleopSource(context=context, connect_timeout=cfg.connect_timeout)
    stack.callback(source.close)
    return lambda episode: wait_for_scene_reset(source, cfg.scene_reset_timeout,
                                                lambda line: _log(f"episode {episode + 1}: {line}"))


def _log(text: str) -> None:
    print(f"[robot-rl deploy] {text}", file=sys.stderr, flush=True)


def cmd_deploy(args: argparse.Namespace) -> int:
    from robot_rl.export import ExportError

    cfg = from_args(DeployConfig, args, positional=("run_dir",))   # ConfigError: one line
    out = Path(cfg.out) if cfg.out else Path(cfg.run_dir) / f"deploy_{cfg.profile}"
    try:
        summary = deploy(cfg)
    except KeyboardInterrupt:
        print(f"robot-rl deploy: interrupted; the robot was told to hold; results so far in {out}",
              file=sys.stderr)
        return 130
    except (GraphNotUpError, ExportError, ValueError, RuntimeError, TimeoutError) as e:
        # Expected failures (graph down, bad run, non-finite action, stale data) as one clear line.
        logging.getLogger("robot_rl.deploy").debug("deploy failed", exc_info=True)
        print(f"robot-rl deploy: {e}", file=sys.stderr)
        return 2 if isinstance(e, (GraphNotUpError, ExportError)) else 1
    brief = {k: summary.get(k) for k in ("success_rate", "episodes", "mean_cycle_time_s",
                                         "median_cycle_time_s", "mean_return", "backend")}
    print(json.dumps(brief))
    rate = summary["success_rate"]
    _log(f"success rate {'unknown' if rate is None else f'{rate:.2f}'} over {summary['episodes']} "
         f"episodes; results in {out} (deploy.json, deploy.png{', videos/' if cfg.video else ''})")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("deploy", help="run a policy without learning: success rate, cycle time, videos")
    add_arguments(p, DeployConfig, positional=("run_dir",))
    p.set_defaults(func=cmd_deploy)
