"""The ROS side of a wrench source, reusable by any node (F/T sensors here, the Franka driver's
estimate later): `wrench` (geometry_msgs/WrenchStamped), `wrench/safety_event`
(std_msgs/String, JSON) and the `wrench/zero` service (std_srvs/Trigger).

Usage inside a node:
    out = WrenchOutput(node, WrenchProcessor(cutoff_hz=..., force_limit=...), frame_id="ft_sensor")
    out.publish(raw6, stamp_seconds)   # from any thread
"""
from __future__ import annotations

import json
import threading

import numpy as np
from geometry_msgs.msg import WrenchStamped
from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import Trigger

from robot_rl.controllers.node import wrench_msg
from robot_rl.drivers.ft import LimitEvent, WrenchProcessor
from robot_rl.drivers.ros_common import log, stamp


class WrenchOutput:
    def __init__(self, node: Node, processor: WrenchProcessor, frame_id: str, topic: str = "wrench"):
        self.node, self.processor, self.frame_id = node, processor, frame_id
        self._lock = threading.Lock()  # samples arrive on a reader thread, zero() on the executor
        self.wrench_pub = node.create_publisher(WrenchStamped, topic, 10)
        self.event_pub = node.create_publisher(String, f"{topic}/safety_event", 10)
        self.zero_srv = node.create_service(Trigger, f"{topic}/zero", self._on_zero)
        self.rejected = 0

    def publish(self, raw, t: float) -> np.ndarray | None:
        """Processes and publishes one raw sample; a non-finite one is reported and dropped."""
        try:
            with self._lock:
                w, event = self.processor.process(raw, t)
        except ValueError as e:
            self.rejected += 1
            self.report("error", f"wrench sample rejected: {e}")
            return None
        self.wrench_pub.publish(wrench_msg(w, self.frame_id, stamp(t)))
        if event is not None:
            self._limit(event)
        return w

    def _limit(self, event: LimitEvent) -> None:
        self.report("error" if event.exceeded else "info", event.describe(), kind="limit",
                    exceeded=event.exceeded, force=event.force, torque=event.torque,
                    force_limit=event.force_limit, torque_limit=event.torque_limit, stamp=event.stamp)

    def report(self, level: str, text: str, **fields) -> None:
        """Logs and publishes a JSON event on wrench/safety_event (also used for sensor faults)."""
        log(self.node, level, text)
        self.event_pub.publish(String(data=json.dumps({"level": level, "event": text, "frame_id": self.frame_id, **fields})))

    def _on_zero(self, request, response):
        try:
            with self._lock:
                bias = self.processor.zero()
        except RuntimeError as e:
            response.success, response.message = False, str(e)
            return response
        response.success = True
        response.message = "bias " + json.dumps([round(float(b), 6) for b in bias])
        return response
