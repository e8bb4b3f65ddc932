"""Small rclpy helpers shared by the driver nodes: parameters, stamps, spinning with a stop path."""
from __future__ import annotations

import sys
import threading
from typing import Any, Callable, Sequence

import rclpy
from builtin_interfaces.msg import Time
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from drivers.errors import DeviceNotFoundError


def declare(node: Node, name: str, default: Any, description: str, dynamic_typing: bool = False) -> Any:
    """Declares a ROS 2 parameter with a description and returns its value.

    dynamic_typing: accept any type (e.g. a serial number typed on the command line parses as int).
    """
    node.declare_parameter(name, default, ParameterDescriptor(description=description, dynamic_typing=dynamic_typing))
    return node.get_parameter(name).value


def stamp(seconds: float) -> Time:
    """A builtin_interfaces/Time from seconds (any clock: ROS time or a device clock)."""
    sec = int(seconds // 1)
    return Time(sec=sec, nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)


def stamp_seconds(t: Time) -> float:
    return t.sec + t.nanosec * 1e-9


class Spinner:
    """Spins nodes in an executor on a thread, with an explicit stop path (tests and tools)."""

    def __init__(self, nodes: Sequence[Node], context: Context | None = None):
        self.executor = SingleThreadedExecutor(context=context)
        for n in nodes:
            self.executor.add_node(n)
        self._thread = threading.Thread(target=self._spin, name="ros-spinner", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except (ExternalShutdownException, KeyboardInterrupt):
            pass

    def add(self, node: Node) -> None:
        self.executor.add_node(node)

    def stop(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self._thread.join(timeout=2.0)


def run_node(make_node: Callable[[], Node], args: list[str] | None = None) -> int:
    """Entry-point body: init, build the node, spin until Ctrl-C, always clean up."""
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
        rclpy.spin(node)
        return 0
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    except DeviceNotFoundError as e:  # no device: say so plainly, never pretend
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


def log(node: Node, level: str, text: str) -> None:
    """Logs at 'info' / 'warn' / 'error' (rclpy wants one severity per call site)."""
    if level == "info":
        node.get_logger().info(text)
    elif level == "warn":
        node.get_logger().warn(text)
    else:
        node.get_logger().error(text)
