"""The project's one rotation helper: quaternions (x, y, z, w), matrices, roll-pitch-yaw, rotation vectors.

The quaternion functions take arrays of shape (..., 4) / (..., 3) and broadcast, so the same
code handles one rotation or a batch; the matrix <-> rpy / quaternion conversions take one
(3, 3) matrix. No scipy: the project does not depend on it. Hamilton convention (the one
Eigen, ROS and scipy use): q1 * q2 applies q2 first. Roll-pitch-yaw is the ROS convention:
R = Rz(yaw) @ Ry(pitch) @ Rx(roll).
"""
from __future__ import annotations

import math

import numpy as np


def quat_normalize(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(norm < 1e-12) or not np.all(np.isfinite(norm)):
        raise ValueError(f"cannot normalize quaternion with norm {norm.squeeze()}")
    return q / norm


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    return q * np.array([-1.0, -1.0, -1.0, 1.0])


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b (the rotation b, then a)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ax, ay, az, aw = np.moveaxis(a, -1, 0)
    bx, by, bz, bw = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ],
        axis=-1,
    )


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrix (..., 3, 3) of a unit quaternion (..., 4)."""
    q = np.asarray(q, dtype=np.float64)
    if q.shape == (4,):   # one rotation (the IK, per control step): plain floats, ~10x faster
        x, y, z, w = q.tolist()
        return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                         [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                         [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    x, y, z, w = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=-1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=-1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=-1),
        ],
        axis=-2,
    )


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotates vectors v (..., 3) by unit quaternions q (..., 4)."""
    q = np.asarray(q, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    u, w = q[..., :3], q[..., 3:]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def axis_angle_to_quat(axis_angle: np.ndarray) -> np.ndarray:
    """Rotation vector (..., 3) (axis * angle, rad) -> unit quaternion (..., 4)."""
    rv = np.asarray(axis_angle, dtype=np.float64)
    angle = np.linalg.norm(rv, axis=-1, keepdims=True)
    # sin(a/2)/a -> 1/2 as a -> 0; the series avoids 0/0 for the identity.
    small = angle < 1e-8
    scale = np.where(small, 0.5 - angle**2 / 48.0, np.sin(angle / 2.0) / np.where(small, 1.0, angle))
    return np.concatenate([rv * scale, np.cos(angle / 2.0)], axis=-1)


def quat_to_axis_angle(q: np.ndarray) -> np.ndarray:
    """Unit quaternion (..., 4) -> rotation vector (..., 3) with angle in [0, pi]."""
    q = quat_normalize(q)
    q = np.where(q[..., 3:] < 0.0, -q, q)  # double cover: pick the short way round
    vec_norm = np.linalg.norm(q[..., :3], axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(vec_norm, q[..., 3:])
    small = vec_norm < 1e-12
    return q[..., :3] * np.where(small, 2.0, angle / np.where(small, 1.0, vec_norm))


def quat_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (rad, in [0, pi]) of the rotation between a and b; q and -q are the same rotation."""
    dot = np.abs(np.sum(quat_normalize(a) * quat_normalize(b), axis=-1))
    return 2.0 * np.arccos(np.clip(dot, 0.0, 1.0))


def orientation_error(q: np.ndarray, q_target: np.ndarray) -> np.ndarray:
    """The impedance law's orientation error (..., 3), base frame, as franka_example_controllers.

    Flip q to the target's hemisphere (double cover), take the difference quaternion
    q^-1 * q_target (current -> target, in the end-effector frame), and return
    -R(q) @ vec(q^-1 * q_target). It is "current minus target": the law pushes with -K * e.
    Its norm is sin(angle / 2), about half the angle for small errors.
    """
    q = np.asarray(q, dtype=np.float64)
    q_target = np.asarray(q_target, dtype=np.float64)
    flip = np.sum(q * q_target, axis=-1, keepdims=True) < 0.0
    q = np.where(flip, -q, q)
    diff = quat_multiply(quat_conjugate(q), q_target)
    return -quat_rotate(q, diff[..., :3])


def quat_slerp(a: np.ndarray, b: np.ndarray, t: float | np.ndarray) -> np.ndarray:
    """Spherical interpolation from a (t=0) to b (t=1), the short way round."""
    a = quat_normalize(a)
    b = quat_normalize(b)
    t = np.asarray(t, dtype=np.float64)[..., None] if np.ndim(t) else float(t)
    dot = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(dot < 0.0, -b, b)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_theta = np.sin(theta)
    near = sin_theta < 1e-6  # nearly parallel: lerp is exact to first order and avoids 0/0
    safe_sin = np.where(near, 1.0, sin_theta)
    wa = np.where(near, 1.0 - t, np.sin((1.0 - t) * theta) / safe_sin)
    wb = np.where(near, t, np.sin(t * theta) / safe_sin)
    return quat_normalize(wa * a + wb * b)


def slerp_scalar(q0: tuple, q1: tuple, t: float) -> tuple[float, float, float, float]:
    """quat_slerp for one quaternion as plain floats: the impedance law's 1 kHz filter, where
    numpy's per-call overhead costs more than the arithmetic."""
    ax, ay, az, aw = q0
    bx, by, bz, bw = q1
    dot = ax * bx + ay * by + az * bz + aw * bw
    if dot < 0.0:
        bx, by, bz, bw, dot = -bx, -by, -bz, -bw, -dot
    if dot > 0.9999995:  # nearly equal (< ~0.1 deg): lerp is exact to rounding, no 0/0
        wa, wb = 1.0 - t, t
    else:
        theta = math.acos(dot)
        s = math.sin(theta)
        wa, wb = math.sin((1.0 - t) * theta) / s, math.sin(t * theta) / s
    x, y, z, w = wa * ax + wb * bx, wa * ay + wb * by, wa * az + wb * bz, wa * aw + wb * bw
    norm = math.sqrt(x * x + y * y + z * z + w * w)
    return x / norm, y / norm, z / norm, w / norm


# ---- one rotation matrix (3, 3) ------------------------------------------------------------
def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) -> unit quaternion (x, y, z, w) with w >= 0 (Shepperd's method)."""
    m = np.asarray(m, dtype=np.float64)
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0.0:
        s = math.sqrt(tr + 1.0) * 2.0
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2.0
        q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2.0
        q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2.0
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    q = np.array(q)
    q /= math.sqrt(q @ q)   # np.linalg.norm's result, without its overhead (the IK calls this per iteration)
    return -q if q[3] < 0.0 else q


def rpy_to_matrix(rpy) -> np.ndarray:
    """R = Rz(yaw) @ Ry(pitch) @ Rx(roll) of rpy = (roll, pitch, yaw)."""
    r, p, y = rpy
    cr, sr, cp, sp, cy, sy = math.cos(r), math.sin(r), math.cos(p), math.sin(p), math.cos(y), math.sin(y)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def matrix_to_rpy(m: np.ndarray) -> np.ndarray:
    """(roll, pitch, yaw) of a rotation matrix, pitch in [-pi/2, pi/2]; the inverse of rpy_to_matrix."""
    pitch = math.asin(max(-1.0, min(1.0, -m[2, 0])))
    return np.array([math.atan2(m[2, 1], m[2, 2]), pitch, math.atan2(m[1, 0], m[0, 0])])


def exp_so3(w) -> np.ndarray:
    """Rotation matrix of the rotation vector w (axis * angle), Rodrigues."""
    w = np.asarray(w, dtype=np.float64)
    angle = float(np.linalg.norm(w))
    if angle < 1e-12:
        return np.eye(3)
    k = w / angle
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + math.sin(angle) * kx + (1.0 - math.cos(angle)) * (kx @ kx)
