"""The learner as a ROS 2 node: robot_rl.learner.Learner between three topics.

    robot-rl-learner --ros-args -p config_file:=runs/x/config.yaml -p run_dir:=runs/x

Subscribes /robot_rl/transitions, publishes /robot_rl/weights (TRANSIENT_LOCAL, depth 1) and
/robot_rl/acks (tasks/rl_graph.py). The training loop runs on the main thread; rclpy spins on
a background thread. A malformed or mismatched message is logged as an error and dropped; the
node keeps running. SIGINT / SIGTERM: checkpoint, write learner_stats.json, exit 0.
"""
from __future__ import annotations

import faulthandler
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import UInt8MultiArray

from robot_rl.transport import TransportError
from drivers.ros_common import Spinner
from tasks import rl_graph


def declare(node: Node, name: str, default: Any, description: str) -> Any:
    node.declare_parameter(name, default, ParameterDescriptor(description=description))
    return node.get_parameter(name).value


def train_config_from_params(node: Node):
    """A TrainConfig: the YAML `config_file` (if any), then the task/obs/seed/run_dir parameters."""
    from robot_rl import config as config_lib
    from robot_rl.train import TrainConfig

    path = declare(node, "config_file", "", "TrainConfig YAML (e.g. RUN_DIR/config.yaml); empty: defaults")
    overrides = []
    for name, default, what in (("task", "", "task name (empty: from config_file)"),
                                ("obs", "", "state | pixels (empty: from config_file)"),
                                ("run_dir", "", "run directory (empty: from config_file)")):
        value = declare(node, name, default, what)
        if value:
            overrides.append(f"{name}={value}")
    seed = declare(node, "seed", -1, "seed (-1: from config_file)")
    if seed >= 0:
        overrides.append(f"seed={seed}")
    return config_lib.load(TrainConfig, path or None, overrides)


class LearnerNode(Node):
    def __init__(self, **kwargs: Any):
        super().__init__("learner", **kwargs)
        from robot_rl.learner import Learner, LearnerConfig

        self.train_cfg = train_config_from_params(self)
        opts = LearnerConfig(
            weights_every_s=declare(self, "weights_every_s", 1.0, "publish weights at most this often (s)"),
            heartbeat_every_s=declare(self, "heartbeat_every_s", 0.5, "ack heartbeat period (s)"),
            checkpoint_every_s=declare(self, "checkpoint_every_s", 60.0, "agent checkpoint period (s)"),
            free_running=declare(self, "free_running", False, "update without the updates-per-step cap"),
            stop_after_steps=declare(self, "stop_after_steps", 0,
                                     "exit once this many transitions are in and trained on (0: never)"))
        topics = {name: declare(self, f"{name}_topic", default, f"{name} topic")
                  for name, default in (("transitions", rl_graph.TRANSITIONS_TOPIC),
                                        ("weights", rl_graph.WEIGHTS_TOPIC), ("acks", rl_graph.ACKS_TOPIC))}
        self.weights_pub = self.create_publisher(UInt8MultiArray, topics["weights"], rl_graph.WEIGHTS_QOS)
        self.acks_pub = self.create_publisher(UInt8MultiArray, topics["acks"], rl_graph.ACKS_QOS)
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(str(Path(self.train_cfg.run_dir) / "tb" / "learner"))
        self.learner = Learner(self.train_cfg, opts,
                               publish_weights=lambda b: self.weights_pub.publish(rl_graph.to_msg(b)),
                               publish_ack=lambda b: self.acks_pub.publish(rl_graph.to_msg(b)),
                               writer=self.writer)
        self.sub = self.create_subscription(UInt8MultiArray, topics["transitions"], self._on_transitions,
                                            rl_graph.TRANSITIONS_QOS)
        self.get_logger().info(f"learner session {self.learner.session}: run dir {self.train_cfg.run_dir}, "
                               f"{len(self.learner.online)} online / {len(self.learner.demo)} demo transitions, "
                               f"{self.learner.counters['updates']} updates")

    def _on_transitions(self, msg: UInt8MultiArray) -> None:
        try:
            self.learner.receive(rl_graph.from_msg(msg))
        except TransportError as e:
            self.learner.stats["rejected"] += 1
            self.get_logger().error(f"rejected a transition message: {e}")
        except Exception as e:  # noqa: BLE001 - a bad message must never stop the learner
            self.learner.stats["rejected"] += 1
            self.get_logger().error(f"rejected a transition message ({type(e).__name__}: {e})")

    def stats(self) -> dict[str, Any]:
        lr = self.learner
        return {"session": lr.session, "counters": dict(lr.counters), "stats": dict(lr.stats),
                "online": len(lr.online), "demo": len(lr.demo),
                "acked": {k: v["acked"] for k, v in lr.sessions.items()}}

    def close(self) -> None:
        (Path(self.train_cfg.run_dir) / "learner_stats.json").write_text(json.dumps(self.stats(), indent=2))
        self.learner.close()
        self.writer.close()


def main(args: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[learner] %(levelname)s %(name)s: %(message)s")
    faulthandler.register(signal.SIGUSR1)      # `kill -USR1 PID` prints every thread's stack
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node, spin = None, None
    try:
        node = LearnerNode()
        rl_graph.on_stop_signals(node.learner.stop_event.set)
        spin = Spinner([node])
        counters = node.learner.run()
        node.get_logger().info(f"learner stopped: {counters}")
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        if spin is not None:
            spin.stop()
        if node is not None:
            node.close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    sys.exit(main())
