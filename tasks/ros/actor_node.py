"""The actor as a ROS 2 node: robot_rl.actor.Actor with the SpaceMouse, transitions, acks, weights.

    robot-rl-actor --ros-args -p config_file:=runs/x/config.yaml -p steps:=10000

Subscribes /spacemouse/twist (TwistStamped) and /spacemouse/joy (Joy, the drivers/teleop.py
contract) for human takeover, /robot_rl/weights and /robot_rl/acks; publishes
/robot_rl/transitions. The episodes run on the main thread; rclpy spins on a background
thread and only hands messages over (thread-safe), so a takeover command is used in the
control step right after it arrives.

backend: "twin" runs the env in this process (tasks.make_env); "ros" drives the robot over
the topic contract (tasks.ros.backend.make_ros_env, namespace `robot_namespace`) with only
what hardware has: no ground-truth task/state (`task_state` false), a Cartesian reset
(`reset_mode`, precision gains on `gains_node`). Reward and success come from the reward
classifier (TrainConfig.reward_classifier, run here where the cameras are; checked against the
task's cameras at start) and from the operator's keys on /spacemouse/joy (drivers/teleop.py:
success, failure, reset = re-record); `scene_reset_timeout_s` pauses before each reset for the
operator. See docs/real_session.md.
At the end (steps reached, or SIGINT/SIGTERM) it waits for the last acks and writes
RUN_DIR/actor_<id>.json (its episodes and counters).
Every message is signed / verified with the run's key, `key_file` (default RUN_DIR/auth.key,
copied from the learner: docs/security.md); without it the node exits with one line.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from sensor_msgs.msg import Joy
from std_msgs.msg import UInt8MultiArray

from robot_rl.drivers.teleop import (FAILURE, GRIPPER_CLOSE, GRIPPER_OPEN, RESET, SUCCESS,  # the /spacemouse/joy
                            TAKEOVER)                                            # contract
from robot_rl.drivers.ros_common import declare_config
from robot_rl.atomic_io import write_json_atomic
from robot_rl.config import Range, Text, param
from robot_rl.auth import KEY_FILE, AuthError, load_key
from robot_rl.episode import EpisodeResult
from robot_rl.transport import TransportError
from robot_rl.video import EpisodeVideo
from robot_rl.tasks.ros import rl_graph
from robot_rl.tasks.ros.rl_graph import train_config_from_params


_COUNT = Range(0, 2 ** 31 - 1)
_SECONDS = Range(0.0, 1e9)           # a wait or period (0 where it means "none")


@dataclass
class ActorNodeConfig:
    """The actor node's ROS 2 parameters (beside rl_graph.RunParams, which pick the run)."""
    key_file: str = param("", "the run's auth key (empty: RUN_DIR/auth.key; copy it from the "
                          "learner, docs/security.md)", Text(allow_empty=True))
    steps: int = param(0, "env steps to run, then flush and exit (default: the run's steps)", _COUNT)
    backend: str = param("twin", "twin: env in this process; ros: over the topic contract",
                         Text(choices=("twin", "ros")))
    robot_namespace: str = param("", "robot namespace for backend=ros ('': the task's)", Text(allow_empty=True))
    task_state: bool = param(False, "backend=ros: read the twin's ground truth (tests and benchmarks "
                             "only; no real robot has it)")
    reset_mode: str = param("cartesian", "backend=ros: cartesian (through the controller) or service "
                            "(the driver's reset service)", Text(choices=("cartesian", "service")))
    gains_node: str = param("", "backend=ros: node whose impedance gains switch to the precision "
                            "profile during resets ('' = keep)", Text(allow_empty=True))
    reset_tolerance_pos: float = param(0.005, "backend=ros: a Cartesian reset arrives within this "
                                       "distance of the reset pose (m)", Range(0.0, 1.0, low_open=True))
    deadband: float = param(0.05, "twist magnitude (per component) that counts as a human motion",
                            Range(0.0, 1e3))
    linear_scale: float = param(1.0, "twist units mapping to action 1.0 (linear)", Range(0.0, 1e6, low_open=True))
    angular_scale: float = param(1.0, "twist units mapping to action 1.0 (angular)", Range(0.0, 1e6, low_open=True))
    teleop_timeout_s: float = param(0.5, "ignore teleop input older than this (s)", Range(0.0, 3600.0, low_open=True))
    actor_id: str = param("actor0", "this actor's id (one per robot)", Text())
    max_unacked: int = param(20_000, "unacked transitions kept for resending", Range(1, 2 ** 31 - 1))
    resend_after_s: float = param(2.0, "resend when the learner stalls this long (s)", _SECONDS)
    pace_hz: float = param(0.0, "hold this control rate (0: as fast as the env steps)", Range(0.0, 10_000.0))
    sync_updates_per_step: float = param(0.0, "wait between episodes for weights with this many "
                                         "updates per step (0: never)", Range(0.0, 1000.0))
    max_policy_lag: int = param(200, "steps the weights may lag behind the actor", _COUNT)
    spool_dir: str = param("", "unacked transitions spooled here (empty: RUN_DIR/spool/actor_<id>; "
                           "'none': memory only)", Text(allow_empty=True))
    spool_fsync: str = param("episode", "spool fsync policy: never | episode | step",
                             Text(choices=("never", "episode", "step")))
    recover_timeout_s: float = param(60.0, "wait this long for acks of a killed session's spool (s)", _SECONDS)
    scene_reset_timeout_s: float = param(0.0, "pause before each reset for the operator to reset the "
                                         "scene, ended by a key or this timeout (s; 0: no pause)", _SECONDS)
    flush_timeout_s: float = param(60.0, "wait this long for the last acks at exit (s)", _SECONDS)
    transitions_topic: str = param(rl_graph.TRANSITIONS_TOPIC, "transitions topic", Text())
    weights_topic: str = param(rl_graph.WEIGHTS_TOPIC, "weights topic", Text())
    acks_topic: str = param(rl_graph.ACKS_TOPIC, "acks topic", Text())
    twist_topic: str = param("/spacemouse/twist", "twist topic", Text())
    joy_topic: str = param("/spacemouse/joy", "joy topic", Text())


class ActorNode(Node):
    def __init__(self, **kwargs: Any):
        super().__init__("actor", **kwargs)
        from robot_rl.actor import Actor, ActorConfig, Takeover, TakeoverConfig
        from robot_rl.agents.sac import SACAgent
        from robot_rl.run_env import EnvHandle, make_run_env
        from robot_rl.run_files import device_for

        cfg = self.train_cfg = train_config_from_params(self)
        p = declare_config(self, ActorNodeConfig(steps=cfg.steps))
        # The run's auth key first: without it nothing the actor sends would be accepted.
        key = load_key(p.key_file or Path(cfg.run_dir) / KEY_FILE)
        self.steps = p.steps
        backend, robot_ns, task_state, reset_mode = p.backend, p.robot_namespace, p.task_state, p.reset_mode
        gains_node, reset_tolerance = p.gains_node, p.reset_tolerance_pos
        takeover = TakeoverConfig(deadband=p.deadband, linear_scale=p.linear_scale,
                                  angular_scale=p.angular_scale, timeout_s=p.teleop_timeout_s)
        acfg = ActorConfig(
            actor_id=p.actor_id, max_unacked=p.max_unacked, resend_after_s=p.resend_after_s,
            random_steps=cfg.random_steps, pace_hz=p.pace_hz,
            sync_updates_per_step=p.sync_updates_per_step, sync_after_steps=cfg.learning_starts,
            max_policy_lag=p.max_policy_lag, spool_dir=p.spool_dir, spool_fsync=p.spool_fsync,
            recover_timeout_s=p.recover_timeout_s, takeover=takeover,
            scene_reset_timeout_s=p.scene_reset_timeout_s)
        if acfg.spool_dir == "":
            acfg.spool_dir = str(Path(cfg.run_dir) / "spool" / f"actor_{acfg.actor_id}")
        elif acfg.spool_dir == "none":
            acfg.spool_dir = ""
        # Every episode (recovered ones of a killed session too), one JSON line each, as it ends:
        # the distributed learning curve is built from this file.
        self.episode_log = Path(cfg.run_dir) / f"actor_{acfg.actor_id}_episodes.jsonl"
        self.flush_timeout_s = p.flush_timeout_s
        topics = {name: getattr(p, f"{name}_topic") for name in ("transitions", "weights", "acks", "twist", "joy")}

        from robot_rl import tasks
        from robot_rl.tasks.classifier_reward import ClassifierReward, task_classifier

        # The run's classifier, else the task file's reward section (tasks.classifier_reward).
        clf_path, classifier, reward_options = (
            task_classifier(cfg.task, cfg.task_overrides, cfg.reward_classifier, images_from_robot=backend == "ros")
            if cfg.task != "point_reach" else ("", None, {}))                # point_reach has no spec
        spec = (tasks.make_spec(cfg.task, **cfg.task_overrides)
                if backend == "ros" or clf_path else None)
        if backend == "ros":
            from robot_rl.tasks.ros.backend import make_ros_env
            # The robot's cameras: the policy's (pixels) and the classifier's.
            cameras = tuple(spec.cameras if cfg.obs == "pixels" else ())
            cameras += tuple(c for c in (classifier.cfg.cameras if classifier else ()) if c not in cameras)
            env = make_ros_env(cfg.task, cfg.obs, seed=cfg.seed, namespace=robot_ns or None, task_state=task_state,
                               robot_options={"cameras": cameras, "reset_mode": reset_mode,
                                              "gains_node": gains_node,
                                              "reset_tolerance_pos": reset_tolerance},
                               **cfg.task_overrides)
            if classifier is not None:
                env = ClassifierReward(env, classifier, **reward_options)
            handle = EnvHandle(env, None, float(env.unwrapped.task.control_hz))
        else:
            handle = make_run_env(cfg)      # the twin: the task's classifier as in-process runs wrap it
        self.env_handle = handle
        agent = SACAgent(cfg.agent, handle.env.observation_space, handle.env.action_space,
                         device=device_for(cfg.device), seed=cfg.seed)
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(str(Path(cfg.run_dir) / "tb" / f"actor_{acfg.actor_id}"))
        self.transitions_pub = self.create_publisher(UInt8MultiArray, topics["transitions"], rl_graph.TRANSITIONS_QOS)
        self.actor = Actor(acfg, handle, agent, send=lambda b: self.transitions_pub.publish(rl_graph.to_msg(b)),
                           takeover=Takeover(takeover), writer=self.writer, seed=cfg.seed, key=key,
                           video=(EpisodeVideo(Path(cfg.run_dir) / "videos" / f"actor_{acfg.actor_id}",
                                               cfg.video_every, handle.control_hz) if cfg.video_every else None))
        self.twist_stamps: list[float] = []     # arrival times (monotonic), for latency checks
        self.create_subscription(TwistStamped, topics["twist"], self._on_twist, 10)
        self.create_subscription(Joy, topics["joy"], self._on_joy, 10)
        self.create_subscription(UInt8MultiArray, topics["weights"], self._on_weights, rl_graph.WEIGHTS_QOS)
        self.create_subscription(UInt8MultiArray, topics["acks"], self._on_acks, rl_graph.ACKS_QOS)
        self.rejected = 0
        self.episodes: list[EpisodeResult] = []
        self.get_logger().info(f"actor {acfg.actor_id} session {self.actor.session}: {cfg.task}/{cfg.obs}, "
                               f"{self.steps} steps, backend {backend}")

    # -- callbacks (executor thread): hand over, never block
    def _on_twist(self, msg: TwistStamped) -> None:
        t = msg.twist
        try:
            self.actor.takeover.on_twist([t.linear.x, t.linear.y, t.linear.z,
                                          t.angular.x, t.angular.y, t.angular.z])
        except ValueError as e:
            self.get_logger().error(f"ignored a teleop twist: {e}")

    def _on_joy(self, msg: Joy) -> None:
        b = list(msg.buttons)
        pressed = lambda i: len(b) > i and bool(b[i])  # noqa: E731
        gripper = 1.0 if pressed(GRIPPER_CLOSE) else 0.0 if pressed(GRIPPER_OPEN) else None
        self.actor.takeover.on_joy(gripper, pressed(TAKEOVER))
        self.actor.keys.on_keys({name for i, name in ((SUCCESS, "success"), (FAILURE, "failure"),
                                                       (RESET, "rerecord")) if pressed(i)})

    def _on_weights(self, msg: UInt8MultiArray) -> None:
        self._guarded("weights", self.actor.receive_weights, msg)

    def _on_acks(self, msg: UInt8MultiArray) -> None:
        self._guarded("ack", self.actor.receive_ack, msg)

    def _guarded(self, what: str, fn, msg: UInt8MultiArray) -> None:
        try:
            fn(rl_graph.from_msg(msg))
        except Exception as e:  # noqa: BLE001 - TransportError and anything else: log, keep running
            self.rejected += 1
            if isinstance(e, AuthError) and not rl_graph.log_this(self.rejected):
                return                  # a flood of forged messages must not flood the log
            kind = "" if isinstance(e, TransportError) else f" ({type(e).__name__})"
            self.get_logger().error(f"rejected a {what} message{kind}: {e}")

    def _log_episode(self, r: EpisodeResult) -> None:
        logged = set()
        if r.get("recovered") and self.episode_log.exists():     # a line may exist already
            logged = {(e.get("session"), e.get("episode")) for e in read_episode_log(self.episode_log)}
        if (r["session"], r["episode"]) in logged:
            return
        self.episode_log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.episode_log, "a") as f:
            f.write(json.dumps(dict(r)) + "\n")

    def run(self) -> list[EpisodeResult]:
        def on_episode(r: EpisodeResult) -> None:
            self.episodes.append(r)
            try:
                self._log_episode(r)
            except OSError as e:
                self.get_logger().error(f"episode log not written: {e}")
            if r.get("recovered"):
                self.get_logger().info(f"recovered episode {r['episode']} of killed session {r['session']}: "
                                       f"length {r['length']} success {r['success']}")
                return
            marks = "".join(f" {k} {r[k]}" for k in ("success_source", "operator_key", "aborted") if r.get(k))
            self.get_logger().info(
                f"episode {r['episode']}: return {r['return']:.2f} success {r['success']} "
                f"length {r['length']} interventions {r['interventions']} weights v{r['weights_version']} "
                f"unacked {len(self.actor.unacked)}{marks}")
        if self.actor.spooled:                   # a killed session's transitions first
            for r in self.actor.recover_spooled():
                on_episode(r)
        if self.episode_log.exists():            # continue after earlier sessions, never repeat
            earlier = read_episode_log(self.episode_log)
            self.actor.episodes_before = len(earlier)
            self.actor.steps_before = sum(e["length"] for e in earlier)
        self.actor.run(self.steps, seed=self.train_cfg.seed, flush_timeout_s=self.flush_timeout_s,
                       on_episode=on_episode)
        return self.episodes

    def summary(self) -> dict[str, Any]:
        a = self.actor
        return {"actor_id": a.cfg.actor_id, "session": a.session, "env_steps": a.env_steps,
                "next_seq": a.next_seq, "acked": a.acked, "unacked": len(a.unacked),
                "weights_version": a.weights_version, "stats": dict(a.stats), "rejected": self.rejected,
                "success_rate": float(np.mean([e["success"] for e in self.episodes])) if self.episodes else 0.0,
                "ignored_keys": list(a.keys.ignored),
                "episodes": [dict(e) for e in self.episodes]}

    def close(self) -> None:
        out = Path(self.train_cfg.run_dir) / f"actor_{self.actor.cfg.actor_id}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_json_atomic(out, self.summary(), indent=2)
        except OSError as e:
            self.get_logger().error(f"{out} not written: {e}")
        self.actor.close()
        self.writer.close()
        self.env_handle.close()


def read_episode_log(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of an actor's episode log; a torn last line (a killed actor) is skipped."""
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def main(args: list[str] | None = None) -> int:
    def body(node: ActorNode) -> int:
        node.run()
        return 0 if not node.actor.unacked else 3
    make = rl_graph.start_or_exit("robot-rl-actor", ActorNode)   # bad input: one line, no traceback
    return rl_graph.run_node("actor", make, lambda n: n.actor.stop_event, body, args)


if __name__ == "__main__":
    sys.exit(main())
