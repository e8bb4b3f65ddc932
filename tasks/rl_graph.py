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

import signal
from typing import Callable

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import UInt8MultiArray

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


def on_stop_signals(stop: Callable[[], None]) -> None:
    """SIGINT / SIGTERM call `stop` (the loop then checkpoints and exits cleanly)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop())
