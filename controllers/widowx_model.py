"""Kinematic model of the Trossen / Interbotix WidowX 250 6-DoF (wx250s), from its published data.

Sources (all public):
- kinematics: the product-of-exponentials description the Interbotix Python API uses
  (interbotix_xs_modules `mr_descriptions.wx250s`: M and Slist), which matches the link offsets
  of `interbotix_xsarm_descriptions/urdf/wx250s.urdf.xacro`;
- joint limits, velocity limits: the same xacro (velocity = pi rad/s for every joint);
- torque limits: stall torques of the Dynamixel servos the arm uses (XM430-W350 4.1 Nm at 12 V;
  shoulder and elbow are doubled, wrist_rotate and gripper are XL430-W250, 1.4 Nm);
- link masses: the xacro's inertials (also in mujoco_menagerie's trossen_wx250s).

Frames. The base frame is `wx250s/base_link` (z up, x forward). The TCP is the origin of the
Interbotix `ee_gripper_link` (between the fingertips), but its AXES follow the project's TCP
convention (the Franka one): z along the approach direction (where the gripper points) and
x = the Interbotix ee frame's z. So with the gripper pointing straight down and the waist at 0,
the TCP orientation is the tasks' nominal (x, y, z, w) = (1, 0, 0, 0): z down, x = base x.

`ArmModel` is generic (any serial arm of revolute joints given as space-frame screw axes);
`WIDOWX_250S` is the instance. `fk` and `jacobian` are plain numpy and fast (~20 us): the IK
(controllers/ik.py) calls them several times per control step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from robot_rl.controllers.rotations import matrix_to_quat


@dataclass
class ArmModel:
    """A serial arm of revolute joints in product-of-exponentials form (Modern Robotics).

    screw_axes (n, 6): each joint's space-frame screw (w, v) at q = 0 (Slist transposed);
    tcp_at_zero (4, 4): the TCP pose at q = 0 (M)."""

    name: str
    joint_names: tuple[str, ...]
    screw_axes: np.ndarray
    tcp_at_zero: np.ndarray
    lower: np.ndarray                 # rad
    upper: np.ndarray                 # rad
    max_velocity: np.ndarray          # rad/s
    max_effort: np.ndarray            # Nm
    link_masses: dict[str, float] = field(default_factory=dict)   # kg
    postures: dict[str, np.ndarray] = field(default_factory=dict)  # name -> q
    gripper_joint: str = "gripper"

    def __post_init__(self) -> None:
        self.screw_axes = np.asarray(self.screw_axes, dtype=float)
        n = len(self.joint_names)
        if self.screw_axes.shape != (n, 6):
            raise ValueError(f"screw_axes must be ({n}, 6), got {self.screw_axes.shape}")
        for name in ("lower", "upper", "max_velocity", "max_effort"):
            value = np.asarray(getattr(self, name), dtype=float)
            if value.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},)")
            setattr(self, name, value)
        if np.any(self.lower >= self.upper) or np.any(self.max_velocity <= 0):
            raise ValueError("need lower < upper and max_velocity > 0")
        self.tcp_at_zero = np.asarray(self.tcp_at_zero, dtype=float)
        # Each revolute screw as (unit axis w, a point r on it): r = w x v for unit w.
        self._axes = self.screw_axes[:, :3].copy()
        self._points = np.cross(self._axes, self.screw_axes[:, 3:])
        self._axes_t = [tuple(a) for a in self._axes.tolist()]
        self._points_t = [tuple(p) for p in self._points.tolist()]
        self.postures = {k: np.asarray(v, dtype=float) for k, v in self.postures.items()}

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)

    @property
    def home(self) -> np.ndarray:
        return self.postures["home"].copy()

    def _check_q(self, q) -> np.ndarray:
        q = np.asarray(q, dtype=float)
        if q.shape != (self.n_joints,):
            raise ValueError(f"q must have shape ({self.n_joints},), got {q.shape}")
        if not math.isfinite(q.sum()):
            raise ValueError(f"q is not finite: {q.tolist()}")
        return q

    def _frames(self, q: np.ndarray):
        """Per joint: its current axis and point (base frame); and the TCP rotation, position.

        T(q) = E_1(q_1) ... E_n(q_n) M, E_i the rotation about joint i's axis at q = 0. The
        running product T_{i-1} moves joint i's axis and point to where they are now.
        Plain Python floats: for 3x3 blocks this is ~5x faster than numpy's per-call overhead."""
        rot = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)   # row-major 3x3
        px = py = pz = 0.0
        axes, points = [], []
        for (x, y, z), (rx, ry, rz), angle in zip(self._axes_t, self._points_t, q.tolist()):
            r00, r01, r02, r10, r11, r12, r20, r21, r22 = rot
            axes.append((r00 * x + r01 * y + r02 * z, r10 * x + r11 * y + r12 * z,
                         r20 * x + r21 * y + r22 * z))
            points.append((r00 * rx + r01 * ry + r02 * rz + px, r10 * rx + r11 * ry + r12 * rz + py,
                           r20 * rx + r21 * ry + r22 * rz + pz))
            # E = Rodrigues(w, angle) at q = 0; its translation is (I - E) r.
            c, s = math.cos(angle), math.sin(angle)
            t = 1.0 - c
            e00, e01, e02 = c + x * x * t, x * y * t - z * s, x * z * t + y * s
            e10, e11, e12 = y * x * t + z * s, c + y * y * t, y * z * t - x * s
            e20, e21, e22 = z * x * t - y * s, z * y * t + x * s, c + z * z * t
            sx = rx - (e00 * rx + e01 * ry + e02 * rz)
            sy = ry - (e10 * rx + e11 * ry + e12 * rz)
            sz = rz - (e20 * rx + e21 * ry + e22 * rz)
            px, py, pz = (r00 * sx + r01 * sy + r02 * sz + px, r10 * sx + r11 * sy + r12 * sz + py,
                          r20 * sx + r21 * sy + r22 * sz + pz)
            rot = (r00 * e00 + r01 * e10 + r02 * e20, r00 * e01 + r01 * e11 + r02 * e21,
                   r00 * e02 + r01 * e12 + r02 * e22,
                   r10 * e00 + r11 * e10 + r12 * e20, r10 * e01 + r11 * e11 + r12 * e21,
                   r10 * e02 + r11 * e12 + r12 * e22,
                   r20 * e00 + r21 * e10 + r22 * e20, r20 * e01 + r21 * e11 + r22 * e21,
                   r20 * e02 + r21 * e12 + r22 * e22)
        rot = np.array(rot).reshape(3, 3)
        m = self.tcp_at_zero
        return axes, points, rot @ m[:3, :3], rot @ m[:3, 3] + (px, py, pz)

    def fk_matrix(self, q) -> np.ndarray:
        """TCP pose (4, 4) in the base frame."""
        _, _, rot, pos = self._frames(self._check_q(q))
        out = np.eye(4)
        out[:3, :3], out[:3, 3] = rot, pos
        return out

    def fk(self, q) -> tuple[np.ndarray, np.ndarray]:
        """TCP position (3,) and orientation quaternion (x, y, z, w) in the base frame."""
        _, _, rot, pos = self._frames(self._check_q(q))
        return pos, matrix_to_quat(rot)

    def fk_and_jacobian(self, q) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(TCP position (3,), TCP rotation (3, 3), geometric Jacobian (6, n)) in one pass."""
        axes, points, rot, pos = self._frames(self._check_q(q))
        tx, ty, tz = pos.tolist()
        linear = []
        for (x, y, z), (rx, ry, rz) in zip(axes, points):  # w x (p_tcp - r): the point's velocity
            dx, dy, dz = tx - rx, ty - ry, tz - rz
            linear.append((y * dz - z * dy, z * dx - x * dz, x * dy - y * dx))
        jac = np.array(linear + axes).reshape(2, self.n_joints, 3).transpose(0, 2, 1).reshape(6, -1)
        return pos, rot, jac

    def jacobian(self, q) -> np.ndarray:
        """Geometric Jacobian (6, n) in the BASE frame: rows 0-2 map q_dot to the linear velocity
        of the TCP point, rows 3-5 to the angular velocity (the same (linear, angular) order as
        RobotState.tcp_vel). Not the Modern Robotics space Jacobian (whose linear part is the
        velocity of the point at the base origin)."""
        return self.fk_and_jacobian(q)[2]

    def clip(self, q) -> np.ndarray:
        return np.clip(q, self.lower, self.upper)


def _deg(*values: float) -> np.ndarray:
    return np.radians(np.array(values, dtype=float))


# Interbotix ee_gripper_link axes -> TCP axes (columns: TCP x, y, z in the ee frame): TCP z is
# the ee x (approach), TCP x the ee z. A proper rotation (det +1).
EE_TO_TCP = np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])

# mr_descriptions.wx250s: M (ee_gripper_link at q = 0, arm stretched forward) and Slist.
_WX250S_M = np.array([[1.0, 0.0, 0.0, 0.458325],
                      [0.0, 1.0, 0.0, 0.0],
                      [0.0, 0.0, 1.0, 0.36065],
                      [0.0, 0.0, 0.0, 1.0]])
_WX250S_SLIST = np.array([
    [0.0, 0.0, 1.0, 0.0, 0.0, 0.0],            # waist
    [0.0, 1.0, 0.0, -0.11065, 0.0, 0.0],       # shoulder
    [0.0, 1.0, 0.0, -0.36065, 0.0, 0.04975],   # elbow
    [1.0, 0.0, 0.0, 0.0, 0.36065, 0.0],        # forearm_roll
    [0.0, 1.0, 0.0, -0.36065, 0.0, 0.29975],   # wrist_angle
    [1.0, 0.0, 0.0, 0.0, 0.36065, 0.0],        # wrist_rotate
])
_tcp_at_zero = _WX250S_M.copy()
_tcp_at_zero[:3, :3] = _WX250S_M[:3, :3] @ EE_TO_TCP

WIDOWX_250S = ArmModel(
    name="wx250s",
    joint_names=("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate"),
    screw_axes=_WX250S_SLIST,
    tcp_at_zero=_tcp_at_zero,
    lower=_deg(-180.0, -108.0, -123.0, -180.0, -100.0, -180.0),
    upper=_deg(180.0, 114.0, 92.0, 180.0, 123.0, 180.0),
    max_velocity=np.full(6, math.pi),
    max_effort=np.array([4.1, 8.2, 8.2, 4.1, 4.1, 1.4]),
    link_masses={"base_link": 0.538736, "shoulder_link": 0.480879, "upper_arm_link": 0.430811,
                 "upper_forearm_link": 0.234589, "lower_forearm_link": 0.220991,
                 "wrist_link": 0.084957, "gripper_link": 0.110084, "finger_link": 0.016246},
    postures={
        "home": np.zeros(6),                                  # Interbotix "home": arm stretched
        "sleep": np.array([0.0, -1.88, 1.5, 0.0, 0.8, 0.0]),  # Interbotix "sleep": folded, rests
        # TCP pointing down at about (0.3, 0, 0.15): the twin's IK seed for table-top tasks.
        "ready": np.array([0.0, -0.2, 0.55, 0.0, 1.22, 0.0]),
    },
)

# The WidowX gripper ("gripper" joint, a Dynamixel XL430 driving two fingers through a rack):
# each finger slides 0.015 .. 0.037 m from the centre (the xacro's left_finger limits).
WIDOWX_FINGER_RANGE = (0.015, 0.037)

__all__ = ["ArmModel", "WIDOWX_250S", "WIDOWX_FINGER_RANGE", "EE_TO_TCP"]
