"""The robot contract: the state a robot reports and the interface RobotEnv drives it through.

It sits in the bottom layer (docs/architecture.md) so the twins (sim/), the env (tasks/) and the
ROS backend all build on it without importing each other. Two implementations: the in-process
MuJoCo twins (sim/) and the ROS 2 backend (tasks/, over the topic contract); both give the same
fields, units and frames.

Conventions used everywhere in robot_rl:
- positions in metres, in the robot base frame; velocities in m/s and rad/s, base frame;
- quaternions are (x, y, z, w), the ROS / scipy order; MuJoCo's (w, x, y, z) is converted at
  the sim/ boundary only;
- gripper 0.0 = fully open .. 1.0 = fully closed, for both command and state;
- forces in N, torques in Nm: the external wrench at the TCP, in the base frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass
class RobotState:
    tcp_pos: np.ndarray            # (3,)
    tcp_quat: np.ndarray           # (4,) x, y, z, w
    tcp_vel: np.ndarray            # (6,) linear then angular, base frame
    tcp_force: np.ndarray          # (3,) external force at the TCP, base frame
    tcp_torque: np.ndarray         # (3,) external torque at the TCP, base frame
    gripper: float                 # 0 open .. 1 closed
    q: np.ndarray                  # (n_joints,)
    dq: np.ndarray                 # (n_joints,)
    images: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (H, W, 3) uint8
    stamp: float = 0.0             # seconds; sim time for the twin, ROS time for hardware


class RobotInterface(Protocol):
    """What RobotEnv needs from a robot."""

    control_hz: float

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> RobotState:
        """Moves to the home posture (the twin also re-places the task objects) and returns the state."""

    def command(self, pos: np.ndarray, quat: np.ndarray, gripper: float) -> None:
        """Sets the equilibrium pose (base frame, quat x,y,z,w) and the gripper command (0..1)."""

    def wait_step(self) -> RobotState:
        """Lets one control period pass (the twin steps physics; hardware sleeps) and returns the state."""

    def recover(self) -> None:
        """Clears a fault (reflex, overload) and returns to impedance control."""

    def task_state(self) -> dict[str, np.ndarray]:
        """Ground truth of the task objects where it is known (the twin); empty on hardware."""

    def close(self) -> None:
        """Releases the robot: the twin frees its renderer, hardware stops commanding."""
