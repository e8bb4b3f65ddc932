"""RosTeleopSource: the teleop topics of a running graph as a teleop source for the operator
tools (record-demos --ros, record-labels --input ros).

    source = RosTeleopSource()          # /spacemouse/twist + /spacemouse/joy
    twist, buttons = source.snapshot()  # base-frame twist (6,), Joy buttons (drivers/teleop.py)

Whatever publishes the drivers/teleop.py contract drives it: the SpaceMouse node, the keyboard
node, or a test's publisher. Input older than `timeout_s` reads as idle (zero twist, no
button), so a teleop node that stops never leaves the arm moving or a button held. At start
it waits up to `connect_timeout` s for the first teleop message (TimeoutError naming the
topics otherwise), so a recording never starts before the operator's device is heard. The
node spins on its own executor thread in a private Context (or the caller's); close() stops it.
"""
from __future__ import annotations

import threading
import time

import numpy as np
from geometry_msgs.msg import TwistStamped
from rclpy.context import Context
from sensor_msgs.msg import Joy

from robot_rl.tasks.ros.node_thread import NodeThread


class RosTeleopSource:
    def __init__(self, context: Context | None = None, twist_topic: str = "/spacemouse/twist",
                 joy_topic: str = "/spacemouse/joy", timeout_s: float = 0.5, connect_timeout: float = 10.0):
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.ended: str | None = None            # a topic source never ends by itself (Ctrl-C does)
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._twist, self._twist_t = np.zeros(6), -np.inf
        self._buttons, self._joy_t = [], -np.inf
        self._spinner = NodeThread("operator_teleop", context=context, start=False)
        self.context, self.node = self._spinner.context, self._spinner.node
        self.node.create_subscription(TwistStamped, twist_topic, self._on_twist, 10)
        self.node.create_subscription(Joy, joy_topic, self._on_joy, 10)
        self._spinner.start()
        deadline = time.monotonic() + connect_timeout
        while self._twist_t == -np.inf and self._joy_t == -np.inf:
            if time.monotonic() > deadline:
                self.close()
                raise TimeoutError(f"no teleop input on {twist_topic} or {joy_topic} within {connect_timeout} s: "
                                   "is the spacemouse or keyboard node running (same ROS_DOMAIN_ID)?")
            time.sleep(0.02)

    def _on_twist(self, msg: TwistStamped) -> None:
        t = msg.twist
        v = np.array([t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z])
        if not np.all(np.isfinite(v)):
            self.node.get_logger().error(f"ignored a non-finite teleop twist {v.tolist()}")
            return
        with self._lock:
            self._twist, self._twist_t = v, time.monotonic()

    def _on_joy(self, msg: Joy) -> None:
        with self._lock:
            self._buttons, self._joy_t = [int(b) for b in msg.buttons], time.monotonic()

    def snapshot(self) -> tuple[np.ndarray, list[int]]:
        from robot_rl.drivers.teleop import joy_buttons

        now = time.monotonic()
        with self._lock:
            twist = self._twist.copy() if now - self._twist_t <= self.timeout_s else np.zeros(6)
            buttons = list(self._buttons) if now - self._joy_t <= self.timeout_s else joy_buttons()
        return twist, buttons

    def close(self) -> None:
        self._spinner.close()
