"""Latency from each peripheral (its protocol peer) to the published ROS 2 message, p50/p99.

    python -m robot_rl.bench.peripherals [--seconds 3]

Each device runs against the same peer the tests use, on loopback / pseudo-terminals, with
the real driver node in a real rclpy graph; the time is taken when the peer hands the data
over (report read, frame pushed, Modbus access, serial/UDP send) and when the subscriber
callback runs. Serial wire time is not emulated by ptys (a 16-byte FT-300 frame takes
8.3 ms at 19200 baud on a real cable; a 2F-85 status exchange ~1.5 ms at 115200).
Ends with one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import struct
import time

os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from geometry_msgs.msg import TwistStamped, WrenchStamped  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import Float64  # noqa: E402

from robot_rl.drivers.ft_node import FtSensorNode  # noqa: E402
from robot_rl.drivers.keyboard_node import KeyboardNode  # noqa: E402
from robot_rl.drivers.peers.ft_sims import Ft300Sim, NetFtSim  # noqa: E402
from robot_rl.drivers.peers.null_modem import NullModem  # noqa: E402
from robot_rl.drivers.peers.realsense_sim import SoftwareCamera  # noqa: E402
from robot_rl.drivers.peers.robotiq_sim import Robotiq2F85Sim  # noqa: E402
from robot_rl.drivers.realsense_node import RealSenseNode  # noqa: E402
from robot_rl.drivers.robotiq_node import RobotiqNode  # noqa: E402
from robot_rl.drivers.ros_common import Spinner  # noqa: E402
from robot_rl.drivers.spacemouse import ReplayReportSource  # noqa: E402
from robot_rl.drivers.spacemouse_node import SpaceMouseNode  # noqa: E402


def machine() -> str:
    cpu = platform.processor() or "unknown cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{platform.node()} | {cpu} | {os.cpu_count()} cores | Python {platform.python_version()} | {platform.system()} {platform.release()}"


def stats(latencies_s: list[float]) -> dict:
    if not latencies_s:
        return {"n": 0}
    ms = np.asarray(latencies_s) * 1e3
    return {"n": int(ms.size), "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3), "max_ms": round(float(ms.max()), 3)}


class Graph:
    def __init__(self):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
        self.probe = rclpy.create_node("bench_probe", context=self.context)
        self.spinner = Spinner([self.probe], context=self.context)
        self.nodes = []

    def kwargs(self, **params):
        return {"context": self.context, "parameter_overrides": [Parameter(k, value=v) for k, v in params.items()]}

    def add(self, node):
        self.nodes.append(node)
        self.spinner.add(node)
        return node

    def listen(self, msg_type, topic, fn):
        self.probe.create_subscription(msg_type, topic, lambda m: fn(m, time.monotonic()), 1000)

    def close(self):
        self.spinner.close()
        for n in self.nodes:
            n.close()
            n.destroy_node()
        self.probe.destroy_node()
        rclpy.shutdown(context=self.context)


class TimedReplay(ReplayReportSource):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.read_at: dict[int, float] = {}

    def read(self, timeout_s):
        r = super().read(timeout_s)
        if r is not None:
            self.read_at[struct.unpack_from("<h", r, 1)[0]] = time.monotonic()
        return r


def bench_spacemouse(g: Graph, seconds: float) -> dict:
    # x counts 100..300 label each report; 125 Hz like a SpaceMouse Wireless
    n = int(seconds * 125)
    reports = [(0.5 + i / 125, bytes([1]) + struct.pack("<6h", 100 + i % 200, 0, 0, 0, 0, 0)) for i in range(n)]
    source = TimedReplay(reports)
    lat = []
    g.listen(TwistStamped, "/spacemouse/twist", lambda m, t: lat.append((m.twist.linear.x, t)))
    g.add(SpaceMouseNode(sources=[source], **g.kwargs(publish_rate=0.0, deadband=0.0, axis_map=["x", "y", "z", "roll", "pitch", "yaw"])))
    time.sleep(0.5 + seconds + 0.3)
    out = []
    for value, t in lat:  # value = counts / 350 -> the report it came from
        counts = int(round(value * 350))
        if counts in source.read_at and t >= source.read_at[counts]:
            out.append(t - source.read_at[counts])
    return stats(out[len(out) // 10:])  # the labels repeat every 200 reports; late ones are exact


def bench_keyboard(g: Graph, seconds: float) -> dict:
    master, slave = os.openpty()
    try:
        arrivals = []
        g.listen(TwistStamped, "/kb/twist", lambda m, t: arrivals.append((m.twist.linear.x, t)))
        node = g.add(KeyboardNode(**g.kwargs(device=os.ttyname(slave), topic_prefix="/kb", publish_rate=1.0, hold_s=0.01)))
        while node.twist_pub.get_subscription_count() == 0:
            time.sleep(0.01)
        lat = []
        for _ in range(int(seconds * 20)):
            k = len(arrivals)
            t0 = time.monotonic()
            os.write(master, b"i")
            deadline = t0 + 1
            while time.monotonic() < deadline:
                hit = [t for x, t in arrivals[k:] if x > 0]
                if hit:
                    lat.append(hit[0] - t0)
                    break
                time.sleep(0.0005)
            time.sleep(0.03)
        return stats(lat)
    finally:
        os.close(master)
        os.close(slave)


def bench_realsense(g: Graph, seconds: float) -> dict:
    cam = SoftwareCamera("900000000001")
    try:
        arrivals = []
        g.listen(Image, "/cameras/bench_cam/image_raw", lambda m, t: arrivals.append((m.data[2], t)))
        g.add(RealSenseNode(lambda: [cam.device], name="bench_camera", **g.kwargs(camera_name="bench_cam", serial_no="900000000001")))
        time.sleep(0.5)
        cam.stream()
        time.sleep(seconds)
        cam.pause()
        time.sleep(0.2)
        sent = {n % 256: t for n, _, t in cam.sent[-200:]}  # blue channel = frame number mod 256
        lat = [t - sent[b] for b, t in arrivals[-150:] if b in sent and t >= sent[b]]
        return stats(lat)
    finally:
        cam.close()


def bench_robotiq(g: Graph, seconds: float) -> tuple[dict, dict]:
    results = {}
    cable = NullModem()
    sim = Robotiq2F85Sim()
    server = sim.serve(serial_port=cable.b)
    try:
        states = []
        g.listen(JointState, "/gripper/state", lambda m, t: states.append(t))
        g.add(RobotiqNode(**g.kwargs(transport="rtu", port=cable.a, poll_rate=100.0, timeout=0.2)))
        pub = g.probe.create_publisher(Float64, "/gripper/command", 10)
        while pub.get_subscription_count() == 0:
            time.sleep(0.01)
        deadline = time.monotonic() + 5
        while not sim.status().ready and time.monotonic() < deadline:
            time.sleep(0.01)
        cmd_lat = []
        for i in range(int(seconds * 10)):
            writes = sim.writes
            t0 = time.monotonic()
            pub.publish(Float64(data=float(i % 2)))
            end = t0 + 0.1
            while time.monotonic() < end:
                if sim.writes > writes:
                    t_write = next(t for t, kind in reversed(sim.accesses) if kind == "write")
                    cmd_lat.append(t_write - t0)
                    break
                time.sleep(0.0005)
            time.sleep(max(0.0, end - time.monotonic()))
        reads = np.array([t for t, kind in list(sim.accesses) if kind == "read"])
        state_lat = []
        for t in states[-500:]:
            i = np.searchsorted(reads, t) - 1  # the status read this message came from
            if i >= 0:
                state_lat.append(t - reads[i])
        results = (stats(cmd_lat), stats(state_lat))
    finally:
        server.stop()
        cable.close()
    return results


class CountingFt300(Ft300Sim):
    def sample(self):
        w = self.wrench.copy()
        w[0] = (len(self.sent) % 300) / 100.0  # Fx labels the frame (N*100 counts are exact)
        return w


class CountingNetFt(NetFtSim):
    def sample(self):
        w = self.wrench.copy()
        w[0] = float(self.rdt_sequence % 1000)
        return w


def _wrench_lat(g, topic, sim, seconds, label) -> dict:
    arrivals = []
    g.listen(WrenchStamped, topic, lambda m, t: arrivals.append((m.wrench.force.x, t)))
    time.sleep(seconds)
    sent = list(sim.sent)
    last_sent = {}
    for t, w in sent[-2000:]:
        last_sent[label(w[0])] = t
    lat = [t - last_sent[label(x)] for x, t in arrivals[len(arrivals) // 10:] if label(x) in last_sent and t >= last_sent[label(x)]]
    return stats([x for x in lat if x < 0.5])


def bench_ft300(g: Graph, seconds: float) -> dict:
    cable = NullModem()
    sim = CountingFt300(cable.b, rate_hz=100.0)
    try:
        g.add(FtSensorNode(**g.kwargs(sensor="ft300", port=cable.a)))
        return _wrench_lat(g, "/wrench", sim, seconds, lambda v: int(round(v * 100)))
    finally:
        sim.close()
        cable.close()


def bench_netft(g: Graph, seconds: float) -> dict:
    sim = CountingNetFt(rate_hz=1000.0)
    try:
        g.add(FtSensorNode(**g.kwargs(sensor="netft", host="127.0.0.1", udp_port=sim.address[1])))
        return _wrench_lat(g, "/wrench", sim, seconds, lambda v: int(round(v)))
    finally:
        sim.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="measurement time per device")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    results = {}
    for name, fn in (("spacemouse", bench_spacemouse), ("keyboard", bench_keyboard), ("realsense", bench_realsense),
                     ("robotiq", bench_robotiq), ("ft300", bench_ft300), ("netft", bench_netft)):
        g = Graph()
        try:
            r = fn(g, args.seconds)
        finally:
            g.close()
        if name == "robotiq":
            results["robotiq_command"], results["robotiq_state"] = r
        else:
            results[name] = r
    labels = {
        "spacemouse": "HID report read -> /spacemouse/twist",
        "keyboard": "key written to pty -> /spacemouse/twist",
        "realsense": "software_device frame pushed (640x480) -> 128x128 image_raw",
        "robotiq_command": "gripper/command published -> Modbus RTU write at the gripper",
        "robotiq_state": "gripper status read (RTU) -> gripper/state",
        "ft300": "FT-300 frame sent on serial -> wrench",
        "netft": "Net F/T RDT record sent (UDP) -> wrench",
    }
    for k, v in results.items():
        print(f"{k:16s} {labels[k]:62s} n={v.get('n', 0):5d} p50={v.get('p50_ms', float('nan')):7.3f} ms "
              f"p99={v.get('p99_ms', float('nan')):7.3f} ms")
    print(json.dumps({"bench": "peripherals", "machine": machine(), "seconds": args.seconds, "results": results}))


if __name__ == "__main__":
    main()
