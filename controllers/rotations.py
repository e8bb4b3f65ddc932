"""Quaternion helpers, (x, y, z, w) order, vectorised over leading axes.

Every function takes arrays of shape (..., 4) / (..., 3) and broadcasts, so the same code
handles one rotation or a batch. No scipy: the project does not depend on it.
Hamilton convention (the one Eigen, ROS and scipy use): q1 * q2 applies q2 first.
"""
from __future__ import annotations

import numpy as np

IDENTITY_QUAT = np.array([0.0, 0.0, 0.0, 1.0])


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
    x, y, z, w = np.moveaxis(np.asarray(q, dtype=np.float64), -1, 0)
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
