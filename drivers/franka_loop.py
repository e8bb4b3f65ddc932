"""The Franka's 1 kHz torque loop, in its own process (no ROS, no executor in it).

Measured on the 2-core dev box: an rclpy 1 kHz timer fell to 600-870 Hz while torch trained;
a plain loop in its own process held 1 kHz. So the node (drivers/franka_node.py) spawns this
process and talks to it through two seqlocked shared-memory structs (drivers/franka_ipc.py):
`target` (node -> loop: equilibrium pose + its arrival time) and `state` (loop -> node: robot
state at 1 kHz), plus a Pipe for rare requests (settings, reset, recover, stop) and the
loop's events (replies, faults).

Per tick: readOnce -> newest target (clipped to the box; stale -> hold the current pose) ->
controllers.impedance law with libfranka's zero Jacobian and Coriolis -> writeOnce(Torques)
-> state into shared memory. The robot adds gravity compensation itself. Nothing in the tick
blocks on the node; the tick reuses its buffers (pybind's readOnce still makes its state
objects, an allocation we cannot avoid from Python).

Faults: a libfranka ControlException (reflex, limits) or NetworkException (communication)
ends the motion; the loop reports it with libfranka's error flags and waits for `recover`
(reconnect if the connection died, automatic_error_recovery, back to impedance).
"""
from __future__ import annotations

import gc
import math
import os
import signal
import time
from dataclasses import dataclass, field

import numpy as np

from robot_rl.controllers.impedance import CartesianImpedanceController, ImpedanceConfig
from robot_rl.drivers.franka_ipc import SharedStruct

# Loop modes, published in state["mode"].
STARTING, IMPEDANCE, HOLDING, RESETTING, FAULT, STOPPED, RECOVERING = range(7)
MODE_NAMES = ("starting", "impedance", "holding", "resetting", "fault", "stopped", "recovering")

STATE_SPEC = {
    "t": 1,             # time.monotonic() of this sample (s)
    "robot_time": 1,    # libfranka's robot clock (s)
    "mode": 1,          # one of the modes above
    "ticks": 1,         # control ticks since the loop process started
    "missed": 1,        # robot cycles lost (libfranka readOnce duration > 1 ms)
    "period": 1,        # last wall-clock tick period (s)
    "compute": 1,       # last read->write time (s)
    "rejected": 1,      # targets the law refused (non-finite) since start
    "nonfinite": 1,     # ticks that sent hold torque because the law raised
    "q": 7, "dq": 7,
    "pos": 3, "quat": 4,            # TCP (O_T_EE), base frame, quat x y z w
    "twist": 6,                     # J dq: linear, angular, base frame
    "wrench": 6,                    # external wrench the world applies to the robot, at the TCP
    "tau": 7,                       # commanded torque (without gravity)
    "target_pos": 3, "target_quat": 4,  # commanded equilibrium in force (after clip / hold)
    "target_stamp": 1,              # arrival time (monotonic) of the target in force
}
TARGET_SPEC = {"pos": 3, "quat": 4, "stamp": 1}

# franka_example_controllers' thresholds (Nm for joints, N / Nm for the Cartesian axes).
DEFAULT_TORQUE_THRESHOLDS = (20.0, 20.0, 18.0, 18.0, 16.0, 14.0, 12.0)
DEFAULT_FORCE_THRESHOLDS = (20.0, 20.0, 20.0, 25.0, 25.0, 25.0)
# libfranka's "ready" posture (TCP down, in front of the base).
FRANKA_HOME_Q = (0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4)


@dataclass
class LoopSettings:
    robot_ip: str = "172.16.0.2"
    realtime: bool = True                   # libfranka RealtimeConfig.kEnforce (False: kIgnore)
    impedance: ImpedanceConfig = field(default_factory=ImpedanceConfig)
    watchdog_s: float = 0.5                 # no target for this long -> hold the current pose
    box_lo: tuple[float, float, float] = (0.2, -0.5, 0.02)   # safety box for targets (m, base)
    box_hi: tuple[float, float, float] = (0.8, 0.5, 0.8)
    q_home: tuple[float, ...] = FRANKA_HOME_Q
    reset_joint_speed: float = 0.6          # peak joint speed of the reset move (rad/s)
    lower_torque_thresholds: tuple[float, ...] = DEFAULT_TORQUE_THRESHOLDS
    upper_torque_thresholds: tuple[float, ...] = DEFAULT_TORQUE_THRESHOLDS
    lower_force_thresholds: tuple[float, ...] = DEFAULT_FORCE_THRESHOLDS
    upper_force_thresholds: tuple[float, ...] = DEFAULT_FORCE_THRESHOLDS
    publish_every: int = 1                  # ticks between state writes
    stats_size: int = 1 << 16               # ring of tick periods kept for the bench

    def validate(self) -> None:
        self.impedance.validate()
        for name, n in (("box_lo", 3), ("box_hi", 3), ("q_home", 7), ("lower_torque_thresholds", 7),
                        ("upper_torque_thresholds", 7), ("lower_force_thresholds", 6),
                        ("upper_force_thresholds", 6)):
            v = tuple(float(x) for x in getattr(self, name))
            if len(v) != n:
                raise ValueError(f"{name} needs {n} values, got {len(v)}")
            if not all(math.isfinite(x) for x in v):
                raise ValueError(f"{name} is not finite: {v}")
            setattr(self, name, v)
        if any(lo >= hi for lo, hi in zip(self.box_lo, self.box_hi)):
            raise ValueError(f"box_lo {self.box_lo} must be below box_hi {self.box_hi} on every axis")
        for name in ("watchdog_s", "reset_joint_speed"):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and v > 0.0):
                raise ValueError(f"{name} must be a positive number, got {v}")
        if min(self.lower_torque_thresholds + self.lower_force_thresholds) <= 0.0:
            raise ValueError("collision thresholds must be > 0")
        if any(u < lo for u, lo in zip(self.upper_torque_thresholds + self.upper_force_thresholds,
                                       self.lower_torque_thresholds + self.lower_force_thresholds)):
            raise ValueError("upper collision thresholds must be >= the lower ones")


def pose_from_o_t_ee(m) -> tuple[tuple[float, float, float], tuple[float, float, float, float]]:
    """Position and unit quaternion (x, y, z, w) of libfranka's column-major 4x4 O_T_EE."""
    r00, r10, r20 = m[0], m[1], m[2]
    r01, r11, r21 = m[4], m[5], m[6]
    r02, r12, r22 = m[8], m[9], m[10]
    tr = r00 + r11 + r22
    if tr > 0.0:  # Shepperd: pick the largest pivot for accuracy
        s = 2.0 * math.sqrt(tr + 1.0)
        q = ((r21 - r12) / s, (r02 - r20) / s, (r10 - r01) / s, 0.25 * s)
    elif r00 > r11 and r00 > r22:
        s = 2.0 * math.sqrt(1.0 + r00 - r11 - r22)
        q = (0.25 * s, (r01 + r10) / s, (r02 + r20) / s, (r21 - r12) / s)
    elif r11 > r22:
        s = 2.0 * math.sqrt(1.0 + r11 - r00 - r22)
        q = ((r01 + r10) / s, 0.25 * s, (r12 + r21) / s, (r02 - r20) / s)
    else:
        s = 2.0 * math.sqrt(1.0 + r22 - r00 - r11)
        q = ((r02 + r20) / s, (r12 + r21) / s, 0.25 * s, (r10 - r01) / s)
    if q[3] < 0.0:
        q = (-q[0], -q[1], -q[2], -q[3])
    return (m[12], m[13], m[14]), q


def error_names(errors) -> list[str]:
    """The libfranka error flags that are set, by name (franka::Errors)."""
    return [n for n in dir(errors) if not n.startswith("_") and getattr(errors, n) is True]


class ArmLoop:
    """Runs in the loop process; owns the pylibfranka Robot and the impedance controller."""

    def __init__(self, settings: LoopSettings, conn, state: SharedStruct, target: SharedStruct):
        import pylibfranka  # only the loop process talks to the robot (its calls hold the GIL)

        self.pf = pylibfranka
        self.settings = settings
        self.conn = conn
        self.state = state
        self.target = target
        self.robot = None
        self.model = None
        self.law = CartesianImpedanceController(settings.impedance, np.array(settings.q_home))
        self._parent = os.getppid()
        self._shutdown = False
        self._mode = STARTING
        self._ticks = 0
        self._ring_i = 0  # impedance ticks recorded in the stats ring
        self._open_request = None  # id of the request the current motion must still answer
        self._missed = 0
        self._rejected = 0
        self._nonfinite = 0
        self.periods = np.zeros(settings.stats_size)   # ring of wall-clock tick periods (s)
        self.computes = np.zeros(settings.stats_size)  # ring of read->write times (s)
        self._jcm = np.zeros((7, 6))     # libfranka's column-major Jacobian, filled in place
        self._dq = np.zeros(7)
        self._twist = np.zeros(6)
        self._target_version = -1
        self._target_stamp = 0.0
        self._holding = True
        self._tpos, self._tquat = (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)  # the target in force

    # ------------------------------------------------------------------ plumbing
    def send(self, *msg) -> None:
        try:
            self.conn.send(msg)
        except (BrokenPipeError, OSError):
            self._shutdown = True

    def fault(self, kind: str, message: str, errors: list[str]) -> None:
        self._mode = FAULT
        self._write_mode()
        self.send("fault", {"kind": kind, "message": message, "errors": errors})

    def _write_mode(self) -> None:
        f = self.state.begin_write()
        f["mode"][0] = self._mode
        self.state.end_write()

    def _connect(self) -> None:
        s = self.settings
        cfg = self.pf.RealtimeConfig.kEnforce if s.realtime else self.pf.RealtimeConfig.kIgnore
        self.robot = self.pf.Robot(s.robot_ip, cfg)
        self._apply_collision()
        self.model = self.robot.load_model()

    def _disconnect(self) -> None:
        # Dropping the last reference closes libfranka's sockets, so the robot accepts us again.
        self.robot = self.model = None
        gc.collect()

    def _apply_collision(self) -> None:
        s = self.settings
        self.robot.set_collision_behavior(list(s.lower_torque_thresholds), list(s.upper_torque_thresholds),
                                          list(s.lower_force_thresholds), list(s.upper_force_thresholds))

    # ------------------------------------------------------------------ requests
    def _handle(self, msg: tuple, in_motion: bool) -> tuple | None:
        """Acts on one request; returns the next supervisor action, or None to carry on."""
        kind = msg[0]
        if kind == "settings":
            req_id, new = msg[1], msg[2]
            try:
                new.validate()
            except (ValueError, TypeError) as err:
                self.send("reply", req_id, False, f"settings rejected: {err}")
                return None
            old = self.settings
            self.settings = new
            self.law.set_config(new.impedance)
            self.law.set_nullspace_target(np.array(new.q_home))
            collision = (old.lower_torque_thresholds, old.upper_torque_thresholds, old.lower_force_thresholds,
                         old.upper_force_thresholds) != (new.lower_torque_thresholds, new.upper_torque_thresholds,
                                                         new.lower_force_thresholds, new.upper_force_thresholds)
            if collision and self.robot is not None:
                if in_motion:  # applied between motions: leave impedance, set, come back
                    return ("collision", req_id)
                try:  # idle (fault, stopped): set now, stay idle
                    self._apply_collision()
                except Exception as err:
                    self.send("reply", req_id, False, f"collision thresholds rejected: {err}")
                    return None
            self.send("reply", req_id, True, "settings applied")
            return None
        if kind in ("reset", "recover", "stop", "stats"):
            if kind == "stats":
                n = min(self._ring_i, self.settings.stats_size)
                self.send("stats", msg[1], {"periods": self.periods[:n].copy(), "computes": self.computes[:n].copy(),
                                            "ticks": self._ticks, "missed": self._missed})
                return None
            return (kind, msg[1])
        if kind == "shutdown":
            self._shutdown = True
            return ("shutdown", None)
        self.send("reply", msg[1] if len(msg) > 1 else 0, False, f"unknown request {kind!r}")
        return None

    def _poll(self, in_motion: bool) -> tuple | None:
        if os.getppid() != self._parent:  # the node died: stop commanding
            self._shutdown = True
            return ("shutdown", None)
        try:
            while self.conn.poll():
                action = self._handle(self.conn.recv(), in_motion)
                if action is not None:
                    return action
        except (EOFError, OSError):
            self._shutdown = True
            return ("shutdown", None)
        return None

    # ------------------------------------------------------------------ supervisor
    def run(self) -> None:
        try:
            self._connect()
            action: tuple | None = ("impedance", None)
        except Exception as err:  # RealtimeException, NetworkException, IncompatibleVersion...
            self.fault("connect", f"{type(err).__name__}: {err}", [])
            action = None
        while not self._shutdown:
            if action is None:
                action = self._idle()
                continue
            kind, req_id = action
            if kind in ("impedance", "reset", "collision") and self.robot is None:
                rid = req_id[0] if isinstance(req_id, tuple) else req_id
                if rid is not None:
                    self.send("reply", rid, False, "not connected to the robot: call recover")
                action = None
                continue
            if kind == "impedance":
                action = self._run_motion(self._impedance_motion, req_id)
            elif kind == "reset":
                action = self._run_motion(self._reset_motion, req_id)
            elif kind == "recover":
                action = self._recover(req_id)
            elif kind == "collision":
                action = self._set_collision(req_id)
            elif kind == "stop":
                self._mode = STOPPED
                self._write_mode()
                self.send("reply", req_id, True, "stopped")
                action = None
            else:  # shutdown
                break
        self._mode = STOPPED
        self._write_mode()

    def _idle(self) -> tuple | None:
        """Out of motion (fault or stopped): keep publishing the state, wait for a request."""
        if self.robot is not None:
            try:
                self._publish(self.robot.read_once(), 0.0, 0.0)
            except Exception:  # the connection is gone; recover reconnects
                self._disconnect()
        self.conn.poll(0.01)  # wait a little for a request (and keep ~100 Hz of state)
        return self._poll(False)

    def _run_motion(self, motion, req_id) -> tuple | None:
        """Runs a motion; turns libfranka exceptions into a reported fault (and a failed reply)."""
        pending = req_id
        if isinstance(req_id, tuple):  # (request id, message): a reply due once impedance runs
            req_id = req_id[0]
        self._open_request = req_id  # cleared once answered
        try:
            return motion(pending)
        except self.pf.NetworkException as err:
            self._disconnect()
            self.fault("communication", f"{type(err).__name__}: {err}", ["communication"])
            if self._open_request is not None:
                self.send("reply", self._open_request, False, str(err))
        except (self.pf.ControlException, self.pf.CommandException, RuntimeError) as err:
            errors: list[str] = []
            try:  # the flags of the motion that just ended
                st = self.robot.read_once()
                errors = sorted(set(error_names(st.last_motion_errors)) | set(error_names(st.current_errors)))
            except Exception:
                self._disconnect()
            kind = "reflex" if any("reflex" in e for e in errors) else "control"
            self.fault(kind, f"{type(err).__name__}: {err}", errors)
            if self._open_request is not None:
                self.send("reply", self._open_request, False, str(err))
        except Exception as err:  # a bug: stop commanding (the robot stops itself), say so, stay up
            self._disconnect()
            self.fault("internal", f"{type(err).__name__}: {err}", [])
            if self._open_request is not None:
                self.send("reply", self._open_request, False, str(err))
        return None

    def _recover(self, req_id) -> tuple | None:
        self._mode = RECOVERING
        self._write_mode()
        try:
            if self.robot is None:
                self._connect()
            self.robot.automatic_error_recovery()
        except Exception as err:
            self._disconnect()
            self.fault("recover", f"{type(err).__name__}: {err}", [])
            self.send("reply", req_id, False, f"recovery failed: {err}")
            return None
        return ("impedance", (req_id, "recovered; back to impedance"))

    def _set_collision(self, req_id) -> tuple | None:
        try:
            self._apply_collision()
        except Exception as err:
            self.send("reply", req_id, False, f"collision thresholds rejected: {err}")
            return ("impedance", None)
        return ("impedance", (req_id, "settings applied (collision thresholds set)"))

    # ------------------------------------------------------------------ state out
    def _publish(self, st, period: float, compute: float, tau=None, jacobian_ready: bool = False) -> None:
        """State into shared memory. jacobian_ready: self._jcm already holds this state's Jacobian."""
        pos, quat = pose_from_o_t_ee(st.O_T_EE)
        f = self.state.begin_write()
        f["t"][0] = time.monotonic()
        f["robot_time"][0] = st.time.to_sec()
        f["mode"][0] = self._mode
        f["ticks"][0] = self._ticks
        f["missed"][0] = self._missed
        f["period"][0] = period
        f["compute"][0] = compute
        f["rejected"][0] = self._rejected
        f["nonfinite"][0] = self._nonfinite
        f["q"][:] = st.q
        f["dq"][:] = st.dq
        f["pos"][:] = pos
        f["quat"][:] = quat
        if self.model is not None:
            if not jacobian_ready:
                self._jcm.ravel()[:] = self.model.zero_jacobian(st)
            self._dq[:] = st.dq
            np.matmul(self._jcm.T, self._dq, out=self._twist)
            f["twist"][:] = self._twist
        # libfranka: "forces applied by the robot to the environment are positive". The topic
        # contract (and the twin) report what the world applies to the robot: negate.
        f["wrench"][:] = st.O_F_ext_hat_K
        np.negative(f["wrench"], out=f["wrench"])
        if tau is not None:
            f["tau"][:] = tau
        f["target_pos"][:] = self._tpos
        f["target_quat"][:] = self._tquat
        f["target_stamp"][0] = self._target_stamp
        self.state.end_write()

    # ------------------------------------------------------------------ targets
    def _take_target(self, ee_pos, ee_quat, now: float) -> None:
        """Newest target from the node (if any), else the watchdog's hold."""
        seq = self.target._seq
        v = int(seq[0])
        if v != self._target_version and v % 2 == 0:
            fields = self.target.fields
            px, py, pz = fields["pos"].tolist()
            quat = fields["quat"].tolist()
            stamp = float(fields["stamp"][0])
            if int(seq[0]) == v:  # consistent copy
                self._target_version = v
                if now - stamp <= self.settings.watchdog_s:
                    lo, hi = self.settings.box_lo, self.settings.box_hi
                    pos = (min(max(px, lo[0]), hi[0]), min(max(py, lo[1]), hi[1]), min(max(pz, lo[2]), hi[2]))
                    try:
                        self.law.set_target(pos, quat)
                        self._tpos, self._tquat = pos, quat
                        self._target_stamp = stamp
                        self._holding = False
                        self._mode = IMPEDANCE
                    except ValueError:  # non-finite / zero quaternion: keep the old target
                        self._rejected += 1
        if not self._holding and now - self._target_stamp > self.settings.watchdog_s:
            self.law.set_target(ee_pos, ee_quat)  # watchdog: hold where the arm is
            self._tpos, self._tquat = ee_pos, ee_quat
            self._holding = True
            self._mode = HOLDING

    # ------------------------------------------------------------------ motions
    def _finish(self, active, command) -> None:
        command.motion_finished = True
        active.writeOnce(command)

    def _impedance_motion(self, pending) -> tuple | None:
        pf = self.pf
        active = self.robot.start_torque_control()
        st, _ = active.readOnce()
        pos, quat = pose_from_o_t_ee(st.O_T_EE)
        self.law.reset(pos, quat)  # target := current pose; the rate limit ramps from zero
        self._tpos, self._tquat = pos, quat
        self._holding = True
        self._mode = HOLDING
        self._target_version = int(self.target._seq[0])  # targets from before this motion are stale
        torques = pf.Torques([0.0] * 7)
        active.writeOnce(torques)
        self._publish(st, 0.0, 0.0, None)
        if pending is not None:  # the request that led here (reset, recover) is done now
            self.send("reply", pending[0], True, pending[1])
            self._open_request = None
        law, model, jcm = self.law, self.model, self._jcm
        periods, computes, ring = self.periods, self.computes, self.settings.stats_size
        publish_every = max(1, int(self.settings.publish_every))
        last = time.perf_counter()
        gc.disable()  # no collector pauses in the tick; the tick makes no reference cycles
        try:
            while True:
                st, duration = active.readOnce()
                t0 = time.perf_counter()
                now = time.monotonic()
                lost = duration.to_sec() * 1000.0 - 1.0
                if lost > 0.5:
                    self._missed += int(lost + 0.5)
                pos, quat = pose_from_o_t_ee(st.O_T_EE)
                self._take_target(pos, quat, now)
                jcm.ravel()[:] = model.zero_jacobian(st)
                try:
                    tau = law.compute(st.q, st.dq, pos, quat, jcm.T, model.coriolis(st))
                    torques.tau_J = tau.tolist()
                except ValueError:  # non-finite state: zero torque (the robot still holds gravity)
                    self._nonfinite += 1
                    tau = None
                    torques.tau_J = [0.0] * 7
                active.writeOnce(torques)
                t1 = time.perf_counter()
                i = self._ring_i % ring
                self._ring_i += 1
                periods[i] = t0 - last
                computes[i] = t1 - t0
                last = t0
                self._ticks += 1
                if self._ticks % publish_every == 0:
                    self._publish(st, periods[i], computes[i], tau, jacobian_ready=True)
                if self._ticks % 10 == 0:
                    action = self._poll(True)
                    if action is not None:
                        self._finish(active, torques)
                        return action
        finally:
            gc.enable()

    def _reset_motion(self, req_id) -> tuple | None:
        """A smooth joint-space move to q_home (quintic, zero end velocity and acceleration)
        on the robot's own joint impedance controller, then back to impedance."""
        pf = self.pf
        self._mode = RESETTING
        active = self.robot.start_joint_position_control(pf.ControllerMode.JointImpedance)
        st, _ = active.readOnce()
        q0 = np.array(st.q)
        qh = np.array(self.settings.q_home)
        dist = float(np.max(np.abs(qh - q0)))
        duration = max(1.0, 1.875 * dist / self.settings.reset_joint_speed)  # quintic peak = 1.875 d/T
        command = pf.JointPositions(q0.tolist())
        collision_request = None
        t = 0.0
        while True:
            st, dt = active.readOnce()
            t += dt.to_sec()
            s = min(t / duration, 1.0)
            a = s * s * s * (10.0 - 15.0 * s + 6.0 * s * s)
            command.q = (q0 + a * (qh - q0)).tolist()
            self._ticks += 1
            if s >= 1.0:
                self._finish(active, command)
                break
            active.writeOnce(command)
            self._publish(st, dt.to_sec(), 0.0)
            if self._ticks % 10 == 0:
                action = self._poll(True)
                if action is not None and action[0] == "shutdown":
                    self._finish(active, command)
                    return action
                if action is not None:  # a reset is not interrupted halfway
                    if action[0] == "collision":
                        collision_request = action[1]
                    else:
                        self.send("reply", action[1], False, f"busy resetting; {action[0]} refused")
        if collision_request is not None:  # thresholds asked for during the move: set them now
            try:
                self._apply_collision()
                self.send("reply", collision_request, True, "settings applied (collision thresholds set)")
            except Exception as err:
                self.send("reply", collision_request, False, f"collision thresholds rejected: {err}")
        err = float(np.max(np.abs(np.array(self.robot.read_once().q) - qh)))
        return ("impedance", (req_id, f"at home (max joint error {err:.4f} rad); back to impedance"))


def loop_main(settings: LoopSettings, conn, state_name: str, target_name: str) -> None:
    """Entry of the loop process (spawned by drivers.franka.FrankaArm)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the node, which stops us in order
    if settings.realtime:
        try:  # libfranka's kEnforce wants an RT kernel; run the loop at RT priority on it
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(80))
        except (PermissionError, OSError, AttributeError):
            pass
    state = SharedStruct(STATE_SPEC, state_name)
    target = SharedStruct(TARGET_SPEC, target_name)
    try:
        ArmLoop(settings, conn, state, target).run()
    finally:
        state.close()
        target.close()
        conn.close()
