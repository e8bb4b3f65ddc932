"""Safety limits of the controller: what every value must be, and which way is "tighter".

Two sets of limits guard a robot:
* the safety box (`SafetyBox`): position box, roll-pitch-yaw window around `nominal_quat`, and
  the watchdog's `command_timeout`;
* the impedance law's gains, clips and rate limit (`controllers.impedance.ImpedanceConfig`,
  whose `validate` holds the upper bounds, `UPPER_BOUNDS`).

Both are checked at start-up and on every change (finite, ordered, a unit quaternion, within
the bounds below). At run time a change may only tighten them relative to the values the node
started with (the launch file's): `loosenings(start, new)` lists every way `new` is looser.
A node lets them loosen only when launched with `allow_loosening: true`.

"Tighter" per field (the direction that lowers force, speed or reach):
  box_low, rpy_low, nullspace_pinv_damping         higher
  box_high, rpy_high, command_timeout, every gain,
  clip, integral limit, filter_factor, torque rate  lower
  nominal_quat, dt                                 fixed (any change moves the window / the law)

No ROS here: the nodes (controllers/node.py, sim/twin_node.py) call these on parameter changes
only, never in the control loop.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from robot_rl.controllers.impedance import ImpedanceConfig
from robot_rl.config import Range, param

UNIT_QUAT_TOLERANCE = 1e-3   # |norm - 1| accepted (float32 round trips, hand-typed values)
BOX_BOUND = 2.0              # m: |box_low|, |box_high| per axis (beyond any arm's reach)
RPY_BOUND = 3.2              # rad: |rpy_low|, |rpy_high| (a hair over pi, so +-pi fits)
COMMAND_TIMEOUT_BOUND = 60.0  # s: the watchdog's longest wait (tests park it out of the way)

# ImpedanceConfig fields that tighten upwards, and the ones that may not change at all.
_TIGHTER_WHEN_HIGHER = {"box_low", "rpy_low", "nullspace_pinv_damping"}
_FIXED = {"nominal_quat", "dt"}


@dataclass(frozen=True)
class SafetyBox:
    """Where the controller lets an equilibrium pose go, and how long it waits for the next."""
    box_low: tuple[float, float, float] = param(
        (0.3, -0.3, 0.0), "safety box min xyz (m, base frame)", Range(-BOX_BOUND, BOX_BOUND))
    box_high: tuple[float, float, float] = param(
        (0.7, 0.3, 0.5), "safety box max xyz (m, base frame)", Range(-BOX_BOUND, BOX_BOUND))
    rpy_low: tuple[float, float, float] = param(
        (-0.5, -0.5, -3.2), "min roll-pitch-yaw relative to nominal_quat (rad)", Range(-RPY_BOUND, RPY_BOUND))
    rpy_high: tuple[float, float, float] = param(
        (0.5, 0.5, 3.2), "max roll-pitch-yaw relative to nominal_quat (rad)", Range(-RPY_BOUND, RPY_BOUND))
    nominal_quat: tuple[float, float, float, float] = param(
        (1.0, 0.0, 0.0, 0.0), "reference orientation of the rpy limits (x, y, z, w; unit)", Range(-1.0, 1.0))
    command_timeout: float = param(0.5, "s without equilibrium_pose before holding the measured pose",
                                   Range(0.0, COMMAND_TIMEOUT_BOUND, low_open=True))

    @classmethod
    def checked(cls, **values) -> "SafetyBox":
        """A validated box from raw values (lists, numpy arrays); nominal_quat normalised.
        Raises ValueError naming the field, the value and the allowed range."""
        out = {}
        for f in fields(cls):
            if f.name not in values:
                out[f.name] = getattr(cls, f.name)
                continue
            raw = values[f.name]
            if f.name == "command_timeout":
                out[f.name] = _number(f.name, raw)
                continue
            size = 4 if f.name == "nominal_quat" else 3
            try:
                vec = tuple(float(v) for v in raw)
            except (TypeError, ValueError):
                raise ValueError(f"{f.name} must be {size} numbers, got {raw!r}") from None
            if len(vec) != size:
                raise ValueError(f"{f.name} must be {size} numbers, got {len(vec)}: {list(vec)}")
            if not all(math.isfinite(v) for v in vec):
                raise ValueError(f"{f.name} is not finite: {list(vec)}")
            out[f.name] = vec
        box = cls(**out)
        box._validate()
        norm = math.sqrt(sum(v * v for v in box.nominal_quat))
        return cls(**{**asdict(box), "nominal_quat": tuple(v / norm for v in box.nominal_quat)})

    def _validate(self) -> None:
        for name, bound in (("box_low", BOX_BOUND), ("box_high", BOX_BOUND),
                            ("rpy_low", RPY_BOUND), ("rpy_high", RPY_BOUND)):
            if any(abs(v) > bound for v in getattr(self, name)):
                raise ValueError(f"{name} must be within [-{bound:g}, {bound:g}] per axis, "
                                 f"got {list(getattr(self, name))}")
        if any(lo >= hi for lo, hi in zip(self.box_low, self.box_high)):
            raise ValueError(f"box_low must be < box_high on every axis, got box_low "
                             f"{list(self.box_low)}, box_high {list(self.box_high)}")
        if any(lo > hi for lo, hi in zip(self.rpy_low, self.rpy_high)):
            raise ValueError(f"rpy_low must be <= rpy_high on every axis, got rpy_low "
                             f"{list(self.rpy_low)}, rpy_high {list(self.rpy_high)}")
        norm = math.sqrt(sum(v * v for v in self.nominal_quat))
        if abs(norm - 1.0) > UNIT_QUAT_TOLERANCE:
            raise ValueError(f"nominal_quat must be a unit quaternion (x, y, z, w; |norm - 1| <= "
                             f"{UNIT_QUAT_TOLERANCE:g}), got {list(self.nominal_quat)} (norm {norm:.4g})")
        if not 0.0 < self.command_timeout <= COMMAND_TIMEOUT_BOUND:
            raise ValueError(f"command_timeout must be in (0, {COMMAND_TIMEOUT_BOUND:g}] s, "
                             f"got {self.command_timeout}")

    def arrays(self) -> dict[str, np.ndarray]:
        """The vectors as numpy arrays (what clip_to_box takes)."""
        return {f.name: np.array(getattr(self, f.name)) for f in fields(self) if f.name != "command_timeout"}


def validate_target(pos, quat) -> tuple[np.ndarray, np.ndarray]:
    """Checks an equilibrium pose a driver is about to track: shapes (3,) and (4,), finite, a
    non-zero quaternion (returned normalised). ValueError names what is wrong."""
    p = np.asarray(pos, dtype=np.float64)
    q = np.asarray(quat, dtype=np.float64)
    if p.shape != (3,) or q.shape != (4,):
        raise ValueError(f"target needs pos (3,) and quat (4,), got {p.shape} and {q.shape}")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
        raise ValueError(f"target is not finite: pos {p.tolist()} quat {q.tolist()}")
    n = float(np.linalg.norm(q))
    if n < 1e-6:
        raise ValueError(f"target quaternion has zero norm: {q.tolist()}")
    return p, q / n


def _number(name: str, raw) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ValueError(f"{name} must be a number, got {raw!r}")
    if not math.isfinite(raw):
        raise ValueError(f"{name} is not finite: {raw}")
    return float(raw)


def loosenings(start: SafetyBox | ImpedanceConfig, new: SafetyBox | ImpedanceConfig) -> list[str]:
    """Every way `new` is looser than `start` (same type), one line each naming the field,
    the axis, the start-up value and the asked-for value; [] when `new` is as tight or tighter."""
    if type(start) is not type(new):
        raise TypeError(f"cannot compare {type(start).__name__} with {type(new).__name__}")
    found = []
    for f in fields(start):
        old_v, new_v = getattr(start, f.name), getattr(new, f.name)
        if f.name in _FIXED:
            if f.name == "nominal_quat":  # q and -q are the same rotation
                same = abs(sum(a * b for a, b in zip(old_v, new_v))) >= 1.0 - 1e-9
            else:
                same = old_v == new_v
            if not same:
                found.append(f"{f.name} is fixed at run time ({_show(old_v)}), asked {_show(new_v)}")
            continue
        olds = old_v if isinstance(old_v, tuple) else (old_v,)
        news = new_v if isinstance(new_v, tuple) else (new_v,)
        higher = f.name in _TIGHTER_WHEN_HIGHER
        for axis, (o, n) in enumerate(zip(olds, news)):
            if (n < o) if higher else (n > o):
                where = f"[{axis}]" if isinstance(old_v, tuple) else ""
                found.append(f"{f.name}{where} {n:g} is looser than the start-up {o:g} "
                             f"(may only {'rise' if higher else 'fall'})")
    return found


def envelope(start: ImpedanceConfig, also: ImpedanceConfig) -> ImpedanceConfig:
    """The loosest of two gain sets, field by field (fixed fields keep `start`'s): what a node
    accepts at run time when its launch file declares a second profile beside its start-up
    gains, e.g. the precision gains of Cartesian resets. Changes stay bounded by it."""
    values = {}
    for f in fields(start):
        a, b = getattr(start, f.name), getattr(also, f.name)
        if f.name in _FIXED:
            values[f.name] = a
            continue
        pick = min if f.name in _TIGHTER_WHEN_HIGHER else max
        values[f.name] = tuple(pick(x, y) for x, y in zip(a, b)) if isinstance(a, tuple) else pick(a, b)
    return ImpedanceConfig(**values)


def _show(value) -> str:
    return str([round(v, 6) for v in value]) if isinstance(value, tuple) else f"{value:g}"
