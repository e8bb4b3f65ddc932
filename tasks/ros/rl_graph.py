"""What the actor and learner nodes share on the ROS 2 graph: topics, QoS, bytes <-> message.

Payloads are robot_rl.transport bytes carried in std_msgs/UInt8MultiArray. Assign `data` from
`bytes` (rclpy turns it into an array.array with one memcpy); never from a numpy array, which
rclpy copies element by element (~4 s for 20 MB, measured). Receive with
`msg.data.tobytes()` (array.array -> bytes, one memcpy).

QoS:
- transitions: reliable, volatile, keep last 200 (a lost message is resent by the actor's
  ack protocol, so history only absorbs bursts);
- weights: reliable, TRANSIENT_LOCAL, depth 1: latest only, and a late-joining actor gets the
  newest weights as soon as it matches;
- acks: reliable, volatile, keep last 10 (the learner repeats them as a heartbeat).
"""
from __future__ import annotations

import faulthandler
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Callable

import rclpy
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import UInt8MultiArray

from robot_rl.drivers.ros_common import declare_config
from robot_rl.auth import KeyFileError
from robot_rl.config import Range, Text, param

TRANSITIONS_TOPIC = "/robot_rl/transitions"
WEIGHTS_TOPIC = "/robot_rl/weights"
ACKS_TOPIC = "/robot_rl/acks"

TRANSITIONS_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
                             history=HistoryPolicy.KEEP_LAST, depth=200)
WEIGHTS_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                         history=HistoryPolicy.KEEP_LAST, depth=1)
ACKS_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
                      history=HistoryPolicy.KEEP_LAST, depth=10)


def to_msg(data: bytes) -> UInt8MultiArray:
    msg = UInt8MultiArray()
    msg.data = bytes(data)
    return msg


def from_msg(msg: UInt8MultiArray) -> bytes:
    data = msg.data
    return data.tobytes() if hasattr(data, "tobytes") else bytes(data)


def log_this(count: int) -> bool:
    """Log the first 10 dropped messages, then every 1000th (a flood must not fill the disk)."""
    return count <= 10 or count % 1000 == 0


def on_stop_signals(stop: Callable[[], None]) -> None:
    """SIGINT / SIGTERM call `stop` (the loop then checkpoints and exits cleanly)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop())


@dataclass
class RunParams:
    """The parameters that pick the run, shared by the actor and the learner node."""
    config_file: str = param("", "TrainConfig YAML (e.g. RUN_DIR/config.yaml) or a shipped config's "
                             "name (e.g. train_default); empty: defaults", Text(allow_empty=True))
    task: str = param("", "task name (empty: from config_file)", Text(allow_empty=True))
    obs: str = param("", "state | pixels (empty: from config_file)",
                     Text(allow_empty=True, choices=("", "state", "pixels")))
    run_dir: str = param("", "run directory (empty: from config_file)", Text(allow_empty=True))
    seed: int = param(-1, "seed (-1: from config_file)", Range(-1, 2 ** 32 - 1))


def train_config_from_params(node: Node):
    """A TrainConfig: the YAML `config_file` (if any), then the task/obs/seed/run_dir parameters."""
    from robot_rl import config as config_lib
    from robot_rl.train import TrainConfig

    run = declare_config(node, RunParams())
    overrides = [f"{name}={getattr(run, name)}" for name in ("task", "obs", "run_dir") if getattr(run, name)]
    if run.seed >= 0:
        overrides.append(f"seed={run.seed}")
    from robot_rl.configs import resolve
    return config_lib.load(TrainConfig, resolve(run.config_file) if run.config_file else None, overrides)


def run_node(label: str, make_node: Callable[[], Node], stop_event: Callable[[Node], threading.Event],
             body: Callable[[Node], int], args: list[str] | None = None) -> int:
    """The actor's and learner's main(): logging, `kill -USR1 PID` stack dumps, rclpy without
    its signal handlers (SIGINT/SIGTERM set the loop's stop event instead, so it can checkpoint
    or flush), the node spun on a background thread, the loop `body(node)` on this one, and
    everything shut down in order, whatever happens."""
    from robot_rl.drivers.ros_common import Spinner

    logging.basicConfig(level=logging.INFO, format=f"[{label}] %(levelname)s %(name)s: %(message)s")
    faulthandler.register(signal.SIGUSR1)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node, spin = None, None
    try:
        node = make_node()
        on_stop_signals(stop_event(node).set)
        spin = Spinner([node])
        return body(node)
    except KeyFileError as e:
        logging.getLogger(label).error("%s", e)          # one line: the path and how to fix it
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        if spin is not None:
            spin.close()
        if node is not None:
            node.close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


# Bad input found while a node starts (a missing or mismatched classifier or demo dataset, a
# refused option, no robot behind the namespace): one line naming it, no traceback.
STARTUP_ERRORS = (ValueError, TimeoutError, FileNotFoundError)


def start_or_exit(program: str, make_node: Callable[[], Node]) -> Callable[[], Node]:
    """make_node, with a startup error turned into one line on stderr, "PROGRAM: cannot start:
    ...", and exit status 2 (bad input, as the CLI's errors)."""
    def make() -> Node:
        try:
            return make_node()
        except STARTUP_ERRORS as e:
            print(f"{program}: cannot start: {e}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
    return make
