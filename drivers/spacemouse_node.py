"""ROS 2 node for one or two SpaceMice: `/spacemouse/twist` (TwistStamped) and `/spacemouse/joy` (Joy).

With two devices (two arms) each gets its own namespace: `/spacemouse/<name>/twist`, `.../joy`.
A twist is published right when a report is decoded (takeover latency = one report period),
and the latest command is re-published at `publish_rate` so a listener sees holds and zeros.
A lost device is reported, its command goes to zero (takeover released), and the node
re-opens it with backoff. With no device at start the node fails with a clear error.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from sensor_msgs.msg import Joy
from std_msgs.msg import Float64

from robot_rl.drivers.ros_common import declare_config, run_node
from robot_rl.drivers.spacemouse import (
    SERL_AXIS_MAP,
    HidReportSource,
    ReportSource,
    SpaceMouseReader,
    SpaceMouseState,
    TeleopMapping,
)
from robot_rl.drivers.teleop import joy_buttons
from robot_rl.config import Range, Text, param


class _Device:
    """One SpaceMouse: its reader, mapping and publishers."""

    def __init__(self, node: "SpaceMouseNode", index: int, name: str, device_id: str, source: ReportSource | None):
        self.node, self.index, self.name, self.device_id = node, index, name, device_id
        prefix = f"/spacemouse/{name}" if name else "/spacemouse"
        self.twist_pub = node.create_publisher(TwistStamped, f"{prefix}/twist", 10)
        self.joy_pub = node.create_publisher(Joy, f"{prefix}/joy", 10)
        self.lock = threading.Lock()
        self.command = np.zeros(6)
        self.buttons: list[int] = joy_buttons()
        self.reader: SpaceMouseReader | None = None
        self.backoff = node.reconnect_backoff
        self.next_retry = 0.0
        self.lost = False
        self.last_gripper: float | None = None
        self._start(source if source is not None else self._open())

    def _open(self) -> ReportSource:
        did = self.device_id
        if did.startswith("/"):
            return HidReportSource(path=did)
        if did.startswith("serial:"):
            return HidReportSource(serial=did.removeprefix("serial:"))
        return HidReportSource(index=int(did) if did.isdigit() else self.index)

    def _start(self, source: ReportSource) -> None:
        self.lost = False
        self.reader = SpaceMouseReader(source, self._on_update, self._on_error)

    def _on_update(self, state: SpaceMouseState, kind: str, t: float) -> None:
        cmd = self.node.mapping.command(state.axes())
        n_buttons = max(self.node.button_close, self.node.button_open) + 1
        raw = [int(state.button(i)) for i in range(max(n_buttons, state.buttons.bit_length()))]
        active = set()
        if state.button(self.node.button_close):
            active.add("gripper_close")
        elif state.button(self.node.button_open):
            active.add("gripper_open")
        if np.any(cmd != 0.0) or active:
            active.add("takeover")
        with self.lock:
            self.command, self.buttons = cmd, joy_buttons(active, raw)
        self.publish()
        self._gripper(active)

    def _gripper(self, active: set[str]) -> None:
        if self.node.gripper_pub is None:
            return
        target = 1.0 if "gripper_close" in active else 0.0 if "gripper_open" in active else None
        if target is not None and target != self.last_gripper:  # on press, not on every report
            self.node.gripper_pub.publish(Float64(data=target))
        self.last_gripper = target

    def _on_error(self, error: Exception) -> None:
        self.node.get_logger().error(f"SpaceMouse {self.name or self.device_id or 0} lost: {error}; command zeroed")
        with self.lock:
            self.command, self.buttons = np.zeros(6), joy_buttons()
        self.lost = True
        self.next_retry = time.monotonic() + self.backoff
        self.publish()

    def retry(self) -> None:
        """Re-opens a lost device, doubling the wait after each failure (capped)."""
        if not self.lost or time.monotonic() < self.next_retry:
            return
        try:
            source = self._open()
        except Exception as e:
            self.backoff = min(self.backoff * 2.0, self.node.reconnect_backoff_max)
            self.next_retry = time.monotonic() + self.backoff
            self.node.get_logger().warn(f"SpaceMouse reconnect failed ({e}); next try in {self.backoff:.1f} s")
            return
        self.node.get_logger().info("SpaceMouse reconnected")
        self.backoff = self.node.reconnect_backoff
        self._start(source)

    def publish(self) -> None:
        with self.lock:
            cmd, buttons = self.command.copy(), list(self.buttons)
        now = self.node.get_clock().now().to_msg()
        twist = TwistStamped()
        twist.header.stamp, twist.header.frame_id = now, self.node.frame_id
        (twist.twist.linear.x, twist.twist.linear.y, twist.twist.linear.z,
         twist.twist.angular.x, twist.twist.angular.y, twist.twist.angular.z) = (float(v) for v in cmd)
        joy = Joy()
        joy.header.stamp, joy.header.frame_id = now, self.node.frame_id
        joy.axes = [float(v) for v in cmd]
        joy.buttons = buttons
        self.twist_pub.publish(twist)
        self.joy_pub.publish(joy)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.stop()


_SECONDS = Range(0.0, 3600.0, low_open=True)


@dataclass
class SpaceMouseNodeConfig:
    """The SpaceMouse node's ROS 2 parameters."""
    device_names: list[str] = param([""], "one name per device; '' = /spacemouse, else /spacemouse/<name> "
                                    "(two arms: e.g. ['left', 'right'])", Text(allow_empty=True))
    device_ids: list[str] = param([""], "per device: '' = n-th found, 'K' = K-th found, '/dev/hidrawN' = path, "
                                  "'serial:XYZ' = serial number", Text(allow_empty=True))
    frame_id: str = param("base", "frame id of the twist (the robot base frame after axis_map)", Text())
    axis_map: tuple[str, ...] = param(SERL_AXIS_MAP, "output [vx,vy,vz,wx,wy,wz] from ±x,y,z,roll,pitch,yaw "
                                      "of the device (SERL default)", Text())
    deadband: float = param(0.05, "fraction of full deflection read as zero", Range(0.0, 1.0, high_open=True))
    scale_linear: float = param(1.0, "linear output per unit deflection", Range(0.0, 1e6))
    scale_angular: float = param(1.0, "angular output per unit deflection", Range(0.0, 1e6))
    button_close: int = param(0, "device button that closes the gripper (0 = left)", Range(0, 31))
    button_open: int = param(1, "device button that opens the gripper (1 = right)", Range(0, 31))
    publish_rate: float = param(50.0, "Hz at which the latest command is re-published (0 = only on reports)",
                                Range(0.0, 1000.0))
    gripper_topic: str = param("", "if set, gripper buttons also publish std_msgs/Float64 here on press",
                               Text(allow_empty=True))
    reconnect_backoff: float = param(0.5, "first wait (s) before re-opening a lost device", _SECONDS)
    reconnect_backoff_max: float = param(5.0, "longest wait (s) between re-open tries", _SECONDS)


class SpaceMouseNode(Node):
    def __init__(self, sources: list[ReportSource] | None = None, **node_kwargs):
        """sources: already-open report sources (replays in tests); None opens HID devices."""
        super().__init__("spacemouse", **node_kwargs)
        p = declare_config(self, SpaceMouseNodeConfig())
        names, ids, self.frame_id, axis_map = p.device_names, p.device_ids, p.frame_id, p.axis_map
        deadband, scale_lin, scale_ang = p.deadband, p.scale_linear, p.scale_angular
        self.button_close, self.button_open, rate, gripper_topic = p.button_close, p.button_open, p.publish_rate, p.gripper_topic
        self.reconnect_backoff, self.reconnect_backoff_max = p.reconnect_backoff, p.reconnect_backoff_max
        if len(names) > 2:
            raise ValueError(f"at most two SpaceMice are supported, got device_names={names}")
        ids = list(ids) + [""] * (len(names) - len(ids))
        self.mapping = TeleopMapping(tuple(axis_map), deadband, scale_lin, scale_ang)
        self.gripper_pub = self.create_publisher(Float64, gripper_topic, 10) if gripper_topic else None
        self.devices: list[_Device] = []
        try:
            for i, name in enumerate(names):
                source = sources[i] if sources is not None else None
                self.devices.append(_Device(self, i, name, ids[i], source))
        except Exception:
            self.close()
            raise
        if rate > 0:
            self.create_timer(1.0 / rate, self._tick)
        else:
            self.create_timer(0.1, self._retry_only)

    def _tick(self) -> None:
        for d in self.devices:
            d.retry()
            d.publish()

    def _retry_only(self) -> None:
        for d in self.devices:
            d.retry()

    def close(self) -> None:
        for d in self.devices:
            d.close()


def main(args: list[str] | None = None) -> int:
    return run_node(SpaceMouseNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
