"""Real rclpy graphs for the driver tests: a private Context per test, spun on a thread, always shut down."""
from __future__ import annotations

import os
import threading
import time

import pytest

# A domain of our own per test session so parallel runs on one machine don't cross-talk;
# discovery stays on this host.
DOMAIN_ID = 1 + os.getpid() % 100
os.environ.setdefault("ROS_DOMAIN_ID", str(DOMAIN_ID))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import rclpy  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from robot_rl.drivers.ros_common import Spinner  # noqa: E402


class Inbox:
    """Collects messages of one topic with their arrival time (time.monotonic)."""

    def __init__(self, node: Node, msg_type, topic: str):
        self.msgs: list = []
        self.times: list[float] = []
        self._cond = threading.Condition()
        self.sub = node.create_subscription(msg_type, topic, self._on_msg, 100)

    def _on_msg(self, msg) -> None:
        with self._cond:
            self.msgs.append(msg)
            self.times.append(time.monotonic())
            self._cond.notify_all()

    def wait_for(self, predicate=lambda m: True, timeout: float = 5.0, start: int = 0):
        """The first message from index `start` on that satisfies predicate; fails on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            i = start
            while True:
                while i < len(self.msgs):
                    if predicate(self.msgs[i]):
                        return self.msgs[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching message on {self.sub.topic_name} within {timeout} s "
                                         f"({len(self.msgs)} received)")
                self._cond.wait(left)

    def __len__(self) -> int:
        with self._cond:
            return len(self.msgs)


class RosGraph:
    def __init__(self):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
        self.probe = rclpy.create_node("test_probe", context=self.context)
        self.nodes: list[Node] = []
        self.spinner = Spinner([self.probe], context=self.context)

    def add(self, node: Node) -> Node:
        self.nodes.append(node)
        self.spinner.add(node)
        return node

    def inbox(self, msg_type, topic: str) -> Inbox:
        return Inbox(self.probe, msg_type, topic)

    def wait_matched(self, publisher, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while publisher.get_subscription_count() == 0:
            assert time.monotonic() < deadline, f"no subscriber matched {publisher.topic_name}"
            time.sleep(0.01)

    def kwargs(self, **params) -> dict:
        """Keyword arguments for a driver node in this graph, with parameter overrides."""
        return {"context": self.context,
                "parameter_overrides": [Parameter(k, value=v) for k, v in params.items()]}

    def shutdown(self) -> None:
        try:
            self.spinner.close()
        finally:
            for n in self.nodes:
                close = getattr(n, "close", None)
                if close is not None:
                    close()
                n.destroy_node()
            self.probe.destroy_node()
            rclpy.shutdown(context=self.context)


@pytest.fixture
def ros():
    graph = RosGraph()
    try:
        yield graph
    finally:
        graph.shutdown()

