"""ROS 2 keyboard teleop: the same `/spacemouse/twist` + `/spacemouse/joy` as the SpaceMouse node.

Reads the terminal it runs in (raw mode, restored on exit) or the `device` parameter: a tty or
pty path, or a Linux input device /dev/input/eventN. Ctrl-C in raw mode ends the node.
"""
from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from sensor_msgs.msg import Joy

from robot_rl.drivers.errors import DeviceNotFoundError
from robot_rl.drivers.keyboard import EvdevKeys, KeyBindings, KeyboardTeleop, KeyReader, TerminalKeys
from robot_rl.drivers.ros_common import declare_config, run_node
from robot_rl.config import Range, Text, param

HELP = ("keyboard teleop: space takeover | s success f failure r reset | c close x open | "
        "i/k x  j/l y  u/o z  q/e yaw | Ctrl-C quit")


_KEYS = KeyBindings()          # the default key of each operator action


@dataclass
class KeyboardNodeConfig:
    """The keyboard teleop node's ROS 2 parameters."""
    device: str = param("", "'' = this terminal (stdin); a tty/pty path; or /dev/input/eventN", Text(allow_empty=True))
    input_type: str = param("auto", "'auto' (evdev for /dev/input/*, else terminal), 'terminal' or 'evdev'",
                            Text(choices=("auto", "terminal", "evdev")))
    topic_prefix: str = param("/spacemouse", "publishes <prefix>/twist and <prefix>/joy", Text())
    frame_id: str = param("base", "frame id of the twist", Text())
    speed: float = param(0.5, "command magnitude of a motion key (normalised, 1 = full)", Range(0.0, 1.0))
    hold_s: float = param(0.2, "terminal input: how long one press of a motion key acts", Range(0.0, 60.0))
    event_hold_s: float = param(0.3, "how long success/failure/reset/gripper stay 1 in Joy", Range(0.0, 60.0))
    publish_rate: float = param(50.0, "Hz at which the current command is re-published",
                                Range(0.0, 1000.0, low_open=True))
    key_takeover: str = param(_KEYS.takeover, "toggles takeover", Text())
    key_success: str = param(_KEYS.success, "marks the episode a success", Text())
    key_failure: str = param(_KEYS.failure, "marks the episode a failure", Text())
    key_reset: str = param(_KEYS.reset, "asks for a reset", Text())
    key_gripper_close: str = param(_KEYS.gripper_close, "closes the gripper", Text())
    key_gripper_open: str = param(_KEYS.gripper_open, "opens the gripper", Text())
    key_axes: tuple[str, ...] = param(tuple(_KEYS.axes), "6 x '<plus><minus>' keys for vx,vy,vz,wx,wy,wz ('' = none)",
                                      Text(allow_empty=True))


class KeyboardNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__("keyboard_teleop", **node_kwargs)
        p = declare_config(self, KeyboardNodeConfig())
        device, input_type, prefix, self.frame_id = p.device, p.input_type, p.topic_prefix, p.frame_id
        speed, hold, event_hold, rate = p.speed, p.hold_s, p.event_hold_s, p.publish_rate
        bindings = KeyBindings(takeover=p.key_takeover, success=p.key_success, failure=p.key_failure,
                               reset=p.key_reset, gripper_close=p.key_gripper_close,
                               gripper_open=p.key_gripper_open, axes=p.key_axes)
        self.teleop = KeyboardTeleop(bindings, speed, hold, event_hold)
        self.twist_pub = self.create_publisher(TwistStamped, f"{prefix}/twist", 10)
        self.joy_pub = self.create_publisher(Joy, f"{prefix}/joy", 10)
        self.ended = threading.Event()
        self._owns_terminal = not device
        try:
            evdev = input_type == "evdev" or (input_type == "auto" and device.startswith("/dev/input/"))
            keys = EvdevKeys(device) if evdev else TerminalKeys(device)
        except OSError as e:
            raise DeviceNotFoundError(f"keyboard input {device or 'stdin'}: {e}") from e
        self.reader = KeyReader(keys, self.teleop, self._now, lambda t: self.publish(), self._on_end)
        self.create_timer(1.0 / rate, self.publish)
        if not device:
            print(HELP, end="\r\n", file=sys.stderr)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_end(self, why: str) -> None:
        self.get_logger().warn(f"keyboard input ended ({why}); command zeroed")
        self.teleop = KeyboardTeleop(self.teleop.bindings, 0.0)  # safe: no motion, no takeover
        self.publish()
        self.ended.set()
        if why == "Ctrl-C" and self._owns_terminal:
            os.kill(os.getpid(), 2)  # raw mode ate SIGINT; hand it back so rclpy.spin ends

    def publish(self) -> None:
        t = self.get_clock().now()
        cmd, buttons = self.teleop.snapshot(t.nanoseconds * 1e-9)
        twist = TwistStamped()
        twist.header.stamp, twist.header.frame_id = t.to_msg(), self.frame_id
        (twist.twist.linear.x, twist.twist.linear.y, twist.twist.linear.z,
         twist.twist.angular.x, twist.twist.angular.y, twist.twist.angular.z) = (float(v) for v in np.asarray(cmd))
        joy = Joy()
        joy.header = twist.header
        joy.axes = [float(v) for v in cmd]
        joy.buttons = buttons
        self.twist_pub.publish(twist)
        self.joy_pub.publish(joy)

    def close(self) -> None:
        self.reader.stop()


def main(args: list[str] | None = None) -> int:
    return run_node(KeyboardNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
