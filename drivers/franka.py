"""Franka arm driver, node side: starts the 1 kHz loop process and talks to it.

`FrankaArm` owns the loop process (drivers/franka_loop.py), the two shared-memory structs and
the request pipe. It never calls pylibfranka itself: libfranka's Python calls hold the GIL
while they block, so they live in the loop process, away from the ROS node's threads.

    arm = FrankaArm(LoopSettings(robot_ip="172.16.0.2"))
    arm.wait_ready()
    arm.set_target(pos, quat)            # equilibrium pose; validated, clipped to the box
    s = arm.state()                      # FrankaState: q, dq, pos, quat, twist, wrench, mode...
    arm.reset(); arm.recover()           # blocking requests, (ok, message)
    for event in arm.take_events(): ...  # faults with libfranka's error flags
    arm.close()

Wrench convention: `FrankaState.wrench` is the external wrench the WORLD applies to the robot
at the TCP, base frame (pressing down on a table reads +z), the same as the twin. libfranka's
O_F_ext_hat_K is documented the other way round ("forces applied by the robot to the
environment are positive"), so the loop negates it.
"""
from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from robot_rl.controllers.limits import validate_target
from robot_rl.drivers.errors import DeviceNotFoundError
from robot_rl.drivers.franka_ipc import SharedStruct, spawn_process, stop_process
from robot_rl.drivers.franka_loop import (MODE_NAMES, STATE_SPEC, TARGET_SPEC, LoopSettings, loop_main)

__all__ = ["FrankaArm", "FrankaState", "LoopSettings", "clip_to_box"]


@dataclass
class FrankaState:
    t: float                 # time.monotonic() of the sample
    mode: str                # starting / impedance / holding / resetting / fault / stopped / recovering
    q: np.ndarray
    dq: np.ndarray
    pos: np.ndarray          # TCP position, base frame (m)
    quat: np.ndarray         # TCP orientation (x, y, z, w)
    twist: np.ndarray        # (6,) linear, angular, base frame
    wrench: np.ndarray       # (6,) force, torque the world applies to the robot at the TCP
    tau: np.ndarray          # commanded joint torque (gravity excluded)
    target_pos: np.ndarray   # equilibrium in force (after clip / watchdog hold)
    target_quat: np.ndarray
    target_stamp: float
    ticks: int
    missed: int
    rejected: int
    period: float
    compute: float
    version: int

    @classmethod
    def from_shared(cls, d: dict) -> "FrankaState":
        mode = int(d["mode"][0])
        return cls(t=float(d["t"][0]), mode=MODE_NAMES[mode] if 0 <= mode < len(MODE_NAMES) else "unknown",
                   q=d["q"], dq=d["dq"], pos=d["pos"], quat=d["quat"], twist=d["twist"], wrench=d["wrench"],
                   tau=d["tau"], target_pos=d["target_pos"], target_quat=d["target_quat"],
                   target_stamp=float(d["target_stamp"][0]), ticks=int(d["ticks"][0]),
                   missed=int(d["missed"][0]), rejected=int(d["rejected"][0]), period=float(d["period"][0]),
                   compute=float(d["compute"][0]), version=int(d["version"]))


def clip_to_box(pos: np.ndarray, lo, hi) -> tuple[np.ndarray, bool]:
    clipped = np.clip(pos, lo, hi)
    return clipped, bool(np.any(clipped != pos))


class FrankaArm:
    """The loop process and its channels. Thread-safe: the node's threads may call any method."""

    def __init__(self, settings: LoopSettings):
        settings.validate()
        self.settings = settings
        self._state = SharedStruct(STATE_SPEC, create=True)
        self._target = SharedStruct(TARGET_SPEC, create=True)
        import multiprocessing as mp

        self._conn, child = mp.get_context("spawn").Pipe()
        self._send_lock = threading.Lock()
        self._recv_lock = threading.Lock()
        self._cond = threading.Condition()
        self._replies: dict[int, tuple] = {}
        self._events: deque = deque(maxlen=1000)
        self._ids = itertools.count(1)
        self._proc = spawn_process(loop_main, (settings, child, self._state.name, self._target.name),
                                   name="franka-loop")
        child.close()
        self._closed = False

    # ------------------------------------------------------------------ state
    def state(self) -> FrankaState:
        return FrankaState.from_shared(self._state.read())

    def wait_ready(self, timeout: float = 20.0) -> FrankaState:
        """Waits until the loop runs (impedance/holding); raises DeviceNotFoundError on a fault."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump(0.02)
            s = self.state()
            if s.mode in ("impedance", "holding") and s.ticks > 0:
                return s
            faults = [e for e in self._events if e[0] == "fault"]
            if faults:
                raise DeviceNotFoundError(f"Franka at {self.settings.robot_ip}: {faults[-1][1]['message']}")
            if not self._proc.is_alive():
                raise DeviceNotFoundError(f"Franka loop process exited (code {self._proc.exitcode})")
        raise DeviceNotFoundError(f"Franka at {self.settings.robot_ip} did not start control within {timeout} s")

    # ------------------------------------------------------------------ targets
    def set_target(self, pos, quat, stamp: float | None = None) -> tuple[np.ndarray, bool]:
        """Sends an equilibrium pose. Raises ValueError (the arm keeps its target) on a bad one;
        returns the position actually sent (clipped to the safety box) and whether it was clipped."""
        p, q = validate_target(pos, quat)
        p, clipped = clip_to_box(p, self.settings.box_lo, self.settings.box_hi)
        self._target.write(pos=p, quat=q, stamp=time.monotonic() if stamp is None else stamp)
        return p, clipped

    # ------------------------------------------------------------------ requests
    def pump(self, timeout: float = 0.0) -> None:
        """Moves the loop's messages into replies / events (call it regularly)."""
        with self._recv_lock:
            try:
                ready = self._conn.poll(timeout)
                while ready:
                    msg = self._conn.recv()
                    if msg[0] in ("reply", "stats"):
                        with self._cond:
                            self._replies[msg[1]] = msg
                            self._cond.notify_all()
                    else:
                        self._events.append(msg)
                    ready = self._conn.poll()
            except (EOFError, OSError):
                if not self._closed:
                    self._events.append(("fault", {"kind": "process", "errors": [],
                                                   "message": "the loop process has exited"}))
                    self._closed = True

    def take_events(self) -> list[tuple]:
        self.pump()
        out = []
        while self._events:
            out.append(self._events.popleft())
        return out

    def request(self, kind: str, *args, timeout: float = 10.0) -> tuple:
        req_id = next(self._ids)
        with self._send_lock:
            self._conn.send((kind, req_id, *args))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                if req_id in self._replies:
                    return self._replies.pop(req_id)
            self.pump(0.01)
        raise TimeoutError(f"the loop did not answer {kind!r} within {timeout} s")

    def reset(self, timeout: float = 60.0) -> tuple[bool, str]:
        _, _, ok, message = self.request("reset", timeout=timeout)
        return ok, message

    def recover(self, timeout: float = 30.0) -> tuple[bool, str]:
        _, _, ok, message = self.request("recover", timeout=timeout)
        return ok, message

    def update_settings(self, timeout: float = 10.0, **changes) -> tuple[bool, str]:
        """New settings (impedance gains/clips, watchdog, box, collision thresholds) take effect live."""
        new = replace(self.settings, **changes)
        new.validate()
        _, _, ok, message = self.request("settings", new, timeout=timeout)
        if ok:
            self.settings = new
        return ok, message

    def stats(self, timeout: float = 5.0) -> dict:
        return self.request("stats", timeout=timeout)[2]

    def close(self) -> None:
        if self._proc is not None:
            try:
                with self._send_lock:
                    self._conn.send(("shutdown",))
            except (BrokenPipeError, OSError):
                pass
            stop_process(self._proc, grace=3.0)
            self._proc = None
        self._closed = True
        self._conn.close()
        self._state.close()
        self._target.close()
