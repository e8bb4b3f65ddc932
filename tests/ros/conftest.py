"""Real rclpy graphs around the twin node: private Contexts, executors spun on threads with a
stop path, subprocesses stopped by pid - always, also when a test fails."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

# A domain of our own per test session so parallel runs on one machine don't cross-talk.
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("MUJOCO_GL", "egl")

from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from robot_rl.tasks.ros.node_thread import NodeThread  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


class Inbox:
    """Messages of one topic with their arrival times (time.monotonic)."""

    def __init__(self, node: Node, msg_type, topic: str, qos=50):
        self.msgs: list = []
        self.times: list[float] = []
        self._cond = threading.Condition()
        self.sub = node.create_subscription(msg_type, topic, self._on_msg, qos)

    def _on_msg(self, msg) -> None:
        with self._cond:
            self.msgs.append(msg)
            self.times.append(time.monotonic())
            self._cond.notify_all()

    def wait_count(self, n: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.msgs) < n:
                left = deadline - time.monotonic()
                assert left > 0, f"{self.sub.topic_name}: {len(self.msgs)} of {n} messages in {timeout} s"
                self._cond.wait(left)

    def rate(self, seconds: float) -> float:
        """Messages per second arriving over the next `seconds`."""
        with self._cond:
            start = len(self.msgs)
        time.sleep(seconds)
        with self._cond:
            return (len(self.msgs) - start) / seconds

    def __len__(self) -> int:
        with self._cond:
            return len(self.msgs)


class Graph:
    """A probe node and any nodes added, in a private Context, spun on one thread
    (tasks/ros/node_thread.py: a SingleThreadedExecutor; Jazzy's MultiThreadedExecutor busy-loops
    holding the GIL, ros2/rclpy#1452, and starved the in-process twin's physics thread: the
    100 Hz twin was received at 3-15 Hz here). Use it as a context manager: it always shuts down."""

    def __init__(self, probe_name: str = "test_probe"):
        self._spin = NodeThread(probe_name)
        self.context = self._spin.context
        self.probe = self._spin.node

    def __enter__(self) -> "Graph":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def add(self, node: Node) -> Node:
        return self._spin.add(node)

    def remove(self, node: Node) -> None:
        """Stops spinning a node added before; the caller closes and destroys it."""
        self._spin.remove(node)

    def kwargs(self, namespace: str = "/franka", **params) -> dict:
        return {"context": self.context, "namespace": namespace,
                "parameter_overrides": [Parameter(k, value=v) for k, v in params.items()]}

    def inbox(self, msg_type, topic: str, qos=50) -> Inbox:
        return Inbox(self.probe, msg_type, topic, qos)

    def wait_matched(self, publisher, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while publisher.get_subscription_count() == 0:
            assert time.monotonic() < deadline, f"no subscriber matched {publisher.topic_name}"
            time.sleep(0.01)

    def shutdown(self) -> None:
        self._spin.close()


@pytest.fixture
def graph():
    with Graph() as g:
        yield g


@pytest.fixture(scope="module")
def twin_graph():
    """One in-process twin node (pick_cube, both cameras) under /franka for a test module:
    starting the twin takes ~1 s, so the module's tests share it."""
    from robot_rl.sim.twin_node import TwinNode

    with Graph() as g:
        # As the shipped twin rig: its launch allows the precision reset profile (Cartesian resets).
        g.twin = g.add(TwinNode(**g.kwargs(reset_profile="precision")))
        yield g


def start_process(args: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, **kwargs)


def stop_process(proc: subprocess.Popen, sig=signal.SIGINT, timeout: float = 10.0) -> str:
    """Stops a process we started (by its pid): sig, then SIGKILL; returns its output."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"   # a zombie is gone for our purposes
    except FileNotFoundError:
        return False


def pytest_collection_modifyitems(config, items):
    """The graph tests run real nodes and processes on wall-clock deadlines. On a shared 2-core
    machine a stall of the host can miss one; each gets two reruns before it counts as failed.
    (Rates and latencies themselves are measured in bench/ros_graph.py, not asserted here.)"""
    here = str(ROOT / "tests" / "ros")
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.flaky(reruns=2, reruns_delay=1))
