"""A RealSense color camera made of `pyrealsense2.software_device`: the test and bench peer.

It registers a serial number and an rgb8 profile with intrinsics, and pushes frames with
device (hardware_clock) timestamps and frame numbers through librealsense itself, so the
driver receives real `rs.frame`s. `stream()` feeds a moving test pattern at the camera's fps
on a thread (pause/resume it to freeze the camera); `push()` sends one chosen image.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pyrealsense2 as rs


def pattern_frame(width: int, height: int, n: int) -> np.ndarray:
    """Colour ramps (u -> red, v -> green) and a white square that moves with n."""
    u = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    v = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 0] = u
    img[..., 1] = v
    img[..., 2] = n % 256
    s = max(4, min(width, height) // 8)
    x = (n * 7) % (width - s)
    img[height // 2 - s // 2: height // 2 + s // 2, x:x + s] = 255
    return img


class SoftwareCamera:
    def __init__(self, serial: str, width: int = 640, height: int = 480, fps: int = 30,
                 fx: float = 600.0, fy: float = 600.0, name: str = "Intel RealSense D405 (software)"):
        self.serial, self.width, self.height, self.fps = serial, width, height, fps
        self.device = rs.software_device()
        self.sensor = self.device.add_sensor("RGB Camera")
        intr = rs.intrinsics()
        intr.width, intr.height, intr.fx, intr.fy = width, height, fx, fy
        intr.ppx, intr.ppy = width / 2 - 0.5, height / 2 - 0.5
        intr.model, intr.coeffs = rs.distortion.brown_conrady, [0.0] * 5
        stream = rs.video_stream()
        stream.type, stream.index, stream.uid = rs.stream.color, 0, 0
        stream.width, stream.height, stream.fps, stream.bpp = width, height, fps, 3
        stream.fmt, stream.intrinsics = rs.format.rgb8, intr
        self.profile = self.sensor.add_video_stream(stream).as_video_stream_profile()
        # option_range(min, max, default, step) in this binding
        self.sensor.add_option(rs.option.enable_auto_exposure, rs.option_range(0, 1, 1, 1), True)
        self.sensor.add_option(rs.option.exposure, rs.option_range(1, 10000, 156, 1), True)
        self.device.register_info(rs.camera_info.serial_number, serial)
        self.device.register_info(rs.camera_info.name, name)
        self.frame_number = 0
        self.device_ms = 1000.0  # the device clock: ms since its power-up
        self.sent: list[tuple[int, float, float]] = []  # (frame number, device ms, time.monotonic())
        self._streaming = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def push(self, image: np.ndarray | None = None) -> int:
        """Sends one frame (the test pattern if None); returns its frame number."""
        self.frame_number += 1
        self.device_ms += 1000.0 / self.fps
        img = np.ascontiguousarray(image if image is not None else pattern_frame(self.width, self.height, self.frame_number))
        f = rs.software_video_frame()
        f.pixels, f.stride, f.bpp = img, self.width * 3, 3
        f.timestamp, f.domain, f.frame_number = self.device_ms, rs.timestamp_domain.hardware_clock, self.frame_number
        f.profile = self.profile
        self.sent.append((self.frame_number, self.device_ms, time.monotonic()))
        self.sensor.on_video_frame(f)  # dropped by librealsense when nobody has started the sensor
        return self.frame_number

    def stream(self) -> None:
        """Feeds frames at fps on a thread until pause()/close()."""
        self._streaming.set()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"swcam-{self.serial}", daemon=True)
            self._thread.start()

    def pause(self) -> None:
        self._streaming.clear()

    def _run(self) -> None:
        period = 1.0 / self.fps
        next_t = time.monotonic()
        while not self._stop.is_set():
            if not self._streaming.wait(0.05):
                next_t = time.monotonic()
                continue
            self.push()
            next_t += period
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def close(self) -> None:
        self._stop.set()
        self._streaming.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
