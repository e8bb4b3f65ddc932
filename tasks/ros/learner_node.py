"""The learner as a ROS 2 node: robot_rl.learner.Learner between three topics.

    robot-rl-learner --ros-args -p config_file:=runs/x/config.yaml -p run_dir:=runs/x

Subscribes /robot_rl/transitions, publishes /robot_rl/weights (TRANSIENT_LOCAL, depth 1) and
/robot_rl/acks (tasks/ros/rl_graph.py). The training loop runs on the main thread; rclpy spins on
a background thread. A malformed or mismatched message is logged as an error and dropped; the
node keeps running. SIGINT / SIGTERM: checkpoint, write learner_stats.json, progress.json,
learning_curve.png and episodes.png, exit 0. Demos: TrainConfig.demo_dataset (recorded) or
scripted twin demos; with `backend:=ros` (actors on a real robot) only the recorded ones.
Messages are signed / verified with the run's key, `key_file` (default RUN_DIR/auth.key, created
if the run has none; docs/security.md).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rclpy.node import Node
from std_msgs.msg import UInt8MultiArray

from robot_rl.drivers.ros_common import declare_config
from robot_rl.atomic_io import write_json_atomic
from robot_rl.auth import AuthError, copy_hint, load_key
from robot_rl.config import Range, Text, param
from robot_rl.transport import TransportError
from robot_rl.tasks.ros import rl_graph
from robot_rl.tasks.ros.rl_graph import train_config_from_params


_SECONDS = Range(0.0, 1e9)           # a period (0: every time)


@dataclass
class LearnerNodeConfig:
    """The learner node's ROS 2 parameters (beside rl_graph.RunParams, which pick the run)."""
    weights_every_s: float = param(1.0, "publish weights at most this often (s)", _SECONDS)
    heartbeat_every_s: float = param(0.5, "ack heartbeat period (s)", _SECONDS)
    checkpoint_every_s: float = param(60.0, "agent checkpoint period (s)", _SECONDS)
    free_running: bool = param(False, "update without the updates-per-step cap")
    disk_retry_s: float = param(1.0, "disk full: retry writing held-back episodes this often (s)", _SECONDS)
    stop_after_steps: int = param(0, "exit once this many transitions are in and trained on (0: never)",
                                  Range(0, 2 ** 63 - 1))
    backend: str = param("twin", "the actors' robot: twin, or ros (a real robot: demos come from "
                         "demo_dataset, scripted twin demos are refused)", Text(choices=("twin", "ros")))
    transitions_topic: str = param(rl_graph.TRANSITIONS_TOPIC, "transitions topic", Text())
    weights_topic: str = param(rl_graph.WEIGHTS_TOPIC, "weights topic", Text())
    acks_topic: str = param(rl_graph.ACKS_TOPIC, "acks topic", Text())
    key_file: str = param("", "the run's auth key (empty: RUN_DIR/auth.key, created if the run has none)",
                          Text(allow_empty=True))


class LearnerNode(Node):
    def __init__(self, **kwargs: Any):
        super().__init__("learner", **kwargs)
        from robot_rl.learner import Learner, LearnerConfig

        self.train_cfg = train_config_from_params(self)
        p = declare_config(self, LearnerNodeConfig())
        opts = LearnerConfig(weights_every_s=p.weights_every_s, heartbeat_every_s=p.heartbeat_every_s,
                             checkpoint_every_s=p.checkpoint_every_s, free_running=p.free_running,
                             disk_retry_s=p.disk_retry_s, stop_after_steps=p.stop_after_steps,
                             robot_backend=p.backend)
        topics = {name: getattr(p, f"{name}_topic") for name in ("transitions", "weights", "acks")}
        self.weights_pub = self.create_publisher(UInt8MultiArray, topics["weights"], rl_graph.WEIGHTS_QOS)
        self.acks_pub = self.create_publisher(UInt8MultiArray, topics["acks"], rl_graph.ACKS_QOS)
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(str(Path(self.train_cfg.run_dir) / "tb" / "learner"))
        key_file = p.key_file
        self.learner = Learner(self.train_cfg, opts, key=load_key(key_file) if key_file else None,
                               publish_weights=lambda b: self.weights_pub.publish(rl_graph.to_msg(b)),
                               publish_ack=lambda b: self.acks_pub.publish(rl_graph.to_msg(b)),
                               writer=self.writer)
        self.sub = self.create_subscription(UInt8MultiArray, topics["transitions"], self._on_transitions,
                                            rl_graph.TRANSITIONS_QOS)
        key_path = Path(key_file) if key_file else self.learner.key_path
        self.get_logger().info(f"auth key {key_path}: actors on other machines need it; {copy_hint(key_path)}")
        self.get_logger().info(f"learner session {self.learner.session}: run dir {self.train_cfg.run_dir}, "
                               f"{len(self.learner.online)} online / {len(self.learner.demo)} demo transitions, "
                               f"{self.learner.counters['updates']} updates")

    def _on_transitions(self, msg: UInt8MultiArray) -> None:
        try:
            self.learner.receive(rl_graph.from_msg(msg))
        except TransportError as e:
            self.learner.stats["rejected"] += 1
            if isinstance(e, AuthError) and not rl_graph.log_this(self.learner.stats["unauthenticated"]):
                return                  # a flood of forged messages must not flood the log
            self.get_logger().error(f"rejected a transition message: {e}")
        except Exception as e:  # noqa: BLE001 - a bad message must never stop the learner
            self.learner.stats["rejected"] += 1
            self.get_logger().error(f"rejected a transition message ({type(e).__name__}: {e})")

    def stats(self) -> dict[str, Any]:
        lr = self.learner
        return {"session": lr.session, "counters": dict(lr.counters), "stats": dict(lr.stats),
                "status": dict(lr.status), "blocked_episodes": len(lr.blocked),
                "online": len(lr.online), "demo": len(lr.demo),
                "acked": {k: v["acked"] for k, v in lr.sessions.items()}}

    def close(self) -> None:
        try:
            write_json_atomic(Path(self.train_cfg.run_dir) / "learner_stats.json", self.stats(), indent=2)
        except OSError as e:
            self.get_logger().error(f"learner_stats.json not written: {e}")
        self.learner.write_curves()
        self.learner.close()
        self.writer.close()


def main(args: list[str] | None = None) -> int:
    def body(node: LearnerNode) -> int:
        counters = node.learner.run()
        node.get_logger().info(f"learner stopped: {counters}")
        return 0
    make = rl_graph.start_or_exit("robot-rl-learner", LearnerNode)   # bad input: one line, no traceback
    return rl_graph.run_node("learner", make, lambda n: n.learner.stop_event, body, args)


if __name__ == "__main__":
    sys.exit(main())
