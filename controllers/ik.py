"""Damped least-squares inverse kinematics for position-controlled arms (the WidowX).

A Dynamixel arm takes joint position goals, not torques, so the Cartesian equilibrium pose the
env sends goes through IK at the control rate (the twin and the WidowX driver use this same
class):

    ik = DLSIK(WIDOWX_250S, IKConfig())
    q_goal = ik.solve(q_current, target_pos, target_quat_xyzw, dt=0.02)   # every 20 ms

Each iteration solves the weighted damped least-squares step
    dq = (J^T W^2 J + lambda^2 I)^-1 J^T W^2 e,   e = (p* - p, log(R* R^T))   (base frame)
    lambda^2 = damping^2 + |W e|^2     (e clamped to max_position/orientation_error)
with W = diag(position_weight x3, orientation_weight x3) (m vs rad: the weights say how many
metres one radian of orientation error is worth). Damping keeps the step bounded near
singularities and makes an unreachable target converge to the closest reachable pose instead
of diverging.

Limits, per call:
- velocity: q_goal stays within q_current +- velocity_scale * max_velocity * dt. A step that
  would leave that box is scaled down as a whole (the TCP keeps its direction of travel);
- position: q_goal stays within [lower, upper]. A joint at a limit that the step pushes
  outward is taken out of the Jacobian and the step re-solved with the others.
Non-finite or malformed targets raise ValueError; nothing is returned for them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np

from robot_rl.controllers.rotations import matrix_to_quat, quat_to_matrix
from robot_rl.controllers.widowx_model import ArmModel


@dataclass
class IKConfig:
    damping: float = 0.02                 # lambda at zero error (weighted error units)
    position_weight: float = 1.0          # per metre
    orientation_weight: float = 0.3       # per radian: 1 rad counts as 0.3 m
    velocity_scale: float = 1.0           # fraction of the model's max joint velocity per call
    iterations: int = 2                   # DLS iterations per solve() call
    # Error clamping (Buss & Kim): a far target is chased through a nearby one, so a step near a
    # singularity (the arm stretched out) does not overshoot and chatter about it.
    max_position_error: float = 0.05      # m
    max_orientation_error: float = 0.5    # rad
    position_tolerance: float = 1e-4      # m: stop iterating below both tolerances
    orientation_tolerance: float = 1e-3   # rad

    def __post_init__(self) -> None:
        if self.damping < 0 or self.position_weight <= 0 or self.orientation_weight < 0:
            raise ValueError("damping >= 0, position_weight > 0, orientation_weight >= 0")
        if not 0 < self.velocity_scale <= 1.0:
            raise ValueError(f"velocity_scale must be in (0, 1], got {self.velocity_scale}")
        if self.iterations < 1:
            raise ValueError("iterations must be >= 1")
        if self.max_position_error <= 0 or self.max_orientation_error <= 0:
            raise ValueError("max_position_error and max_orientation_error must be > 0")


class IKResult(NamedTuple):
    q: np.ndarray
    position_error: float      # m
    orientation_error: float   # rad
    converged: bool


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Rotation vector (base frame) turning `current` into `target`: log(target current^T)."""
    x, y, z, w = matrix_to_quat(target @ current.T)   # w >= 0: the short way round
    s = math.sqrt(x * x + y * y + z * z)
    if s < 1e-12:
        return np.zeros(3)
    k = 2.0 * math.atan2(s, w) / s
    return np.array((x * k, y * k, z * k))


def _target_rotation(quat_xyzw) -> np.ndarray:
    x, y, z, w = quat_xyzw
    n = x * x + y * y + z * z + w * w
    if not n > 1e-12:
        raise ValueError(f"target quaternion has zero norm: {list(quat_xyzw)}")
    return quat_to_matrix(np.array((x, y, z, w)) / math.sqrt(n))


class DLSIK:
    def __init__(self, model: ArmModel, cfg: IKConfig | None = None):
        self.model = model
        self.cfg = cfg or IKConfig()
        c = self.cfg
        self._w2 = np.array([c.position_weight] * 3 + [c.orientation_weight] * 3) ** 2
        self._damp0 = c.damping ** 2
        self._eye = np.eye(model.n_joints)

    def _check_target(self, pos, quat) -> tuple[np.ndarray, np.ndarray]:
        pos = np.asarray(pos, dtype=float)
        quat = np.asarray(quat, dtype=float)
        if pos.shape != (3,) or quat.shape != (4,):
            raise ValueError(f"target must be pos (3,), quat (4,); got {pos.shape}, {quat.shape}")
        if not (math.isfinite(pos.sum()) and math.isfinite(quat.sum())):
            raise ValueError(f"non-finite IK target: pos {pos.tolist()}, quat {quat.tolist()}")
        return pos, _target_rotation(quat.tolist())

    def _step(self, q: np.ndarray, target_pos: np.ndarray, target_rot: np.ndarray):
        """One DLS step from q: (dq, position error norm, orientation error norm)."""
        pos, rot, jac = self.model.fk_and_jacobian(q)
        ex, ey, ez = (target_pos - pos).tolist()
        rx, ry, rz = rotation_error(target_rot, rot).tolist()
        e_pos, e_rot = math.sqrt(ex * ex + ey * ey + ez * ez), math.sqrt(rx * rx + ry * ry + rz * rz)
        cfg = self.cfg
        kp = cfg.max_position_error / e_pos if e_pos > cfg.max_position_error else 1.0
        kr = cfg.max_orientation_error / e_rot if e_rot > cfg.max_orientation_error else 1.0
        err = np.array((ex * kp, ey * kp, ez * kp, rx * kr, ry * kr, rz * kr))
        # Damping grows with the (clamped, weighted) error, as in Sugihara's Levenberg-Marquardt
        # IK: big steps get more damping (no bang-bang across a singularity when the target is
        # out of reach), the last millimetres converge with the small constant damping.
        wp2, wr2 = self._w2[0], self._w2[3]
        damp2 = self._damp0 + wp2 * (e_pos * kp) ** 2 + wr2 * (e_rot * kr) ** 2
        jtw = jac.T * self._w2
        normal = jtw @ jac
        normal.flat[::normal.shape[0] + 1] += damp2
        rhs = jtw @ err
        dq = np.linalg.solve(normal, rhs)
        # A joint at a limit that the step pushes further out: solve again without it.
        model = self.model
        if (q >= model.upper).any() or (q <= model.lower).any():
            blocked = ((q >= model.upper) & (dq > 0)) | ((q <= model.lower) & (dq < 0))
            if blocked.any():
                free = ~blocked
                normal = (jtw * free[:, None]) @ (jac * free)
                normal.flat[::normal.shape[0] + 1] += damp2
                dq = np.linalg.solve(normal, rhs * free)
                dq[blocked] = 0.0
        return dq, e_pos, e_rot

    def solve(self, q_current, target_pos, target_quat_xyzw, dt: Optional[float]) -> np.ndarray:
        """Joint goal moving the TCP towards the target within one control period `dt` (s):
        `iterations` DLS steps, within the joint limits and max_velocity * dt of q_current.
        dt=None: no velocity limit (e.g. an offline solve)."""
        q0 = self.model._check_q(q_current)
        target_pos, target_rot = self._check_target(target_pos, target_quat_xyzw)
        model, cfg = self.model, self.cfg
        lo, hi = model.lower, model.upper
        reach = None
        if dt is not None:
            if not (dt > 0 and math.isfinite(dt)):
                raise ValueError(f"dt must be > 0, got {dt}")
            reach = cfg.velocity_scale * model.max_velocity * dt
            # The joint-limit box within reach of q0 (if q0 is outside its limits by more than
            # the reach, the box is the reach's edge towards the limits).
            lo_v, hi_v = np.maximum(lo, q0 - reach), np.minimum(hi, q0 + reach)
            lo, hi = np.minimum(lo_v, hi_v), np.maximum(hi_v, lo_v)
        q = q0
        for _ in range(cfg.iterations):
            dq, e_pos, e_rot = self._step(q, target_pos, target_rot)
            if e_pos < cfg.position_tolerance and e_rot < cfg.orientation_tolerance:
                break
            if reach is not None:
                # Scale the whole step into the velocity box (keeps the TCP's direction).
                room = reach - np.sign(dq) * (q - q0)
                worst = float(np.max(np.abs(dq) / np.maximum(room, 1e-12)))
                if worst > 1.0:
                    dq = dq / worst
            q = np.clip(q + dq, lo, hi)
        return q

    def solve_pose(self, q_seed, target_pos, target_quat_xyzw, max_iterations: int = 300) -> IKResult:
        """Offline IK (no velocity limit) from q_seed, to the tolerances or max_iterations."""
        q = self.model.clip(self.model._check_q(q_seed))
        target_pos, target_rot = self._check_target(target_pos, target_quat_xyzw)
        cfg = self.cfg
        for _ in range(max_iterations):
            dq, e_pos, e_rot = self._step(q, target_pos, target_rot)
            if e_pos < cfg.position_tolerance and e_rot < cfg.orientation_tolerance:
                return IKResult(q, e_pos, e_rot, True)
            q = self.model.clip(q + dq)
        pos, rot, _ = self.model.fk_and_jacobian(q)
        e_pos = float(np.linalg.norm(target_pos - pos))
        e_rot = float(np.linalg.norm(rotation_error(target_rot, rot)))
        return IKResult(q, e_pos, e_rot, e_pos < cfg.position_tolerance and e_rot < cfg.orientation_tolerance)


__all__ = ["DLSIK", "IKConfig", "IKResult", "rotation_error"]
