"""ROS 2 node for an external F/T sensor (Robotiq FT-300 or ATI Net F/T).

Publishes `wrench` (geometry_msgs/WrenchStamped, zeroed, optionally low-passed), events on
`wrench/safety_event` (std_msgs/String JSON: limit crossings, sensor lost/back), and serves
`wrench/zero` (std_srvs/Trigger). Run it in the robot's namespace (e.g. /franka).
A sensor that goes silent is reported and re-opened with backoff; no wrench is published
while it is silent, so a listener sees the gap instead of a frozen value.
"""
from __future__ import annotations

import os

from rclpy.node import Node

from drivers.errors import DeviceNotFoundError

from drivers.ft import WrenchProcessor
from drivers.ft_sensors import FT300_BAUDRATE, RDT_PORT, Ft300Stream, NetFtStream
from drivers.ros_common import declare, run_node
from drivers.wrench_output import WrenchOutput


class FtSensorNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__("ft_sensor", **node_kwargs)
        sensor = declare(self, "sensor", "ft300", "'ft300' (Robotiq, serial) or 'netft' (ATI, UDP RDT)")
        frame_id = declare(self, "frame_id", "ft_sensor", "frame id of the published wrench")
        port = declare(self, "port", "/dev/ttyUSB0", "ft300: serial port (prefer /dev/serial/by-id/...)")
        baudrate = declare(self, "baudrate", FT300_BAUDRATE, "ft300: baud rate (19200)")
        host = declare(self, "host", "192.168.1.1", "netft: sensor address")
        udp_port = declare(self, "udp_port", RDT_PORT, "netft: RDT port (49152)")
        cpf = declare(self, "counts_per_force", 1000000.0, "netft: counts per N (see the sensor's netftapi2.xml)")
        cpt = declare(self, "counts_per_torque", 1000000.0, "netft: counts per Nm")
        cutoff = declare(self, "cutoff_hz", 0.0, "low-pass cutoff (Hz); 0 = off")
        force_limit = declare(self, "force_limit", 0.0, "|F| (N) above which a safety event fires; 0 = off")
        torque_limit = declare(self, "torque_limit", 0.0, "|T| (Nm) above which a safety event fires; 0 = off")
        timeout = declare(self, "timeout", 0.5, "no sample for this long (s) = sensor lost")
        backoff = declare(self, "reconnect_backoff", 0.2, "first wait (s) before reconnecting, doubled per failure")
        backoff_max = declare(self, "reconnect_backoff_max", 5.0, "longest wait (s) between reconnects")
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
