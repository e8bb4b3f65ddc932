"""Intel RealSense color streams (pyrealsense2): open by serial, keep the latest frame, crop,
resize. No ROS here; `realsense_node.py` publishes.

One `RealSenseCamera` is one physical camera's color sensor, opened at the sensor level (no
pipeline) so it works the same for a USB camera and a `pyrealsense2.software_device`. The
latest frame is kept with its device timestamp and frame number; `age()` tells the freeze
watchdog how long ago one arrived. `CropResize` turns one frame into one policy image
(crop in source pixels, then resize, default 128x128); several of them can share a camera.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
from PIL import Image

from robot_rl.drivers.errors import DeviceNotFoundError


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # (H, W, 3) uint8 rgb
    device_ms: float  # the device timestamp (ms), in `domain`
    domain: str  # 'hardware_clock', 'system_time' or 'global_time'
    frame_number: int
    host_time: float  # time.time() when the frame reached us


@dataclass(frozen=True)
class Intrinsics:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    model: str = "plumb_bob"
    coeffs: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)


def parse_profile(text: str) -> tuple[int, int, int]:
    """realsense-ros 'width,height,fps' (or 'WxHxF') -> ints."""
    parts = text.replace("x", ",").split(",")
    try:
        w, h, fps = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"color profile must be 'width,height,fps', got {text!r}") from None
    if min(w, h, fps) <= 0:
        raise ValueError(f"color profile must be positive, got {text!r}")
    return w, h, fps


def parse_crop(text: str) -> tuple[int, int, int, int] | None:
    """'x,y,width,height' in source pixels, '' for the full frame."""
    if not text.strip():
        return None
    try:
        x, y, w, h = (int(p) for p in text.split(","))
    except ValueError:
        raise ValueError(f"crop must be 'x,y,width,height' or '', got {text!r}") from None
    if x < 0 or y < 0 or w <= 0 or h <= 0:
        raise ValueError(f"crop must be inside the image with a positive size, got {text!r}")
    return x, y, w, h


class CropResize:
    """Crop (source pixels) then resize to (out_h, out_w), with the matching intrinsics."""

    def __init__(self, crop: tuple[int, int, int, int] | None, out_size: tuple[int, int] = (128, 128)):
        self.crop, self.out_h, self.out_w = crop, int(out_size[0]), int(out_size[1])
        if self.out_h <= 0 or self.out_w <= 0:
            raise ValueError(f"output size must be positive, got {out_size}")

    def check(self, width: int, height: int) -> None:
        if self.crop is not None:
            x, y, w, h = self.crop
            if x + w > width or y + h > height:
                raise ValueError(f"crop {self.crop} does not fit a {width}x{height} image")

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if self.crop is not None:
            x, y, w, h = self.crop
            image = image[y:y + h, x:x + w]
        if image.shape[:2] == (self.out_h, self.out_w):
            return np.ascontiguousarray(image)
        # PIL's bilinear filter widens its support when shrinking (antialiased, like INTER_AREA).
        return np.asarray(Image.fromarray(image).resize((self.out_w, self.out_h), Image.BILINEAR))

    def intrinsics(self, k: Intrinsics) -> Intrinsics:
        x, y, w, h = self.crop or (0, 0, k.width, k.height)
        sx, sy = self.out_w / w, self.out_h / h
        # pixel centres: u' + 0.5 = (u + 0.5 - x) * sx
        return Intrinsics(self.out_w, self.out_h, k.fx * sx, k.fy * sy,
                          (k.cx + 0.5 - x) * sx - 0.5, (k.cy + 0.5 - y) * sy - 0.5, k.model, k.coeffs)


def list_devices(rs=None) -> list:
    """Attached RealSense devices (pyrealsense2 context)."""
    if rs is None:
        import pyrealsense2 as rs
    return list(rs.context().query_devices())


def find_device(serial: str, devices: Iterable):
    """The device with this serial number ('' = the first), else DeviceNotFoundError."""
    import pyrealsense2 as rs

    devices = list(devices)
    serials = [d.get_info(rs.camera_info.serial_number) for d in devices]
    for d, s in zip(devices, serials):
        if not serial or s == serial:
            return d
    raise DeviceNotFoundError(
        f"no RealSense camera with serial {serial!r} (visible: {serials or 'none'}). "
        "Check the cable (USB 3), the udev rules, and `rs-enumerate-devices -s` (docs/hardware.md)."
    )


def color_sensor(device):
    import pyrealsense2 as rs

    for sensor in device.query_sensors():
        if any(p.stream_type() == rs.stream.color for p in sensor.get_stream_profiles()):
            return sensor
    raise DeviceNotFoundError("the device has no color stream")


class RealSenseCamera:
    """One camera's rgb8 color stream, opened at sensor level; the latest frame is kept."""

    def __init__(self, serial: str, width: int, height: int, fps: int,
                 auto_exposure: bool = True, exposure: float = 0.0,
                 devices: Callable[[], Iterable] = list_devices,
                 on_frame: Callable[[Frame], None] | None = None,
                 on_warning: Callable[[str], None] | None = None):
        self.serial, self.width, self.height, self.fps = serial, width, height, fps
        self.auto_exposure, self.exposure = auto_exposure, exposure
        self.devices, self.on_frame = devices, on_frame
        self.on_warning = on_warning or (lambda text: None)
        self._lock = threading.Lock()
        self._latest: Frame | None = None
        self._last_arrival = 0.0  # time.monotonic() of the last frame
        self._opened_at = 0.0
        self.sensor = None
        self.intrinsics: Intrinsics | None = None
        self.frames = 0

    def open(self) -> None:
        import pyrealsense2 as rs

        device = find_device(self.serial, self.devices())
        self.serial = device.get_info(rs.camera_info.serial_number)
        sensor = color_sensor(device)
        profile = self._pick_profile(sensor)
        self._set_exposure(sensor)
        sensor.open(profile)
        i = profile.as_video_stream_profile().get_intrinsics()
        self.intrinsics = Intrinsics(i.width, i.height, i.fx, i.fy, i.ppx, i.ppy, "plumb_bob",
                                     tuple(float(c) for c in i.coeffs[:5]))
        self._opened_at = time.monotonic()
        sensor.start(self._on_rs_frame)
        self.sensor = sensor

    def _pick_profile(self, sensor):
        import pyrealsense2 as rs

        offered = []
        for p in sensor.get_stream_profiles():
            if p.stream_type() != rs.stream.color:
                continue
            v = p.as_video_stream_profile()
            offered.append(f"{v.width()}x{v.height()}@{p.fps()} {p.format()}")
            if (v.width(), v.height(), p.fps()) == (self.width, self.height, self.fps) and p.format() == rs.format.rgb8:
                return p
        raise DeviceNotFoundError(
            f"camera {self.serial} offers no rgb8 {self.width}x{self.height}@{self.fps}; it offers {offered}")

    def _set_exposure(self, sensor) -> None:
        import pyrealsense2 as rs

        wanted = [(rs.option.enable_auto_exposure, 1.0 if self.auto_exposure else 0.0)]
        if not self.auto_exposure and self.exposure > 0:
            wanted.append((rs.option.exposure, float(self.exposure)))
        for option, value in wanted:
            try:
                if sensor.supports(option):
                    sensor.set_option(option, value)
                else:
                    self.on_warning(f"camera {self.serial}: {option} not supported; left as is")
            except RuntimeError as e:
                self.on_warning(f"camera {self.serial}: cannot set {option} = {value}: {e}")

    def _on_rs_frame(self, frame) -> None:
        # librealsense's thread: copy out of its buffer (it is recycled after we return)
        vf = frame.as_video_frame()
        image = np.asanyarray(vf.get_data()).reshape(vf.get_height(), vf.get_width(), 3).copy()
        f = Frame(image, frame.get_timestamp(), str(frame.get_frame_timestamp_domain()).split(".")[-1],
                  frame.get_frame_number(), time.time())
        with self._lock:
            self._latest = f
            self._last_arrival = time.monotonic()
            self.frames += 1
        if self.on_frame is not None:
            self.on_frame(f)

    def latest(self) -> Frame | None:
        with self._lock:
            return self._latest

    def age(self) -> float:
        """Seconds since the last frame (or since opening, before the first one)."""
        with self._lock:
            return time.monotonic() - max(self._last_arrival, self._opened_at)

    def close(self) -> None:
        sensor, self.sensor = self.sensor, None
        if sensor is None:
            return
        for step in (sensor.stop, sensor.close):
            try:
                step()
            except RuntimeError:
                pass  # already stopped, or the device is gone


class DeviceClock:
    """Maps a frame's device timestamp to host (ROS) time, keeping the device's frame spacing.

    system_time / global_time stamps are already host-epoch milliseconds. A hardware_clock
    stamp counts from the device's power-up: offset = the smallest (host - device) seen, i.e.
    the least-delayed frame, so transport jitter does not leak into the stamps.
    """

    def __init__(self) -> None:
        self.offset: float | None = None

    def reset(self) -> None:
        self.offset = None

    def to_host(self, frame: Frame) -> float:
        device_s = frame.device_ms / 1000.0
        if frame.domain in ("system_time", "global_time"):
            return device_s
        offset = frame.host_time - device_s
        if self.offset is None or offset < self.offset:
            self.offset = offset
        return device_s + self.offset
