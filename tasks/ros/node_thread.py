"""One rclpy node spun on its own executor thread, with a stop path: the ROS side of the env's
backend, the operator's teleop source, the set-up tools and the tests' ROS graphs sit on this.

The spinning is drivers.ros_common.Spinner's; this adds the node and its context. With no
`context` given, a private one is made and shut down by close(); a given context belongs to
the caller. Nodes built by others in the same context can share the thread (add); close()
destroys them too, before the context goes.
"""
from __future__ import annotations

import rclpy
from rclpy.context import Context
from rclpy.node import Node

from robot_rl.drivers.ros_common import Spinner


class NodeThread:
    def __init__(self, name: str, namespace: str = "/", context: Context | None = None,
                 start: bool = True):
        """start=False: create subscriptions, publishers and clients first, then start()."""
        self._own_context = context is None
        self.context = context or Context()
        if self._own_context:
            rclpy.init(context=self.context)
        self.node = Node(name, namespace=namespace, context=self.context)
        self.spinner = Spinner([self.node], context=self.context, name=f"{name}-spin", start=start)
        self.added: list[Node] = []
        self._closed = False

    def start(self) -> None:
        self.spinner.start()

    def add(self, node: Node) -> Node:
        """Spins another node of this context on the same thread; close() destroys it."""
        self.added.append(node)
        self.spinner.add(node)
        return node

    def remove(self, node: Node) -> None:
        """Stops spinning a node added before; the caller destroys it."""
        self.spinner.remove(node)
        self.added.remove(node)

    def close(self) -> None:
        """Stops the executor, joins its thread, destroys the nodes (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.spinner.close()
        finally:
            for node in self.added:
                node.destroy_node()
            self.node.destroy_node()
            if self._own_context and self.context.ok():
                rclpy.shutdown(context=self.context)
