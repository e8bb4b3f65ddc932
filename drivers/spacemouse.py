"""3Dconnexion SpaceMouse over raw HID (hidapi): report decoder, axis mapping, device reader.

No ROS here; `spacemouse_node.py` publishes what this module decodes. The decoder is ours
(no pyspacemouse) so tests feed recorded report bytes through exactly the code the node runs.

HID report formats (the first byte is the report id, values are int16 little-endian):
- newer devices (SpaceMouse Wireless, Compact, Pro Wireless, Enterprise, Universal Receiver):
  id 1 + 12 bytes = x, y, z, rx, ry, rz in one report;
- older devices (SpaceNavigator, SpaceExplorer, SpaceMouse Pro): id 1 + 6 bytes = x, y, z and
  id 2 + 6 bytes = rx, ry, rz in separate reports;
- both: id 3 = button bitmask, little-endian, bit i = button i (0 = left, 1 = right).
Raw HID axes are x right, y toward the user, z down. The decoded state uses the pyspacemouse
convention (x right, y forward, z up; roll = -ry, pitch = -rx, yaw = rz), so SERL's mapping
[-y, x, z, -roll, -pitch, -yaw] means the same thing here as in SERL.
"""
from __future__ import annotations

import json
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol, Sequence

import numpy as np

from robot_rl.drivers.errors import DeviceLostError, DeviceNotFoundError

VENDOR_IDS = (0x046D, 0x256F)  # Logitech-made 3Dconnexion devices, then 3Dconnexion's own id
AXES = ("x", "y", "z", "roll", "pitch", "yaw")
FULL_SCALE = 350.0  # counts at full deflection (pyspacemouse uses the same figure)
SERL_AXIS_MAP = ("-y", "x", "z", "-roll", "-pitch", "-yaw")


@dataclass
class SpaceMouseState:
    """Raw HID counts (x right, y toward user, z down; rx, ry, rz) and the button bitmask."""

    raw: np.ndarray = field(default_factory=lambda: np.zeros(6, dtype=np.int64))
    buttons: int = 0

    def axes(self) -> np.ndarray:
        """x, y, z, roll, pitch, yaw in [-1, 1], pyspacemouse convention (see module doc)."""
        x, y, z, rx, ry, rz = self.raw.astype(np.float64) / FULL_SCALE
        return np.clip(np.array([x, -y, -z, -ry, -rx, rz]), -1.0, 1.0)

    def button(self, i: int) -> bool:
        return bool(self.buttons >> i & 1)


class HidDecoder:
    """Feeds raw HID reports into a SpaceMouseState. Returns what a report changed."""

    def __init__(self) -> None:
        self.state = SpaceMouseState()

    def feed(self, report: bytes | Sequence[int]) -> str:
        """Decodes one report; returns 'motion', 'buttons' or 'ignored' (unknown report)."""
        report = bytes(report)
        if len(report) < 2:
            return "ignored"
        rid, body = report[0], report[1:]
        if rid == 1 and len(body) >= 12:
            self.state.raw[:] = struct.unpack_from("<6h", body)
            return "motion"
        if rid == 1 and len(body) >= 6:
            self.state.raw[:3] = struct.unpack_from("<3h", body)
            return "motion"
        if rid == 2 and len(body) >= 6:
            self.state.raw[3:] = struct.unpack_from("<3h", body)
            return "motion"
        if rid == 3:
            self.state.buttons = int.from_bytes(body, "little")
            return "buttons"
        return "ignored"  # LED, battery (id 0x17) and vendor reports carry no motion


@dataclass
class TeleopMapping:
    """How device axes become a command in the robot base frame."""

    axis_map: tuple[str, ...] = SERL_AXIS_MAP  # output i = sign * state[name]
    deadband: float = 0.05  # fraction of full scale; below it an axis reads 0
    scale_linear: float = 1.0  # output units per unit deflection (normalised action by default)
    scale_angular: float = 1.0

    def __post_init__(self) -> None:
        self.axis_map = tuple(self.axis_map)
        if len(self.axis_map) != 6:
            raise ValueError(f"axis_map needs 6 entries, got {list(self.axis_map)}")
        self._index, self._sign = [], []
        for entry in self.axis_map:
            sign = -1.0 if entry.startswith("-") else 1.0
            name = entry.lstrip("+-")
            if name not in AXES:
                raise ValueError(f"axis_map entry {entry!r} is not one of ±{AXES}")
            self._index.append(AXES.index(name))
            self._sign.append(sign)
        if not 0.0 <= self.deadband < 1.0:
            raise ValueError(f"deadband must be in [0, 1), got {self.deadband}")
        for v in (self.scale_linear, self.scale_angular):
            if not np.isfinite(v):
                raise ValueError("scales must be finite")

    def command(self, axes: np.ndarray) -> np.ndarray:
        """(6,) device axes in [-1, 1] -> (6,) [vx, vy, vz, wx, wy, wz] after remap, deadband, scale."""
        v = np.asarray(axes, dtype=np.float64)[self._index] * self._sign
        mag = np.abs(v)
        # Rescale past the deadband so the output is continuous at its edge.
        v = np.where(mag > self.deadband, np.sign(v) * (mag - self.deadband) / (1.0 - self.deadband), 0.0)
        v[:3] *= self.scale_linear
        v[3:] *= self.scale_angular
        return v


class ReportSource(Protocol):
    def read(self, timeout_s: float) -> bytes | None:
        """One raw report (report id first), or None when none came within timeout_s."""

    def close(self) -> None: ...


def find_devices(hid_module=None) -> list[dict]:
    """Attached 3Dconnexion devices as hidapi enumerate() dicts (path, product_id, serial...)."""
    import hid

    hid_module = hid_module or hid
    found = [d for d in hid_module.enumerate() if d["vendor_id"] in VENDOR_IDS]
    # A device exposes several interfaces; the multi-axis one has usage page 1 (generic desktop).
    multiaxis = [d for d in found if d.get("usage_page", 1) in (0, 1)]
    return sorted(multiaxis or found, key=lambda d: d["path"])


class HidReportSource:
    """A 3Dconnexion device opened with hidapi, by hidraw path, serial number, or the n-th found."""

    def __init__(self, path: str = "", serial: str = "", index: int = 0):
        import hid

        devices = find_devices()
        if path:
            chosen = [d for d in devices if d["path"].decode() == path] or [{"path": path.encode()}]
        elif serial:
            chosen = [d for d in devices if d.get("serial_number") == serial]
        else:
            chosen = devices[index : index + 1]
        if not chosen:
            seen = ", ".join(f"{d['path'].decode()} ({d.get('product_string')})" for d in devices) or "none"
            raise DeviceNotFoundError(
                f"no 3Dconnexion SpaceMouse found (wanted path={path!r} serial={serial!r} index={index}; "
                f"visible: {seen}). Is it plugged in, and can this user read /dev/hidraw*? "
                "See docs/hardware.md for the udev rule."
            )
        self.info = chosen[0]
        self._dev = hid.device()
        try:
            self._dev.open_path(self.info["path"])
        except OSError as e:
            raise DeviceNotFoundError(f"cannot open {self.info['path'].decode()}: {e} (permissions?)") from e

    def read(self, timeout_s: float) -> bytes | None:
        try:
            data = self._dev.read(64, int(timeout_s * 1000))
        except (OSError, ValueError) as e:
            raise DeviceLostError(f"SpaceMouse read failed: {e}") from e
        return bytes(data) if data else None

    def close(self) -> None:
        self._dev.close()


class ReplayReportSource:
    """Replays recorded reports [(t_seconds, bytes), ...] at their recorded pace.

    The peer for tests and demos without a device; `record()` below writes the same format
    from a real device, so a real recording replays through the node unchanged.
    """

    def __init__(self, reports: Iterable[tuple[float, bytes]], loop: bool = False):
        self.reports = [(float(t), bytes(r)) for t, r in reports]
        self.loop = loop
        self._i = 0
        self._t0: float | None = None
        self._closed = threading.Event()

    @classmethod
    def from_file(cls, path: str, loop: bool = False) -> "ReplayReportSource":
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        return cls([(r["t"], bytes.fromhex(r["report"])) for r in rows], loop)

    def read(self, timeout_s: float) -> bytes | None:
        if self._closed.is_set():
            raise DeviceLostError("replay source closed")
        if self._i >= len(self.reports):
            if not self.loop or not self.reports:
                self._closed.wait(timeout_s)
                return None
            self._i, self._t0 = 0, None
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now - self.reports[0][0]
        t, report = self.reports[self._i]
        wait = self._t0 + t - now
        if wait > timeout_s:
            self._closed.wait(timeout_s)
            return None
        if wait > 0:
            self._closed.wait(wait)
        self._i += 1
        return report

    def close(self) -> None:
        self._closed.set()


def record(source: ReportSource, path: str, seconds: float) -> int:
    """Writes a device's raw reports as JSON lines {"t", "report" (hex)}; returns how many."""
    n, t0 = 0, time.monotonic()
    with open(path, "w") as f:
        while (t := time.monotonic() - t0) < seconds:
            report = source.read(0.05)
            if report:
                f.write(json.dumps({"t": round(t, 6), "report": report.hex()}) + "\n")
                n += 1
    return n


class SpaceMouseReader:
    """Reads a ReportSource on a thread, decodes, and calls on_update(state, kind, t_read).

    on_update runs on the reader thread right after each report is decoded, so a motion is
    forwarded within one report period. stop() ends the thread and closes the source.
    """

    def __init__(
        self,
        source: ReportSource,
        on_update: Callable[[SpaceMouseState, str, float], None],
        on_error: Callable[[Exception], None] | None = None,
    ):
        self.source = source
        self.decoder = HidDecoder()
        self.on_update = on_update
        self.on_error = on_error
        self.last_report_time = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spacemouse-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                report = self.source.read(0.1)
            except Exception as e:  # a lost device ends the reader; the node reports it
                if not self._stop.is_set() and self.on_error:
                    self.on_error(e)
                return
            if report is None:
                continue
            t = time.monotonic()
            kind = self.decoder.feed(report)
            if kind != "ignored":
                self.last_report_time = t
                self.on_update(self.decoder.state, kind, t)

    def stop(self) -> None:
        self._stop.set()
        self.source.close()
        self._thread.join(timeout=2.0)
