"""Franka hand through pylibfranka.Gripper, in a worker process of its own.

pylibfranka's Gripper.move / grasp block until the fingers stop (up to a second) and hold the
GIL meanwhile (measured: a 1 ms Python thread ran twice during a 0.7 s move), so they must not
run in the ROS node's process, nor in the 1 kHz loop's. The worker reads the hand's state
between commands into shared memory; during a move the state is the last one read.

Command (the topic contract's Float64, 0 open .. 1 closed):
  c >= close_threshold -> grasp(width 0, speed, force): closes until the object (or fully);
  otherwise            -> move to width (1 - c) * max_width  (0 = fully open).
A command equal to the last one executed is skipped (the env repeats it every step).
"""
from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import dataclass

from robot_rl.drivers.errors import DeviceNotFoundError
from robot_rl.drivers.franka_ipc import SharedStruct, spawn_process, stop_process

HAND_SPEC = {"t": 1, "width": 1, "max_width": 1, "grasped": 1, "busy": 1, "commands": 1, "ok": 1}


@dataclass
class HandSettings:
    robot_ip: str = "172.16.0.2"
    speed: float = 0.1            # m/s (the hand's limit is 0.2)
    force: float = 40.0           # N grasp force (70 N continuous, 140 N peak)
    close_threshold: float = 0.5
    epsilon_inner: float = 0.08   # grasp succeeds at any width: the object size is unknown
    epsilon_outer: float = 0.08
    poll_s: float = 0.02          # state reads between commands (50 Hz)


def hand_main(settings: HandSettings, conn, shm_name: str) -> None:
    import pylibfranka

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    shm = SharedStruct(HAND_SPEC, shm_name)
    try:
        try:
            gripper = pylibfranka.Gripper(settings.robot_ip)
            st = gripper.read_once()
        except Exception as err:
            conn.send(("fault", f"{type(err).__name__}: {err}"))
            return
        max_width = st.max_width if st.max_width > 0 else 0.08
        conn.send(("ready", max_width))
        commands, ok = 0, True
        while True:
            if conn.poll(settings.poll_s):
                msg = None
                while conn.poll():  # only the newest command matters
                    msg = conn.recv()
                    if msg[0] == "shutdown":
                        return
                closed = float(msg[1])
                shm.write(busy=1.0)
                try:
                    if closed >= settings.close_threshold:
                        ok = gripper.grasp(0.0, settings.speed, settings.force,
                                           settings.epsilon_inner, settings.epsilon_outer)
                    else:
                        ok = gripper.move((1.0 - closed) * max_width, settings.speed)
                except Exception as err:  # CommandException / NetworkException: report, carry on
                    conn.send(("fault", f"{type(err).__name__}: {err}"))
                    ok = False
                commands += 1
                conn.send(("done", closed, bool(ok)))
            try:
                st = gripper.read_once()
            except Exception as err:
                conn.send(("fault", f"{type(err).__name__}: {err}"))
                time.sleep(0.5)
                continue
            # One write: a reader that sees the command counted also sees the state after it.
            shm.write(t=time.monotonic(), width=st.width, max_width=st.max_width, grasped=float(st.is_grasped),
                      busy=0.0, commands=commands, ok=float(ok))
    finally:
        shm.close()
        conn.close()


class FrankaHand:
    """Node-side handle of the hand worker: command(closed 0..1), state(), events()."""

    def __init__(self, settings: HandSettings, ready_timeout: float = 15.0):
        import multiprocessing as mp

        self.settings = settings
        self._shm = SharedStruct(HAND_SPEC, create=True)
        self._conn, child = mp.get_context("spawn").Pipe()
        self._lock = threading.Lock()
        self._proc = spawn_process(hand_main, (settings, child, self._shm.name), name="franka-hand")
        child.close()
        self._last: float | None = None
        self.events: list[tuple] = []
        if not self._conn.poll(ready_timeout):
            self.close()
            raise DeviceNotFoundError(f"Franka hand at {settings.robot_ip} did not answer in {ready_timeout} s")
        msg = self._conn.recv()
        if msg[0] != "ready":
            self.close()
            raise DeviceNotFoundError(f"Franka hand at {settings.robot_ip}: {msg[1]}")
        self.max_width = float(msg[1])

    def command(self, closed: float) -> bool:
        """Queues a command (0 open .. 1 closed); False when it repeats the last one (skipped)."""
        c = float(closed)
        if not math.isfinite(c):
            raise ValueError(f"gripper command is not finite: {closed}")
        c = min(max(c, 0.0), 1.0)
        grasp = c >= self.settings.close_threshold
        if self._last is not None:
            last_grasp = self._last >= self.settings.close_threshold
            if grasp == last_grasp and (grasp or abs(c - self._last) * self.max_width < 0.002):
                return False
        with self._lock:
            try:
                self._conn.send(("command", c))
            except (BrokenPipeError, OSError) as err:
                raise RuntimeError(f"the hand process is gone: {err}") from err
        self._last = c
        return True

    def state(self) -> dict[str, float]:
        d = self._shm.read()
        return {k: float(v[0]) for k, v in d.items() if k != "version"}

    def take_events(self) -> list[tuple]:
        out = []
        with self._lock:
            try:
                while self._conn.poll():
                    out.append(self._conn.recv())
            except (EOFError, OSError):
                out.append(("fault", "the hand process has exited"))
        if any(e[0] == "done" and not e[2] for e in out):
            self._last = None  # a failed command is not "done": the next one retries it
        return out

    def close(self) -> None:
        if self._proc is not None:
            try:
                self._conn.send(("shutdown",))
            except (BrokenPipeError, OSError):
                pass
            stop_process(self._proc, grace=3.0)
            self._proc = None
        self._conn.close()
        self._shm.close()
