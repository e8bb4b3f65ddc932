"""The twin node's ROS 2 graph, measured across processes: topic rates, publish -> receive
latency (receive time minus the header stamp, which the twin sets right before publishing),
inter-arrival jitter, and RobotEnv over the ROS backend (step period, reset time).

    MUJOCO_GL=egl .venv/bin/python -m robot_rl.bench.ros_graph [--seconds 3] [--steps 30]

The twin node runs in a child process (as `robot-rl up twin --processes` runs it); the probe
and the env run here. Prints the machine, a table, then one JSON line with every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

from robot_rl.bench.twin import machine

TOPICS = {  # topic -> (message type name, nominal Hz)
    "/franka/joint_states": ("JointState", 100.0),
    "/franka/ee_pose": ("PoseStamped", 100.0),
    "/franka/ee_twist": ("TwistStamped", 100.0),
    "/franka/wrench": ("WrenchStamped", 100.0),
    "/franka/gripper/state": ("JointState", 100.0),
    "/franka/task/state": ("JointState", 100.0),
    "/cameras/wrist/image_raw": ("Image", 15.0),
    "/cameras/front/image_raw": ("Image", 15.0),
    "/cameras/wrist/camera_info": ("CameraInfo", 15.0),
}


def _percentiles(values) -> dict:
    a = np.asarray(values, dtype=float) * 1e3
    if a.size == 0:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p99_ms": round(float(np.percentile(a, 99)), 2),
            "max_ms": round(float(a.max()), 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring window for the topics")
    parser.add_argument("--steps", type=int, default=30, help="RobotEnv steps over ROS")
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("MUJOCO_GL", "egl")

    from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image, JointState

    from robot_rl.child_process import stop_child
    from robot_rl.tasks.ros.backend import make_ros_env
    from robot_rl.tasks.ros.node_thread import NodeThread

    types = {"JointState": JointState, "PoseStamped": PoseStamped, "TwistStamped": TwistStamped,
             "WrenchStamped": WrenchStamped, "Image": Image, "CameraInfo": CameraInfo}
    child = subprocess.Popen([sys.executable, "-m", "robot_rl.sim.twin_node", "--ros-args", "-r", "__ns:=/franka"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    spin = NodeThread("bench_probe", start=False)
    node = spin.node
    lock = threading.Lock()
    arrivals: dict[str, list[tuple[float, float]]] = {t: [] for t in TOPICS}
    recording = threading.Event()

    def keeper(topic):
        def keep(msg):
            if recording.is_set():
                now = time.time()
                stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
                with lock:
                    arrivals[topic].append((now, stamp))
        return keep

    for topic, (type_name, _) in TOPICS.items():
        qos = qos_profile_sensor_data if topic.startswith("/cameras") else 100
        node.create_subscription(types[type_name], topic, keeper(topic), qos)

    spin.start()
    result: dict = {"machine": machine(), "load_avg_1m": os.getloadavg()[0]}
    try:
        deadline = time.monotonic() + 60
        got_first = lambda: all(arrivals[t] for t in TOPICS)  # noqa: E731
        recording.set()
        while not got_first():
            if time.monotonic() > deadline or child.poll() is not None:
                raise SystemExit("the twin node did not come up")
            time.sleep(0.05)
        time.sleep(0.5)
        with lock:
            for t in arrivals:
                arrivals[t].clear()
        t0 = time.time()
        time.sleep(args.seconds)
        recording.clear()
        window = time.time() - t0
        topics = {}
        print(f"{'topic':32s} {'Hz':>7s} {'nominal':>7s}  latency p50/p99/max ms   gap p99 ms")
        for topic, (_, nominal) in TOPICS.items():
            rows = arrivals[topic]
            recv = np.array([r for r, _ in rows])
            latency = [r - s for r, s in rows]
            gaps = np.diff(recv) if recv.size > 1 else []
            entry = {"hz": round(len(rows) / window, 1), "nominal_hz": nominal,
                     "latency": _percentiles(latency), "gap": _percentiles(gaps)}
            topics[topic] = entry
            lat = entry["latency"]
            print(f"{topic:32s} {entry['hz']:7.1f} {nominal:7.0f}  {lat['p50_ms']:6.2f} / {lat['p99_ms']:6.2f} / "
                  f"{lat['max_ms']:6.2f}    {entry['gap']['p99_ms']:7.2f}")
        result["topics"] = topics

        env = make_ros_env("pick_cube", obs="pixels", seed=0, max_steps=args.steps + 1)
        try:
            t = time.monotonic()
            env.reset()
            reset_s = time.monotonic() - t
            periods = []
            action = np.zeros(7, np.float32)
            last = time.monotonic()
            for _ in range(args.steps):
                env.step(action)
                now = time.monotonic()
                periods.append(now - last)
                last = now
        finally:
            env.close()
        result["env_over_ros"] = {"obs": "pixels", "reset_s": round(reset_s, 3), "steps": args.steps,
                                  "step_period": _percentiles(periods)}
        p = result["env_over_ros"]["step_period"]
        print(f"RobotEnv over ROS (pixels): reset {reset_s * 1e3:.0f} ms; step period p50 {p['p50_ms']} ms, "
              f"p99 {p['p99_ms']} ms (nominal 100)")
    finally:
        spin.close()
        stop_child(child)
    print(f"machine: {result['machine']}, load avg (1 min) {result['load_avg_1m']:.1f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
