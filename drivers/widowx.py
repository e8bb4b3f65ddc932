"""The WidowX 250 6-DoF arm over its Dynamixel bus: the ROS-free core of the driver node.

`WidowXArm` owns a DynamixelBus and one control thread (with a stop path). Each cycle, at
`control_rate`, it does one sync read (state of every servo + their hardware-alert bits),
computes the next joint goal and does one sync write of goal positions:

- tracking: the latest equilibrium pose -> DLS IK (controllers/ik.py) from the last commanded
  joints, then clipped to `max_joint_velocity` x dt per joint and to the joint limits;
- holding: the goal stays where the arm was when it began to hold;
- resetting: a minimum-jerk joint move to `home` at `reset_joint_speed` (peak), then hold.

Safety: a non-finite or malformed target is refused (ValueError) and the arm holds where it
is; no target for `watchdog_s` -> hold; a servo's hardware error (overload, overheating,
electrical shock, encoder, voltage) -> the failed servo is torque-off (the servo does that
itself), every other joint holds, targets are ignored until `recover()` reboots the failed
servos and re-enables their torque. A lost bus (port vanished, no status packets) -> mode
"lost", the servos keep their last goal on their own, the thread reconnects with backoff
and resumes holding where the arm is.

The gripper (PWM or current mode) follows a 0 (open) .. 1 (closed) command with a
proportional effort loop on its servo angle; its effort saturates at the PWM/current limit,
which is the grasp force on an object.

Thread-safety: every public method may be called from any thread (the ROS callbacks).
Events (faults, watchdog, lost link, ...) queue up for `take_events()`.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import numpy as np

from robot_rl.controllers.ik import DLSIK, IKConfig
from robot_rl.controllers.limits import validate_target
from robot_rl.controllers.rotations import matrix_to_quat
from robot_rl.controllers.widowx_model import WIDOWX_250S, ArmModel
from robot_rl.drivers.dynamixel_bus import BusConfig, BusState, DynamixelBus, PortFailedError, decode_hardware_error
from robot_rl.drivers.errors import DeviceLostError, DeviceNotFoundError


@dataclass
class WidowXConfig:
    bus: BusConfig = field(default_factory=BusConfig)
    control_rate: float = 100.0          # Hz: read + IK + write cycles (state is published per cycle)
    max_joint_velocity: float = 1.5      # rad/s per joint, on top of the IK's own limit (pi rad/s)
    joint_lower: Optional[tuple[float, ...]] = None   # rad; None = the model's limits
    joint_upper: Optional[tuple[float, ...]] = None
    watchdog_s: float = 0.5              # no target for this long -> hold
    home: tuple[float, ...] = tuple(WIDOWX_250S.home.tolist())
    reset_joint_speed: float = 0.5       # rad/s, peak joint speed of the reset move
    reset_timeout_s: float = 20.0
    gripper_open: float = 1.0            # gripper servo angle (rad) fully open ...
    gripper_closed: float = -0.5         # ... and fully closed (calibrate on the arm)
    gripper_gain: float = 4.0            # effort (fraction of the limit) per rad of error
    gripper_deadband: float = 0.02       # rad: no effort closer than this
    ik: IKConfig = field(default_factory=IKConfig)
    reconnect_backoff: float = 0.2       # s, doubled per failure ...
    reconnect_backoff_max: float = 2.0   # ... up to this
    lost_after: int = 3                  # consecutive cycles without status packets -> lost

    def validate(self, model: ArmModel) -> None:
        n = model.n_joints
        if self.lost_after < 1:
            raise ValueError("lost_after must be >= 1")
        if len(self.bus.joint_ids) != n:
            raise ValueError(f"joint_ids needs {n} ids ({', '.join(model.joint_names)}), got {self.bus.joint_ids}")
        for name in ("control_rate", "max_joint_velocity", "watchdog_s", "reset_joint_speed", "reset_timeout_s",
                     "gripper_gain", "reconnect_backoff", "reconnect_backoff_max"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be finite and > 0, got {value}")
        for name in ("home", "joint_lower", "joint_upper"):
            value = getattr(self, name)
            if value is not None and (len(value) != n or not all(math.isfinite(v) for v in value)):
                raise ValueError(f"{name} needs {n} finite values, got {value}")
        lo, hi = self.limits(model)
        if np.any(lo >= hi):
            raise ValueError("joint_lower must be below joint_upper")
        if np.any(np.asarray(self.home) < lo) or np.any(np.asarray(self.home) > hi):
            raise ValueError(f"home {self.home} is outside the joint limits")
        if self.gripper_open == self.gripper_closed:
            raise ValueError("gripper_open and gripper_closed must differ")

    def limits(self, model: ArmModel) -> tuple[np.ndarray, np.ndarray]:
        """Configured limits, never wider than the model's."""
        lo = model.lower if self.joint_lower is None else np.maximum(model.lower, self.joint_lower)
        hi = model.upper if self.joint_upper is None else np.minimum(model.upper, self.joint_upper)
        return np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)


@dataclass
class WidowXState:
    stamp: float = 0.0                       # time.monotonic() of the read
    mode: str = "hold"
    connected: bool = False
    q: np.ndarray = field(default_factory=lambda: np.zeros(6))
    dq: np.ndarray = field(default_factory=lambda: np.zeros(6))
    current: np.ndarray = field(default_factory=lambda: np.full(6, np.nan))   # A (NaN: not measured)
    q_goal: np.ndarray = field(default_factory=lambda: np.zeros(6))
    pos: np.ndarray = field(default_factory=lambda: np.zeros(3))
    quat: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 0.0, 1.0]))
    twist: np.ndarray = field(default_factory=lambda: np.zeros(6))          # (v, w), base frame
    gripper: float = float("nan")            # 0 open .. 1 closed
    gripper_velocity: float = 0.0            # per s, same scale
    gripper_effort: float = float("nan")     # A, or load fraction (XL430)
    faults: dict = field(default_factory=dict)   # servo id -> error bits
    cycles: int = 0


def min_jerk(tau: float) -> float:
    tau = min(max(tau, 0.0), 1.0)
    return tau ** 3 * (10.0 - 15.0 * tau + 6.0 * tau * tau)


class WidowXArm:
    def __init__(self, config: WidowXConfig, model: ArmModel = WIDOWX_250S,
                 on_cycle: Callable[[WidowXState], None] | None = None,
                 on_event: Callable[[str, dict], None] | None = None):
        """on_cycle(state): after every control cycle, on the control thread.
        on_event(kind, fields): at once, on the thread that saw it; without it, events queue
        up for take_events()."""
        config.validate(model)
        self.config, self.model = config, model
        self.ik = DLSIK(model, config.ik)
        self.lower, self.upper = config.limits(model)
        self.on_cycle, self.on_event = on_cycle, on_event
        self.bus = DynamixelBus(config.bus)
        self._lock = threading.RLock()        # state and commands
        self._bus_lock = threading.Lock()     # one bus user at a time (cycle vs services)
        self._events: deque[tuple[str, dict]] = deque(maxlen=1000)
        self._state = WidowXState()
        self._target: tuple[np.ndarray, np.ndarray] | None = None
        self._target_time = 0.0
        self._q_cmd: np.ndarray | None = None
        self._mode = "hold"
        self._reset: dict | None = None
        self._gripper_target: float | None = None
        self._gripper_written: float | None = None
        self._backoff = config.reconnect_backoff
        self._next_try = 0.0
        self.cycle_times: deque[float] = deque(maxlen=2000)

        self.bus.open()          # DeviceNotFoundError: no port, a servo missing
        self._take_bus_events()
        first = None
        for attempt in range(config.lost_after):
            try:
                first = self.bus.read_state()
                break
            except DeviceLostError as e:
                if attempt == config.lost_after - 1:
                    self.bus.close()
                    raise DeviceNotFoundError(f"the arm answered the set-up, then not the first state read: {e}") from e
        self._q_cmd = first.position[:model.n_joints].copy()
        self._update_state(first)
        self._state.connected = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="widowx-control", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ commands
    def set_target(self, pos, quat, now: float | None = None) -> None:
        """Track this TCP pose. A bad one raises ValueError, and the arm holds where it is."""
        try:
            target = validate_target(pos, quat)
        except ValueError:
            with self._lock:
                if self._mode == "track":
                    self._enter_hold("target rejected")
            raise
        with self._lock:
            if self._mode in ("fault", "lost", "reset"):
                return   # ignored until recovered / reconnected / the reset is done
            self._target = target
            self._target_time = time.monotonic() if now is None else now
            if self._mode == "hold":
                self._mode = "track"
                self._event("mode", mode="track")

    def set_gripper(self, command01: float) -> None:
        """0 open .. 1 closed. NaN or out of [0, 1] raises ValueError."""
        c = float(command01)
        if not 0.0 <= c <= 1.0:
            raise ValueError(f"gripper command must be a finite number in [0, 1], got {command01!r}")
        if self.config.bus.gripper_id < 0:
            raise ValueError("this arm has no gripper (gripper_id < 0)")
        with self._lock:
            self._gripper_target = c

    def reset(self, timeout: float | None = None) -> tuple[bool, str]:
        """Move to home with a minimum-jerk profile; returns when there (or failed)."""
        with self._lock:
            if self._mode in ("fault", "lost"):
                return False, f"cannot reset in mode {self._mode}: call recover first"
            q0 = self._q_cmd.copy()
            home = np.clip(np.asarray(self.config.home, dtype=float), self.lower, self.upper)
            span = float(np.max(np.abs(home - q0)))
            duration = max(0.2, 1.875 * span / self.config.reset_joint_speed)  # min-jerk peak = 1.875 x mean
            r = {"q0": q0, "q1": home, "t0": time.monotonic(), "T": duration, "done": threading.Event(), "ok": None}
            self._reset = r
            self._target = None
            self._mode = "reset"
            self._event("mode", mode="reset", duration=duration)
        limit = timeout if timeout is not None else duration + self.config.reset_timeout_s
        r["done"].wait(limit)
        with self._lock:
            if r["ok"] is None:   # neither reached nor interrupted: give up, hold where it is
                r["ok"] = False
                if self._reset is r:
                    self._reset = None
                    self._enter_hold("reset timed out")
                return False, f"reset did not reach home within {limit:.1f} s"
        return (True, "at home") if r["ok"] else (False, "reset interrupted (fault or lost link)")

    def recover(self) -> tuple[bool, str]:
        """Reboot the servos that failed, re-enable torque, hold where the arm is."""
        with self._lock:
            mode, faults = self._mode, dict(self._state.faults)
        if mode == "lost":
            return self._try_reconnect(force=True)
        if mode != "fault":
            return True, f"nothing to recover (mode {mode})"
        rebooted = []
        try:
            with self._bus_lock:
                for dxl_id in sorted(faults):
                    self.bus.recover(dxl_id)
                    rebooted.append(dxl_id)
                left = self.bus.hardware_errors()
                state = self.bus.read_state()
        except DeviceLostError as e:
            self._lost(e)
            return False, f"link lost during recover: {e}"
        except RuntimeError as e:
            return False, f"recover failed: {e}"
        if left:
            with self._lock:
                self._state.faults = left
            return False, f"servos still in error after reboot: {self._describe(left)}"
        with self._lock:
            self._state.faults = {}
            self._q_cmd = state.position[:self.model.n_joints].copy()
            self._gripper_written = None
            self._mode = "hold"
            self._target = None
            self._event("recovered", rebooted=rebooted)
            self._event("mode", mode="hold")
        return True, f"rebooted servos {rebooted}; torque on, holding"

    LIVE_FIELDS = ("max_joint_velocity", "watchdog_s", "reset_joint_speed", "home", "gripper_gain",
                   "gripper_deadband", "ik")

    def update(self, **changes) -> None:
        """Changes control settings live (LIVE_FIELDS; `ik` an IKConfig). Validated as a whole;
        ValueError leaves everything as it was. Bus settings need a restart (EEPROM, torque)."""
        unknown = set(changes) - set(self.LIVE_FIELDS)
        if unknown:
            raise ValueError(f"not changeable live: {sorted(unknown)} (live: {', '.join(self.LIVE_FIELDS)})")
        new = replace(self.config, **changes)
        new.validate(self.model)
        ik = DLSIK(self.model, new.ik)
        with self._lock:
            self.config, self.ik = new, ik

    # ------------------------------------------------------------------ reading
    def state(self) -> WidowXState:
        with self._lock:
            s = self._state
            return WidowXState(**{k: (v.copy() if isinstance(v, (np.ndarray, dict)) else v)
                                  for k, v in s.__dict__.items()})

    @property
    def mode(self) -> str:
        with self._lock:
            return self._mode

    def take_events(self) -> list[tuple[str, dict]]:
        out = []
        while self._events:
            out.append(self._events.popleft())
        return out

    # ------------------------------------------------------------------ the loop
    def _run(self) -> None:
        period = 1.0 / self.config.control_rate
        next_t = time.monotonic()
        misses = 0
        while not self._stop.is_set():
            t0 = time.monotonic()
            if self.mode == "lost":
                self._try_reconnect()
            else:
                try:
                    self._cycle(period)
                    misses = 0
                except PortFailedError as e:
                    self._lost(e)
                except DeviceLostError as e:   # one missed status packet is not a lost arm
                    misses += 1
                    if misses >= self.config.lost_after:
                        misses = 0
                        self._lost(e)
                except Exception as e:   # never die silently: hold and say why
                    self._event("error", message=f"{type(e).__name__}: {e}")
                    with self._lock:
                        if self._mode in ("track", "reset"):
                            self._enter_hold("control error")
            self.cycle_times.append(time.monotonic() - t0)
            next_t += period
            delay = next_t - time.monotonic()
            if delay < 0:
                next_t = time.monotonic()
            else:
                self._stop.wait(delay)

    def _cycle(self, dt: float) -> None:
        with self._bus_lock:
            if not self.bus.is_open:
                raise DeviceLostError("bus closed")
            st = self.bus.read_state()
            with self._lock:
                known = set(self._state.faults)
            if st.alerts and not set(st.alerts) <= known:   # read address 70 only for new alerts
                self._fault(self.bus.hardware_errors(st.alerts), st)
            with self._lock:
                self._update_state(st)
                goal = self._next_goal(st, dt)
                self._state.q_goal = goal.copy()
                grip = self._gripper_effort(st)
            self.bus.write_goal_positions(goal)
            if grip is not None:
                self.bus.write_gripper_effort(grip)
                self._gripper_written = grip
        if self.on_cycle is not None:
            self.on_cycle(self.state())

    def _next_goal(self, st: BusState, dt: float) -> np.ndarray:
        n = self.model.n_joints
        q_meas = st.position[:n]
        now = time.monotonic()
        if self._mode == "track" and now - self._target_time > self.config.watchdog_s:
            self._enter_hold(f"watchdog: no target for {self.config.watchdog_s:.2f} s", q_meas)
        if self._mode == "track":
            pos, quat = self._target
            q_ik = self.ik.solve(self._q_cmd, pos, quat, dt)
            self._q_cmd = self._limit(q_ik, dt)
        elif self._mode == "reset":
            r = self._reset
            s = min_jerk((now - r["t0"]) / r["T"])
            self._q_cmd = r["q0"] + s * (r["q1"] - r["q0"])   # home is within the limits; the speed is the profile's
            if s >= 1.0 and np.max(np.abs(q_meas - r["q1"])) < 0.03:
                r["ok"] = True
                r["done"].set()
                self._reset = None
                self._mode = "hold"
                self._event("mode", mode="hold", reason="reset done")
        return self._q_cmd

    def _limit(self, q: np.ndarray, dt: float) -> np.ndarray:
        """Joint limits, then at most max_joint_velocity x dt from the last command: an arm that
        starts outside its limits is brought back at that speed, never in one jump."""
        step = self.config.max_joint_velocity * dt
        q = np.clip(q, self.lower, self.upper)
        return self._q_cmd + np.clip(q - self._q_cmd, -step, step)

    def _gripper_effort(self, st: BusState) -> float | None:
        cfg = self.config
        if cfg.bus.gripper_id < 0 or self._mode in ("fault", "lost"):
            return None
        if self._gripper_target is None:
            return None
        angle = st.position[-1]
        goal = cfg.gripper_open + self._gripper_target * (cfg.gripper_closed - cfg.gripper_open)
        error = goal - angle
        effort = 0.0 if abs(error) < cfg.gripper_deadband else max(-1.0, min(1.0, cfg.gripper_gain * error))
        effort = round(effort, 3)
        return None if effort == self._gripper_written else effort

    def _update_state(self, st: BusState) -> None:
        n = self.model.n_joints
        q, dq = st.position[:n].copy(), st.velocity[:n].copy()
        pos, rot, jac = self.model.fk_and_jacobian(q)
        s = self._state
        s.stamp, s.mode, s.q, s.dq, s.current = st.stamp, self._mode, q, dq, st.current[:n].copy()
        s.pos, s.quat, s.twist = pos, matrix_to_quat(rot), jac @ dq
        if self.config.bus.gripper_id >= 0:
            span = self.config.gripper_closed - self.config.gripper_open
            s.gripper = float(np.clip((st.position[-1] - self.config.gripper_open) / span, 0.0, 1.0))
            s.gripper_velocity = float(st.velocity[-1] / span)
            s.gripper_effort = float(st.current[-1] if np.isfinite(st.current[-1]) else st.load[-1])
        s.cycles += 1

    # ------------------------------------------------------------------ modes
    def _enter_hold(self, reason: str, q_meas: np.ndarray | None = None) -> None:
        """Hold where the arm is (measured), so a stale motion is not finished."""
        q = self._state.q if q_meas is None else q_meas
        self._q_cmd = np.asarray(q, dtype=float).copy()   # where it is, even outside the limits: no jump
        self._target = None
        self._mode = "hold"
        self._state.mode = "hold"
        self._event("hold", reason=reason)

    def _fault(self, errors: dict[int, int], st: BusState) -> None:
        with self._lock:
            if not errors:
                return
            new = {i: b for i, b in errors.items() if self._state.faults.get(i) != b}
            self._state.faults = {**self._state.faults, **errors}
            if self._mode != "fault":
                self._q_cmd = st.position[:self.model.n_joints].copy()
                self._target = None
                if self._reset is not None:
                    self._reset["ok"] = False
                    self._reset["done"].set()
                    self._reset = None
                self._mode = "fault"
            if new:
                self._event("fault", servos={str(i): {"bits": b, "errors": decode_hardware_error(b)}
                                             for i, b in new.items()},
                            message=f"hardware error: {self._describe(new)}; arm holds, call recover")

    def _describe(self, errors: dict[int, int]) -> str:
        return "; ".join(f"servo {i}: {', '.join(decode_hardware_error(b))}" for i, b in sorted(errors.items()))

    def _lost(self, error: Exception) -> None:
        with self._lock:
            was = self._mode
            self._mode = "lost"
            self._state.mode = "lost"
            self._state.connected = False
            self._target = None
            if self._reset is not None:
                self._reset["ok"] = False
                self._reset["done"].set()
                self._reset = None
            self._next_try = time.monotonic() + self._backoff
        with self._bus_lock:
            self.bus.close()
        if was != "lost":
            self._event("lost", message=f"bus lost: {error}; servos hold their last goal, reconnecting")

    def _try_reconnect(self, force: bool = False) -> tuple[bool, str]:
        now = time.monotonic()
        if not force and now < self._next_try:
            return False, "waiting to reconnect"
        try:
            with self._bus_lock:
                self.bus.open()
                st = self.bus.read_state()
        except (DeviceNotFoundError, DeviceLostError, RuntimeError) as e:
            with self._lock:
                self._next_try = time.monotonic() + self._backoff
                self._backoff = min(self._backoff * 2.0, self.config.reconnect_backoff_max)
            return False, f"reconnect failed: {e}"
        self._take_bus_events()
        with self._lock:
            self._backoff = self.config.reconnect_backoff
            self._q_cmd = st.position[:self.model.n_joints].copy()
            self._gripper_written = None
            self._update_state(st)
            self._state.connected = True
            self._mode = "hold"
            self._state.mode = "hold"
            self._event("reconnected", message="bus back; holding where the arm is")
        return True, "reconnected; holding"

    def _take_bus_events(self) -> None:
        for level, text in self.bus.events:
            self._event("bus", level=level, message=text)
        self.bus.events.clear()

    def _event(self, kind: str, **fields) -> None:
        if self.on_event is not None:
            self.on_event(kind, fields)
        else:
            self._events.append((kind, fields))

    def close(self) -> None:
        """Stop the loop; the servos keep holding their last goal with torque on."""
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
            self._thread.join(timeout=2.0)
        with self._bus_lock:
            self.bus.close()
