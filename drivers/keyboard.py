"""Keyboard fallback for teleop on machines without a SpaceMouse. No ROS here.

Keys (defaults, all configurable):
  space       takeover on/off (sticky)       s  success     f  failure     r  reset
  c           close gripper                  x  open gripper
  i / k       +x / -x      j / l  +y / -y    u / o  +z / -z     q / e  +yaw / -yaw
Motion keys also take over while they act. Two inputs:
- a terminal (stdin, or a tty/pty path) in raw mode: only presses arrive, so a motion key acts
  for `hold_s` after each press (the terminal's auto-repeat keeps it going while held);
- a Linux input device (/dev/input/eventN, evdev): presses and releases arrive, so a motion
  key acts exactly while it is held.
Event keys (success, failure, reset, gripper) stay active for `event_hold_s` so a listener
sampling at the control rate sees them; listeners act on the rising edge.
"""
from __future__ import annotations

import os
import select
import struct
import termios
import threading
import tty
from dataclasses import dataclass
from typing import Callable

import numpy as np

from robot_rl.drivers.teleop import joy_buttons

CTRL_C = "\x03"

# Linux input-event-codes.h: KEY_* codes of the keys we may bind.
EVDEV_KEYS = {
    16: "q", 17: "w", 18: "e", 19: "r", 20: "t", 21: "y", 22: "u", 23: "i", 24: "o", 25: "p",
    30: "a", 31: "s", 32: "d", 33: "f", 34: "g", 35: "h", 36: "j", 37: "k", 38: "l",
    44: "z", 45: "x", 46: "c", 47: "v", 48: "b", 49: "n", 50: "m", 57: " ", 28: "\r",
}
EV_KEY = 1
EVDEV_EVENT = struct.Struct("llHHi")  # struct input_event: timeval, type, code, value


@dataclass
class KeyBindings:
    takeover: str = " "
    success: str = "s"
    failure: str = "f"
    reset: str = "r"
    gripper_close: str = "c"
    gripper_open: str = "x"
    # (positive key, negative key) per output axis vx, vy, vz, wx, wy, wz; "" = unbound
    axes: tuple[str, ...] = ("ik", "jl", "uo", "", "", "qe")

    def __post_init__(self) -> None:
        singles = [self.takeover, self.success, self.failure, self.reset, self.gripper_close, self.gripper_open]
        motion = [k for pair in self.axes for k in pair]
        if len(self.axes) != 6 or any(len(p) not in (0, 2) for p in self.axes):
            raise ValueError(f"axes needs 6 entries of two keys (or ''), got {self.axes}")
        keys = singles + motion
        if len(set(keys)) != len(keys) or any(len(k) != 1 for k in singles):
            raise ValueError(f"key bindings must be single, distinct characters: {keys}")


class KeyboardTeleop:
    """Turns key presses/releases into a command and Joy buttons. Thread-safe; times in seconds."""

    def __init__(self, bindings: KeyBindings | None = None, speed: float = 0.5,
                 hold_s: float = 0.2, event_hold_s: float = 0.3):
        self.bindings = bindings or KeyBindings()
        self.speed, self.hold_s, self.event_hold_s = speed, hold_s, event_hold_s
        b = self.bindings
        self._events = {b.success: "success", b.failure: "failure", b.reset: "reset",
                        b.gripper_close: "gripper_close", b.gripper_open: "gripper_open"}
        self._motion = {}
        for axis, pair in enumerate(b.axes):
            if pair:
                self._motion[pair[0]] = (axis, 1.0)
                self._motion[pair[1]] = (axis, -1.0)
        self._lock = threading.Lock()
        self.takeover = False
        self._event_until: dict[str, float] = {}
        self._motion_until: dict[str, float] = {}  # key -> expiry (inf while held, evdev)

    def press(self, key: str, t: float, held: bool = False) -> bool:
        """A key went down at time t; held=True when a release will follow (evdev). Returns known?"""
        with self._lock:
            if key == self.bindings.takeover:
                self.takeover = not self.takeover
            elif key in self._events:
                self._event_until[self._events[key]] = t + self.event_hold_s
                if key == self.bindings.gripper_close:  # a new gripper command cancels the other
                    self._event_until.pop("gripper_open", None)
                elif key == self.bindings.gripper_open:
                    self._event_until.pop("gripper_close", None)
            elif key in self._motion:
                self._motion_until[key] = float("inf") if held else t + self.hold_s
            else:
                return False
            return True

    def release(self, key: str, t: float) -> None:
        with self._lock:
            if key in self._motion_until:
                del self._motion_until[key]

    def snapshot(self, t: float) -> tuple[np.ndarray, list[int]]:
        """(6,) command and the Joy buttons (drivers.teleop layout) at time t."""
        cmd = np.zeros(6)
        with self._lock:
            for key, until in list(self._motion_until.items()):
                if until <= t:
                    del self._motion_until[key]
                    continue
                axis, sign = self._motion[key]
                cmd[axis] += sign * self.speed
            active = {name for name, until in self._event_until.items() if until > t}
            if self.takeover or np.any(cmd != 0) or active & {"gripper_close", "gripper_open"}:
                active.add("takeover")
        return cmd, joy_buttons(active)


class TerminalKeys:
    """Reads characters from a terminal (stdin's fd, or a tty/pty path) in raw mode; restores it."""

    def __init__(self, path: str = ""):
        self._own = bool(path)
        self.fd = os.open(path, os.O_RDONLY | os.O_NOCTTY) if path else 0
        if not os.isatty(self.fd):
            if self._own:
                os.close(self.fd)
            raise OSError(f"{path or 'stdin'} is not a terminal; give a tty path or an input device")
        self._saved = termios.tcgetattr(self.fd)
        tty.setraw(self.fd)

    def read(self) -> list[tuple[str, bool]]:
        """Blocks for input; returns [(char, is_press)], or [] at end of input."""
        data = os.read(self.fd, 64)
        return [(ch, True) for ch in data.decode(errors="ignore")]

    def close(self) -> None:
        try:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
        except termios.error:
            pass
        if self._own:
            os.close(self.fd)


def decode_evdev(data: bytes) -> list[tuple[str, bool | None]]:
    """Decodes input_event records into [(char, pressed)], pressed None for auto-repeat."""
    out = []
    for i in range(0, len(data) - EVDEV_EVENT.size + 1, EVDEV_EVENT.size):
        _, _, etype, code, value = EVDEV_EVENT.unpack_from(data, i)
        if etype == EV_KEY and code in EVDEV_KEYS:
            out.append((EVDEV_KEYS[code], {1: True, 0: False}.get(value)))
    return out


class EvdevKeys:
    """Reads key events from a Linux input device (/dev/input/eventN; needs the 'input' group)."""

    def __init__(self, path: str):
        self.fd = os.open(path, os.O_RDONLY)
        self._pending = b""

    def read(self) -> list[tuple[str, bool | None]]:
        data = os.read(self.fd, EVDEV_EVENT.size * 32)
        if not data:
            return []
        data, cut = self._pending + data, len(self._pending + data) // EVDEV_EVENT.size * EVDEV_EVENT.size
        self._pending = data[cut:]
        return decode_evdev(data[:cut])

    def close(self) -> None:
        os.close(self.fd)


class KeyReader:
    """Reads keys on a thread into a KeyboardTeleop; on_key(t) after each known key, on_end() at EOF/Ctrl-C."""

    def __init__(self, keys: TerminalKeys | EvdevKeys, teleop: KeyboardTeleop, clock: Callable[[], float],
                 on_key: Callable[[float], None], on_end: Callable[[str], None]):
        self.keys, self.teleop, self.clock = keys, teleop, clock
        self.on_key, self.on_end = on_key, on_end
        self.held = isinstance(keys, EvdevKeys)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keyboard-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.keys.fd], [], [], 0.1)  # wakes to see stop()
                if not ready:
                    continue
                events = self.keys.read()
            except OSError as e:
                if not self._stop.is_set():
                    self.on_end(f"input lost: {e}")
                return
            if not events:
                if not self._stop.is_set():
                    self.on_end("end of input")
                return
            t = self.clock()
            for ch, pressed in events:
                if ch == CTRL_C:
                    self.on_end("Ctrl-C")
                    return
                if pressed is False:
                    self.teleop.release(ch, t)
                elif pressed and self.teleop.press(ch, t, held=self.held):
                    self.on_key(t)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.keys.close()
