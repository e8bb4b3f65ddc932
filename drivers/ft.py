"""Force/torque processing shared by every wrench source (Robotiq FT-300, ATI Net F/T, the
Franka's external-wrench estimate): zeroing, an optional low-pass filter, and limit events.
No ROS here; `wrench_output.py` wraps it for a node.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LimitEvent:
    """A wrench crossed a limit (exceeded=True) or came back under it (exceeded=False)."""

    exceeded: bool
    force: float  # |F| in N at the crossing
    torque: float  # |T| in Nm at the crossing
    force_limit: float
    torque_limit: float
    stamp: float

    def describe(self) -> str:
        if self.exceeded:
            return (f"wrench limit exceeded: |F| = {self.force:.1f} N (limit {self.force_limit:g}), "
                    f"|T| = {self.torque:.2f} Nm (limit {self.torque_limit:g})")
        return f"wrench back within limits: |F| = {self.force:.1f} N, |T| = {self.torque:.2f} Nm"


class WrenchProcessor:
    """raw (6,) [Fx, Fy, Fz, Tx, Ty, Tz] -> zeroed, optionally low-passed wrench, plus limit events.

    - zero(): the bias becomes the mean of the last `zero_window` raw samples;
    - cutoff_hz > 0: first-order low-pass, its factor computed from each sample's time step;
    - limits (0 = off) are checked on the zeroed, *unfiltered* wrench (a filter would delay a
      safety event); an event fires when |F| or |T| goes over, and again when both are back under.
    """

    def __init__(self, cutoff_hz: float = 0.0, force_limit: float = 0.0, torque_limit: float = 0.0,
                 zero_window: int = 10):
        for name, v in (("cutoff_hz", cutoff_hz), ("force_limit", force_limit), ("torque_limit", torque_limit)):
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be finite and >= 0, got {v}")
        self.cutoff_hz, self.force_limit, self.torque_limit = cutoff_hz, force_limit, torque_limit
        self.bias = np.zeros(6)
        self._recent: deque[np.ndarray] = deque(maxlen=max(1, zero_window))
        self._filtered: np.ndarray | None = None
        self._last_t: float | None = None
        self.exceeded = False

    def zero(self) -> np.ndarray:
        """Takes the current reading as zero; returns the bias. Raises if no sample came yet."""
        if not self._recent:
            raise RuntimeError("no wrench sample received yet; cannot zero")
        self.bias = np.mean(self._recent, axis=0)
        self._filtered = None  # restart the filter from the zeroed signal
        return self.bias.copy()

    def process(self, raw, t: float) -> tuple[np.ndarray, LimitEvent | None]:
        raw = np.asarray(raw, dtype=np.float64)
        if raw.shape != (6,):
            raise ValueError(f"a wrench has 6 values, got shape {raw.shape}")
        if not np.all(np.isfinite(raw)):
            raise ValueError(f"non-finite wrench {raw.tolist()}")
        self._recent.append(raw)
        w = raw - self.bias
        event = self._check_limits(w, t)
        if self.cutoff_hz > 0:
            if self._filtered is None or self._last_t is None or t <= self._last_t:
                self._filtered = w.copy()
            else:
                rc = 1.0 / (2.0 * math.pi * self.cutoff_hz)
                dt = t - self._last_t
                self._filtered += dt / (rc + dt) * (w - self._filtered)
            w = self._filtered.copy()
        self._last_t = t
        return w, event

    def _check_limits(self, w: np.ndarray, t: float) -> LimitEvent | None:
        if not (self.force_limit or self.torque_limit):
            return None
        f, tq = float(np.linalg.norm(w[:3])), float(np.linalg.norm(w[3:]))
        over = (self.force_limit > 0 and f > self.force_limit) or (self.torque_limit > 0 and tq > self.torque_limit)
        if over == self.exceeded:
            return None
        self.exceeded = over
        return LimitEvent(over, f, tq, self.force_limit, self.torque_limit, t)
