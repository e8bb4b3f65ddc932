"""One rclpy node spun on its own executor thread, with a stop path: the ROS side of the env's
backend, the operator's teleop source, the set-up tools and the tests' ROS graphs sit on this.

A SingleThreadedExecutor: Jazzy's MultiThreadedExecutor busy-loops holding the GIL
(ros2/rclpy#1452). With no `context` given, a private one is made and shut down by close();
a given context belongs to the caller. Nodes built by others in the same context can share the
thread (add); close() destroys them too, before the context goes.
"""
from __future__ import annotations

import threading

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node


class NodeThread:
    def __init__(self, name: str, namespace: str = "/", context: Context | None = None,
                 start: bool = True):
        """start=False: create subscriptions, publishers and clients first, then start()."""
        self._own_context = context is None
        self.context = context or Context()
        if self._own_context:
            rclpy.init(context=self.context)
        self.node = Node(name, namespace=namespace, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name=f"{name}-spin", daemon=True)
        self.added: list[Node] = []
        self._closed = False
        if start:
            self.start()

    def start(self) -> None:
        self._thread.start()

    def add(self, node: Node) -> Node:
        """Spins another node of this context on the same thread; close() destroys it."""
        self.added.append(node)
        self.executor.add_node(node)
        return node

    def remove(self, node: Node) -> None:
        """Stops spinning a node added before; the caller destroys it."""
        self.executor.remove_node(node)
        self.added.remove(node)

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    def close(self) -> None:
        """Stops the executor, joins its thread, destroys the nodes (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.executor.shutdown(timeout_sec=2.0)
            if self._thread.is_alive():
                self._thread.join(timeout=5.0)
        finally:
            for node in self.added:
                node.destroy_node()
            self.node.destroy_node()
            if self._own_context and self.context.ok():
                rclpy.shutdown(context=self.context)
