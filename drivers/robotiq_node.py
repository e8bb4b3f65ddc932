"""ROS 2 node for a Robotiq 2F-85: `gripper/command` (Float64, 0 open .. 1 closed) in,
`gripper/state` and `gripper/status` out:

* `gripper/state` (JointState), two entries:
    name[0] = `joint_name`           position = closure, 0 fully open .. 1 fully closed (the
                                     contract every gripper keeps; the env reads it)
    name[1] = `joint_name`_opening   position = the opening in metres, 0 .. stroke_m (0.085)
  both from the calibrated linear map of drivers.robotiq.OpeningCalibration; effort = motor
  current in A on both.
* `gripper/status` (std_msgs/String, JSON: link, activation, object detection, faults, events,
  and the raw `gPO` counts with `opening_m` and `position` computed from them).

The raw counts go to the status JSON, next to the other raw register values (fault code), not
into JointState, whose positions are SI quantities of named joints.

Modbus calls block, so a worker thread owns the link and polls at `poll_rate`; the ROS
callbacks only hand it the latest command. Run it in the robot's namespace (e.g. /franka).
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass

from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, String

from robot_rl.drivers.errors import DeviceNotFoundError
from robot_rl.drivers.robotiq import (BAUDRATE, DEVICE_ID, STROKE_2F85, GripperStatus, GripperSupervisor, OpeningCalibration,
                             RobotiqGripper, make_client)
from robot_rl.drivers.ros_common import declare_config, log, run_node
from robot_rl.config import Range, Text, param


_SECONDS = Range(0.0, 3600.0, low_open=True)


@dataclass
class RobotiqNodeConfig:
    """The Robotiq gripper node's ROS 2 parameters."""
    transport: str = param("rtu", "'rtu' (USB/RS-485 serial) or 'tcp' (Modbus TCP gateway)",
                           Text(choices=("rtu", "tcp")))
    port: str = param("/dev/ttyUSB0", "serial port for rtu; prefer /dev/serial/by-id/...", Text())
    baudrate: int = param(BAUDRATE, "rtu baud rate (the 2F-85 uses 115200 8N1)", Range(1, 10_000_000))
    host: str = param("", "tcp: gateway address", Text(allow_empty=True))
    tcp_port: int = param(502, "tcp: Modbus port", Range(1, 65535))
    device_id: int = param(DEVICE_ID, "Modbus unit id (9 for Robotiq grippers)", Range(0, 247))
    timeout: float = param(0.1, "Modbus response timeout (s)", _SECONDS)
    speed: float = param(1.0, "finger speed 0..1 (rSP)", Range(0.0, 1.0))
    force: float = param(0.5, "grip force 0..1 (rFR)", Range(0.0, 1.0))
    poll_rate: float = param(50.0, "status polls per second", Range(0.0, 1000.0, low_open=True))
    joint_name: str = param("gripper", "name in gripper/state", Text())
    open_counts: int = param(13, "gPO of the fully open gripper (calibrate: docs/hardware.md)", Range(0, 255))
    closed_counts: int = param(230, "gPO closed on nothing, fingertips touching", Range(0, 255))
    stroke: float = param(STROKE_2F85, "opening of the fully open gripper (m; 2F-140: 0.14)",
                          Range(0.0, 1.0, low_open=True))
    command_timeout: float = param(1.0, "report a command not delivered after this long (s)", _SECONDS)
    reconnect_backoff: float = param(0.2, "first wait before reconnecting (s), doubled per failure", _SECONDS)
    reconnect_backoff_max: float = param(5.0, "longest wait between reconnects (s)", _SECONDS)
    auto_reset_faults: bool = param(False, "reset + re-activate after a major fault (else report only)")


class RobotiqNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__("robotiq_gripper", **node_kwargs)
        p = declare_config(self, RobotiqNodeConfig())
        transport, port, baudrate, host, tcp_port = p.transport, p.port, p.baudrate, p.host, p.tcp_port
        device_id, timeout, speed, force = p.device_id, p.timeout, p.speed, p.force
        self.poll_period = 1.0 / p.poll_rate
        self.joint_name = p.joint_name
        self.calibration = OpeningCalibration(open_counts=p.open_counts, closed_counts=p.closed_counts,
                                              stroke_m=p.stroke)
        command_timeout, backoff, backoff_max = p.command_timeout, p.reconnect_backoff, p.reconnect_backoff_max
        auto_reset = p.auto_reset_faults
        if transport == "rtu" and not os.path.exists(port):
            raise DeviceNotFoundError(f"serial port {port} does not exist (gripper unplugged? see /dev/serial/by-id and docs/hardware.md)")
        client = make_client(transport, port=port, host=host, tcp_port=tcp_port, baudrate=baudrate, timeout=timeout)
        self.supervisor = GripperSupervisor(RobotiqGripper(client, device_id), self._on_event, speed, force,
                                            command_timeout, backoff, backoff_max, auto_reset)
        self.state_pub = self.create_publisher(JointState, "gripper/state", 10)
        self.status_pub = self.create_publisher(String, "gripper/status", 10)
        self.create_subscription(Float64, "gripper/command", self._on_command, 10)
        self.rejected = 0
        self._lock = threading.Lock()  # the supervisor is used from the worker and the callback
        self._last_summary: dict | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()  # a new command is written at once, not at the next poll
        self._worker = threading.Thread(target=self._run, name="robotiq-worker", daemon=True)
        self._worker.start()

    def _on_command(self, msg: Float64) -> None:
        try:
            with self._lock:
                self.supervisor.set_target(msg.data, time.monotonic())
            self._wake.set()
        except ValueError as e:
            self.rejected += 1
            self._on_event("error", f"rejected: {e}")

    def _on_event(self, level: str, text: str) -> None:
        log(self, level, text)
        self._publish_status({"event": text, "level": level})

    def _publish_status(self, extra: dict | None = None) -> None:
        s = self.supervisor
        st: GripperStatus | None = s.last_status if s.connected else None
        summary = {
            "connected": s.connected,
            "ready": bool(st and st.ready),
            "position": self.calibration.closure(st.gPO) if st else None,
            "opening_m": self.calibration.opening_m(st.gPO) if st else None,
            "gPO": st.gPO if st else None,
            "object_detected": bool(st and st.object_detected),
            "fault": st.gFLT if st else None,
            "fault_text": st.fault_text if st else None,
            "command_pending": s.pending,
        }
        if extra is None and summary == self._last_summary:
            return  # status goes out on change and with every event
        self._last_summary = summary
        self.status_pub.publish(String(data=json.dumps({**summary, **(extra or {})})))

    def _run(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                status = self.supervisor.step(time.monotonic())
            if status is not None:
                self._publish_state(status)
            self._publish_status()
            next_t = max(next_t + self.poll_period, time.monotonic())
            self._wake.wait(next_t - time.monotonic())
            self._wake.clear()

    def _publish_state(self, status: GripperStatus) -> None:
        msg = JointState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.name = [self.joint_name, f"{self.joint_name}_opening"]
        msg.position = [self.calibration.closure(status.gPO), self.calibration.opening_m(status.gPO)]
        msg.effort = [status.current_a, status.current_a]
        self.state_pub.publish(msg)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._worker.join(timeout=3.0)
        self.supervisor.gripper.close()


def main(args: list[str] | None = None) -> int:
    return run_node(RobotiqNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
