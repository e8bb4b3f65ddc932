"""Cartesian impedance law, one implementation for the MuJoCo twin and the Franka driver.

It re-does SERL's serl_franka_controllers CartesianImpedanceController (itself built on
franka_example_controllers) in numpy, called once per 1 kHz control tick:

    e      = [clip(p - p_d), clip(-R(q) vec(q^-1 q_d))]        per axis, asymmetric clips
    xdot   = J dq
    F      = -K e - D xdot - Ki * integral(e dt)               integral wrench clamped
    tau_ns = (I - J^T pinv(J^T)) (k_ns (q_ns - q) - 2 sqrt(k_ns) dq)
    tau    = J^T F + tau_ns + coriolis,   then rate-limited against the last command

and afterwards moves the filtered target pose and gains one first-order step towards the
commanded ones (x_f <- a x_cmd + (1 - a) x_f, a = filter_factor; slerp for orientation).

Units: positions m, orientation error is the quaternion vector part (|e_rot| = sin(angle/2),
about half the angle, as in SERL - so rotational stiffness and clips are per that unit),
torques Nm, base frame throughout. Quaternions are (x, y, z, w).

Safety contract
---------------
* The spring wrench is bounded per axis: |F_spring_i| <= K * clip_i (the error is clipped
  before the stiffness), so contact force stays bounded however far the target is.
* The returned torque differs from the previous returned torque (or `tau_prev` given to
  `reset`) by at most `torque_rate_limit` Nm per joint.
* Non-finite inputs never reach a motor. `compute` checks q, dq, ee_pos, ee_quat, jacobian,
  coriolis; `set_target` checks pos, quat; `set_config` checks every number. A bad value
  raises `NonFiniteError` (a ValueError) naming the input, and nothing of the controller's
  state changes, except that after a failed `compute` the controller assumes the caller sent
  `hold_torque()` (zeros; on a Franka the robot adds gravity compensation, so zero torque
  holds/floats; the twin adds gravity compensation itself) and rate-limits the next command
  from zero. A non-finite output torque raises `NonFiniteError("output torque ...")` likewise.
  After a rejected target the previous finite target stays in force.
* Wrong shapes raise ValueError, handled like a non-finite input: whenever `compute` raises,
  send `hold_torque()` for that tick; `last_fault` keeps the message until a tick succeeds.

Use
---
    ctrl = CartesianImpedanceController(ImpedanceConfig.compliant(), q_home)
    ctrl.reset(ee_pos, ee_quat)                      # when control starts
    ctrl.set_target(pos, quat)                       # whenever an equilibrium pose arrives
    try:                                             # every 1 kHz tick
        tau = ctrl.compute(q, dq, ee_pos, ee_quat, jacobian, coriolis)
    except ValueError:                               # NonFiniteError or a bad shape
        tau = ctrl.hold_torque()
    send(tau)  # Franka: as is (it adds gravity). Twin: tau + gravity torque.

`coriolis` is the Coriolis/centrifugal torque only, like libfranka's `coriolis()`: in
MuJoCo that is qfrc_bias minus the gravity torque (or qfrc_bias with gravity off). Keeping
gravity out of the law keeps the rate limiter and the output identical on both robots.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from robot_rl.controllers.rotations import slerp_scalar
from robot_rl.config import Range, param

try:  # numpy's LAPACK gufunc without np.linalg.solve's ~10 us of Python checks (a 1 kHz loop)
    from numpy.linalg._umath_linalg import solve1 as _solve_vector
except ImportError:  # pragma: no cover - private module moved; fall back to the public API
    _solve_vector = np.linalg.solve


class NonFiniteError(ValueError):
    """A NaN or inf reached the controller; the message names the input."""


# Layout of the packed gain vector, so one in-place filter step moves every gain.
_K = slice(0, 6)        # stiffness, 3 translational (N/m) + 3 rotational (Nm per unit e_rot)
_D = slice(6, 12)       # damping, N s/m and Nm s/rad
_KI = slice(12, 18)     # integral gains, N/(m s) and Nm/(unit e_rot s)
_KNS = 18               # nullspace stiffness, Nm/rad
_N_GAINS = 19


# Largest value each field accepts (a tuple field: each axis). Generous for real use - SERL's
# compliant and HIL-SERL's precision configs sit well inside - but they turn typos and hostile
# values (stiffness 1e12, a rate limit of 1e9) into an error. Documented in docs/franka.md.
UPPER_BOUNDS = {
    "translational_stiffness": 5000.0,     # N/m; SERL 2000, precision moves up to 4000
    "translational_damping": 500.0,        # N s/m; critical for 5000 N/m (~10 kg) is ~450
    "rotational_stiffness": 1000.0,        # Nm per unit e_rot; precision 250
    "rotational_damping": 100.0,           # Nm s/rad
    "translational_clip_neg": 0.1,         # m; precision's wide clips
    "translational_clip_pos": 0.1,
    "rotational_clip_neg": 1.0,            # e_rot units; |e_rot| = sin(angle/2) <= 1: 1 = unclipped
    "rotational_clip_pos": 1.0,
    "translational_ki": 5000.0,            # N/(m s)
    "rotational_ki": 500.0,                # Nm/(unit e_rot s)
    "integral_limit": 50.0,                # N
    "rotational_integral_limit": 10.0,     # Nm
    "nullspace_stiffness": 50.0,           # Nm/rad
    "nullspace_pinv_damping": 1.0,
    "filter_factor": 1.0,                  # per tick: 1 = no filter
    # Nm per tick. A Franka runs 1.0 (franka_example_controllers' delta_tau_max), the default;
    # far above an arm's torque range (FR3: 87 Nm) a rate limit limits nothing, so the bound
    # only stops typos and hostile values (the law's own tests use it as "no rate limit").
    "torque_rate_limit": 1000.0,
    "dt": 0.01,                            # s: a control loop of at least 100 Hz
}


def _gain(default: Any, help: str, name: str, low_open: bool = False) -> Any:
    """A law field with its help text and allowed range, [0, UPPER_BOUNDS[name]]: the one
    declaration the controller's and the twin's ROS parameters are derived from."""
    return param(default, help, Range(0.0, UPPER_BOUNDS[name], low_open=low_open))


@dataclass
class ImpedanceConfig:
    translational_stiffness: float = _gain(2000.0, "translational stiffness (N/m)", "translational_stiffness")
    translational_damping: float = _gain(89.0, "translational damping (N s/m; ~critical: 2 sqrt(stiffness))",
                                         "translational_damping")
    rotational_stiffness: float = _gain(150.0, "rotational stiffness (Nm per unit orientation error)",
                                        "rotational_stiffness")
    rotational_damping: float = _gain(7.0, "rotational damping (Nm s/rad)", "rotational_damping")
    # The error (ee - target) is clipped per axis to [-clip_neg, clip_pos]; m and e_rot units.
    translational_clip_neg: tuple[float, float, float] = _gain(
        (0.01, 0.01, 0.01), "per axis: the position error is clipped to -this (m)", "translational_clip_neg")
    translational_clip_pos: tuple[float, float, float] = _gain(
        (0.01, 0.01, 0.01), "per axis: the position error is clipped to +this (m)", "translational_clip_pos")
    rotational_clip_neg: tuple[float, float, float] = _gain(
        (0.05, 0.05, 0.05), "per axis: the orientation error is clipped to -this (e_rot units)",
        "rotational_clip_neg")
    rotational_clip_pos: tuple[float, float, float] = _gain(
        (0.05, 0.05, 0.05), "per axis: the orientation error is clipped to +this (e_rot units)",
        "rotational_clip_pos")
    translational_ki: float = _gain(0.0, "translational integral gain (N per m s of error)", "translational_ki")
    rotational_ki: float = _gain(0.0, "rotational integral gain (Nm per unit e_rot s)", "rotational_ki")
    # Clamp on the integral wrench |Ki * integral(e dt)| per axis: N for the translational
    # axes; the rotational axes use rotational_integral_limit (Nm). The integral state is
    # clamped too (anti-windup), so it never stores more than the limit can use.
    integral_limit: float = _gain(10.0, "clamp on the translational integral force per axis (N)",
                                  "integral_limit")
    rotational_integral_limit: float = _gain(1.0, "clamp on the rotational integral torque per axis (Nm)",
                                             "rotational_integral_limit")
    nullspace_stiffness: float = _gain(0.2, "nullspace stiffness toward the home posture (Nm/rad; "
                                       "damping 2 sqrt(stiffness))", "nullspace_stiffness")
    nullspace_pinv_damping: float = _gain(0.2, "damping of pinv(J^T), as franka_example_controllers",
                                          "nullspace_pinv_damping")
    filter_factor: float = _gain(0.005, "per control tick: how far targets and gains move toward "
                                 "their new values (1: no filter)", "filter_factor", low_open=True)
    torque_rate_limit: float = _gain(1.0, "torque change limit (Nm per tick)", "torque_rate_limit",
                                     low_open=True)
    dt: float = _gain(0.001, "control tick (s); the loop's own, fixed", "dt", low_open=True)

    def __post_init__(self) -> None:
        # YAML/CLI loaders hand lists; keep the typed tuples.
        for name in ("translational_clip_neg", "translational_clip_pos",
                     "rotational_clip_neg", "rotational_clip_pos"):
            setattr(self, name, tuple(float(v) for v in getattr(self, name)))
        self.validate()

    def validate(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            values = value if isinstance(value, tuple) else (value,)
            if f.name.endswith(("_neg", "_pos")) and len(values) != 3:
                raise ValueError(f"ImpedanceConfig.{f.name} needs 3 values, got {len(values)}")
            for v in values:
                if not math.isfinite(v):
                    raise NonFiniteError(f"ImpedanceConfig.{f.name} is not finite: {value}")
                if v < 0.0:
                    raise ValueError(f"ImpedanceConfig.{f.name} must be >= 0, got {value}")
            bound = UPPER_BOUNDS[f.name]
            if max(values) > bound:
                raise ValueError(f"ImpedanceConfig.{f.name} must be <= {bound:g}, got {value}")
        if not 0.0 < self.filter_factor <= 1.0:
            raise ValueError(f"filter_factor must be in (0, 1], got {self.filter_factor}")
        if self.torque_rate_limit <= 0.0 or self.dt <= 0.0:
            raise ValueError("torque_rate_limit and dt must be > 0")

    @classmethod
    def compliant(cls) -> "ImpedanceConfig":
        """SERL's defaults (serl_franka_controllers): soft, 1 cm / 0.05 clips -> <= 20 N spring."""
        return cls()

    @classmethod
    def precision(cls) -> "ImpedanceConfig":
        """HIL-SERL's PRECISION_PARAM (RAM insertion config), used for reset moves.

        Same translational gains, stiffer rotation (250, damping 9) and wide clips
        (0.1 m, 0.5) so the arm tracks large reset motions accurately instead of
        being force-limited.
        """
        return cls(
            rotational_stiffness=250.0,
            rotational_damping=9.0,
            translational_clip_neg=(0.1, 0.1, 0.1),
            translational_clip_pos=(0.1, 0.1, 0.1),
            rotational_clip_neg=(0.5, 0.5, 0.5),
            rotational_clip_pos=(0.5, 0.5, 0.5),
        )

    def replace(self, **changes) -> "ImpedanceConfig":
        return ImpedanceConfig(**{**asdict(self), **changes})


def _gain_vector(cfg: ImpedanceConfig) -> np.ndarray:
    g = np.empty(_N_GAINS)
    g[0:3], g[3:6] = cfg.translational_stiffness, cfg.rotational_stiffness
    g[6:9], g[9:12] = cfg.translational_damping, cfg.rotational_damping
    g[12:15], g[15:18] = cfg.translational_ki, cfg.rotational_ki
    g[_KNS] = cfg.nullspace_stiffness
    return g


def _finite_array(name: str, value, shape: tuple[int, ...]) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    # A sum is a cheap finiteness screen (a NaN/inf anywhere makes it non-finite; Python's sum
    # over tolist() beats numpy's for these sizes). Finite values near 1e308 whose sum
    # overflows trip it too; such values are not robot data.
    if not math.isfinite(sum(a.ravel().tolist())):
        raise NonFiniteError(f"{name} is not finite: {a.tolist()}")
    return a


def _unit_quat(name: str, quat) -> tuple[float, float, float, float]:
    x, y, z, w = _finite_array(name, quat, (4,)).tolist()
    norm = math.sqrt(x * x + y * y + z * z + w * w)
    if norm < 1e-6:
        raise ValueError(f"{name} has zero norm: {[x, y, z, w]}")
    return x / norm, y / norm, z / norm, w / norm


class CartesianImpedanceController:
    """The impedance law with filtered targets and gains, reference clipping and rate limit.

    Call `reset(ee_pos, ee_quat)` when control starts (target := current pose). If
    `compute` comes first, it does that reset itself from the state it is given, keeping a
    target already given with `set_target` as the commanded target (like the franka
    controllers' starting()). See the module docstring for the safety contract.
    """

    def __init__(self, cfg: ImpedanceConfig, q_nullspace: np.ndarray):
        q_ns = _finite_array("q_nullspace", q_nullspace, np.shape(q_nullspace))
        if q_ns.ndim != 1:
            raise ValueError(f"q_nullspace must be 1-D, got shape {q_ns.shape}")
        self._n = q_ns.shape[0]
        self._q_nullspace = q_ns.copy()
        self._gains = np.empty(_N_GAINS)
        self._gains_target = np.empty(_N_GAINS)
        self._apply_config(cfg)
        self._gains[:] = self._gains_target
        # Views into the filtered gains (updated in place every tick).
        self._stiffness, self._damping, self._ki = self._gains[_K], self._gains[_D], self._gains[_KI]
        # Targets as Python floats: the per-tick scalar maths on them is cheaper than numpy.
        self._pos_cmd: tuple[float, float, float] | None = None
        self._quat_cmd: tuple[float, float, float, float] | None = None
        self._pos_f: tuple[float, float, float] | None = None
        self._quat_f: tuple[float, float, float, float] | None = None
        self._integral = [0.0] * 6               # integral of e dt, per axis
        self._tau_prev = np.zeros(self._n)
        self._zeros = np.zeros(self._n)
        # Preallocated work arrays.
        self._e = np.zeros(6)
        self._wrench = np.zeros(6)
        self._jjt = np.zeros((6, 6))
        self._null = np.zeros(self._n)
        self._delta = np.zeros(self._n)
        self.last_fault: str | None = None       # message of the last failed compute

    # ------------------------------------------------------------------ configuration
    def _apply_config(self, cfg: ImpedanceConfig) -> None:
        if not isinstance(cfg, ImpedanceConfig):
            raise TypeError(f"expected ImpedanceConfig, got {type(cfg).__name__}")
        cfg.validate()
        self.cfg = ImpedanceConfig(**asdict(cfg))  # own copy: later edits by the caller do nothing
        self._gains_target[:] = _gain_vector(cfg)
        # Clips apply at once (safety bounds must not lag behind).
        self._clip_lo = tuple(-c for c in cfg.translational_clip_neg + cfg.rotational_clip_neg)
        self._clip_hi = cfg.translational_clip_pos + cfg.rotational_clip_pos
        ki = (cfg.translational_ki,) * 3 + (cfg.rotational_ki,) * 3
        limits = (cfg.integral_limit,) * 3 + (cfg.rotational_integral_limit,) * 3
        self._int_wrench_limit = limits
        # Anti-windup: the state never holds more than the limit can use at the target gain.
        self._int_state_limit = tuple(L / k if k > 0.0 else 0.0 for L, k in zip(limits, ki))
        self._integral_on = any(k > 0.0 for k in ki)
        self._damp2_eye = np.eye(6) * cfg.nullspace_pinv_damping ** 2
        self._a = cfg.filter_factor
        self._rate = cfg.torque_rate_limit
        self._dt = cfg.dt

    def set_config(self, cfg: ImpedanceConfig) -> None:
        """New gains move through the filter; clips, limits, filter factor and dt apply at once."""
        self._apply_config(cfg)
        self._integral = [min(max(v, -L), L) for v, L in zip(self._integral, self._int_state_limit)]

    def set_nullspace_target(self, q_nullspace: np.ndarray) -> None:
        self._q_nullspace[:] = _finite_array("q_nullspace", q_nullspace, (self._n,))

    # ------------------------------------------------------------------ targets
    def reset(self, ee_pos, ee_quat, tau_prev=None) -> None:
        """Target := current pose; clears the integral; filtered targets and gains jump to the
        commanded ones; the rate limiter starts from tau_prev (default zeros)."""
        pos = tuple(_finite_array("ee_pos", ee_pos, (3,)).tolist())
        quat = _unit_quat("ee_quat", ee_quat)
        tau = self._zeros if tau_prev is None else _finite_array("tau_prev", tau_prev, (self._n,))
        self._pos_cmd = self._pos_f = pos
        self._quat_cmd = self._quat_f = quat
        self._integral = [0.0] * 6
        self._gains[:] = self._gains_target
        self._tau_prev[:] = tau
        self.last_fault = None

    def set_target(self, pos, quat) -> None:
        """Equilibrium pose, base frame, quat (x, y, z, w). A bad one raises; the old one stays."""
        p = tuple(_finite_array("target pos", pos, (3,)).tolist())
        q = _unit_quat("target quat", quat)
        self._pos_cmd, self._quat_cmd = p, q

    @property
    def target(self) -> tuple[np.ndarray, np.ndarray]:
        """The commanded (unfiltered) equilibrium pose."""
        if self._pos_cmd is None:
            raise RuntimeError("no target yet: call reset() or set_target()")
        return np.array(self._pos_cmd), np.array(self._quat_cmd)

    @property
    def filtered_target(self) -> tuple[np.ndarray, np.ndarray]:
        """The pose the spring pulls towards now (after the first-order filter)."""
        if self._pos_f is None:
            raise RuntimeError("no filtered target yet: call reset() or compute()")
        return np.array(self._pos_f), np.array(self._quat_f)

    @property
    def filtered_gains(self) -> dict[str, float]:
        g = self._gains
        return {
            "translational_stiffness": float(g[0]), "rotational_stiffness": float(g[3]),
            "translational_damping": float(g[6]), "rotational_damping": float(g[9]),
            "translational_ki": float(g[12]), "rotational_ki": float(g[15]),
            "nullspace_stiffness": float(g[_KNS]),
        }

    def hold_torque(self) -> np.ndarray:
        """The command to send when compute raised: zero torque (gravity is compensated outside)."""
        return np.zeros(self._n)

    # ------------------------------------------------------------------ the law
    def compute(self, q, dq, ee_pos, ee_quat, jacobian, coriolis) -> np.ndarray:
        """Joint torques (n,) for one control tick. jacobian (6, n): rows 0-2 linear,
        3-5 angular, base frame; coriolis (n,) is added as is (the Coriolis/centrifugal
        torque, without gravity)."""
        try:
            return self._compute(q, dq, ee_pos, ee_quat, jacobian, coriolis)
        except Exception as err:
            # Whatever failed, the caller now sends hold_torque(): ramp the next command from zero.
            self._tau_prev[:] = 0.0
            self.last_fault = f"{type(err).__name__}: {err}"
            raise

    def _compute(self, q, dq, ee_pos, ee_quat, jacobian, coriolis) -> np.ndarray:
        n = self._n
        q = _finite_array("q", q, (n,))
        dq = _finite_array("dq", dq, (n,))
        px, py, pz = _finite_array("ee_pos", ee_pos, (3,)).tolist()
        qx, qy, qz, qw = _unit_quat("ee_quat", ee_quat)
        J = _finite_array("jacobian", jacobian, (6, n))
        coriolis = _finite_array("coriolis", coriolis, (n,))

        if self._pos_f is None:  # first tick without reset(): start at the current pose
            cmd = (self._pos_cmd, self._quat_cmd)
            self.reset((px, py, pz), (qx, qy, qz, qw))
            if cmd[0] is not None:
                self._pos_cmd, self._quat_cmd = cmd

        # --- error, current minus target, clipped per axis (scalar maths: 6 numbers).
        tx, ty, tz = self._pos_f
        dx, dy, dz, dw = self._quat_f
        lo, hi = self._clip_lo, self._clip_hi
        e0 = min(max(px - tx, lo[0]), hi[0])
        e1 = min(max(py - ty, lo[1]), hi[1])
        e2 = min(max(pz - tz, lo[2]), hi[2])
        if qx * dx + qy * dy + qz * dz + qw * dw < 0.0:  # double cover: same hemisphere
            qx, qy, qz, qw = -qx, -qy, -qz, -qw
        # v = vec(conj(q) * q_d): current -> target rotation, end-effector frame.
        vx = qw * dx - qx * dw - qy * dz + qz * dy
        vy = qw * dy + qx * dz - qy * dw - qz * dx
        vz = qw * dz - qx * dy + qy * dx - qz * dw
        # R(q) v = v + w t + u x t, t = 2 u x v (u = vec(q)); e_rot = -R(q) v, base frame.
        t0 = 2.0 * (qy * vz - qz * vy)
        t1 = 2.0 * (qz * vx - qx * vz)
        t2 = 2.0 * (qx * vy - qy * vx)
        e3 = -(vx + qw * t0 + qy * t2 - qz * t1)
        e4 = -(vy + qw * t1 + qz * t0 - qx * t2)
        e5 = -(vz + qw * t2 + qx * t1 - qy * t0)
        e3 = min(max(e3, lo[3]), hi[3])
        e4 = min(max(e4, lo[4]), hi[4])
        e5 = min(max(e5, lo[5]), hi[5])
        e = self._e
        e[:] = (e0, e1, e2, e3, e4, e5)

        # --- task wrench F = -K e - D J dq - Ki integral(e dt).
        g = self._gains
        wrench = self._wrench
        np.multiply(self._stiffness, e, out=wrench)
        wrench += self._damping * (J @ dq)
        integral = self._integral
        if self._integral_on:  # skipped when both Ki targets are 0 (the SERL default)
            dt = self._dt
            s_lim, w_lim = self._int_state_limit, self._int_wrench_limit
            integral = [min(max(integral[i] + ei * dt, -s_lim[i]), s_lim[i])
                        for i, ei in enumerate((e0, e1, e2, e3, e4, e5))]
            wrench += [min(max(k * v, -L), L) for k, v, L in zip(self._ki.tolist(), integral, w_lim)]
        np.negative(wrench, out=wrench)

        # --- nullspace: (I - J^T pinv(J^T)) v with pinv(J^T) = (J J^T + l^2 I)^-1 J, the
        # damped pseudo-inverse franka_example_controllers uses; solved, never inverted.
        kns = g[_KNS]
        null = self._null
        np.subtract(self._q_nullspace, q, out=null)
        null *= kns
        null -= (2.0 * math.sqrt(kns)) * dq
        jjt = np.matmul(J, J.T, out=self._jjt)
        jjt += self._damp2_eye
        try:
            y = _solve_vector(jjt, J @ null)  # singular (damping 0 only) gives NaN, caught below
        except np.linalg.LinAlgError as err:
            raise NonFiniteError(f"jacobian is singular (J J^T not invertible): {err}") from None

        # tau = J^T F + (v - J^T y) + coriolis = J^T (F - y) + v + coriolis.
        wrench -= y
        tau_d = J.T @ wrench
        tau_d += null
        tau_d += coriolis
        # Checked before the rate limit, which would clip an inf to a finite step.
        if not math.isfinite(sum(tau_d.tolist())):
            raise NonFiniteError(f"output torque is not finite: {tau_d.tolist()} (singular jacobian?)")

        # --- torque-rate limit against the last command.
        delta = np.subtract(tau_d, self._tau_prev, out=self._delta)
        np.minimum(delta, self._rate, out=delta)
        np.maximum(delta, -self._rate, out=delta)
        tau = self._tau_prev + delta

        # --- commit: only a fully finite tick changes the state.
        self._tau_prev[:] = tau
        self._integral = integral
        self._advance_filters()
        self.last_fault = None
        return tau

    def _advance_filters(self) -> None:
        a = self._a
        g = self._gains
        g *= 1.0 - a
        g += a * self._gains_target
        (fx, fy, fz), (cx, cy, cz) = self._pos_f, self._pos_cmd
        self._pos_f = (fx + a * (cx - fx), fy + a * (cy - fy), fz + a * (cz - fz))
        self._quat_f = slerp_scalar(self._quat_f, self._quat_cmd, a)

