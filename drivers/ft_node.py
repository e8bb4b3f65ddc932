"""ROS 2 node for an external F/T sensor (Robotiq FT-300 or ATI Net F/T).

Publishes `wrench` (geometry_msgs/WrenchStamped, zeroed, optionally low-passed), events on
`wrench/safety_event` (std_msgs/String JSON: limit crossings, sensor lost/back), and serves
`wrench/zero` (std_srvs/Trigger). Run it in the robot's namespace (e.g. /franka).
A sensor that goes silent is reported and re-opened with backoff; no wrench is published
while it is silent, so a listener sees the gap instead of a frozen value.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from rclpy.node import Node

from robot_rl.drivers.errors import DeviceNotFoundError

from robot_rl.drivers.ft import WrenchProcessor
from robot_rl.drivers.ft_sensors import FT300_BAUDRATE, RDT_PORT, Ft300Stream, NetFtStream
from robot_rl.drivers.ros_common import declare_config, run_node
from robot_rl.drivers.wrench_output import WrenchOutput
from robot_rl.config import Range, Text, param


_SECONDS = Range(0.0, 3600.0, low_open=True)


@dataclass
class FtSensorNodeConfig:
    """The F/T sensor node's ROS 2 parameters."""
    sensor: str = param("ft300", "'ft300' (Robotiq, serial) or 'netft' (ATI, UDP RDT)",
                        Text())       # the node names both in its own error
    frame_id: str = param("ft_sensor", "frame id of the published wrench", Text())
    port: str = param("/dev/ttyUSB0", "ft300: serial port (prefer /dev/serial/by-id/...)", Text())
    baudrate: int = param(FT300_BAUDRATE, "ft300: baud rate (19200)", Range(1, 10_000_000))
    host: str = param("192.168.1.1", "netft: sensor address", Text())
    udp_port: int = param(RDT_PORT, "netft: RDT port (49152)", Range(1, 65535))
    counts_per_force: float = param(1000000.0, "netft: counts per N (see the sensor's netftapi2.xml)",
                                    Range(0.0, 1e12, low_open=True))
    counts_per_torque: float = param(1000000.0, "netft: counts per Nm", Range(0.0, 1e12, low_open=True))
    cutoff_hz: float = param(0.0, "low-pass cutoff (Hz); 0 = off", Range(0.0, 1e5))
    force_limit: float = param(0.0, "|F| (N) above which a safety event fires; 0 = off", Range(0.0, 1e6))
    torque_limit: float = param(0.0, "|T| (Nm) above which a safety event fires; 0 = off", Range(0.0, 1e6))
    timeout: float = param(0.5, "no sample for this long (s) = sensor lost", _SECONDS)
    reconnect_backoff: float = param(0.2, "first wait (s) before reconnecting, doubled per failure", _SECONDS)
    reconnect_backoff_max: float = param(5.0, "longest wait (s) between reconnects", _SECONDS)


class FtSensorNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__("ft_sensor", **node_kwargs)
        p = declare_config(self, FtSensorNodeConfig())
        sensor, frame_id, port, baudrate, host, udp_port = p.sensor, p.frame_id, p.port, p.baudrate, p.host, p.udp_port
        cpf, cpt, cutoff, force_limit, torque_limit = (p.counts_per_force, p.counts_per_torque, p.cutoff_hz,
                                                       p.force_limit, p.torque_limit)
        timeout, backoff, backoff_max = p.timeout, p.reconnect_backoff, p.reconnect_backoff_max
        self.output = WrenchOutput(self, WrenchProcessor(cutoff, force_limit, torque_limit), frame_id)
        on_event = lambda level, text: self.output.report(level, f"{sensor}: {text}", kind="sensor")  # noqa: E731
        if sensor == "ft300":
            if not os.path.exists(port):
                raise DeviceNotFoundError(f"serial port {port} does not exist (FT-300 unplugged? see docs/hardware.md)")
            self.stream = Ft300Stream(port, self.output.publish, on_event, baudrate, timeout, backoff, backoff_max)
        elif sensor == "netft":
            self.stream = NetFtStream(host, self.output.publish, on_event, udp_port, cpf, cpt, timeout, backoff, backoff_max)
        else:
            raise ValueError(f"sensor must be 'ft300' or 'netft', got {sensor!r}")
        self.stream.start()

    def close(self) -> None:
        self.stream.stop()


def main(args: list[str] | None = None) -> int:
    return run_node(FtSensorNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
