"""ROS 2 node for one RealSense camera (realsense-ros parameter names where they exist).

Publishes, for every output key: `/cameras/<key>/image_raw` (sensor_msgs/Image rgb8, cropped and
resized, default 128x128) and `/cameras/<key>/camera_info` (intrinsics after crop and resize),
frame id `<key>_color_optical_frame`, stamped with the device timestamp mapped to host time.
One physical camera can feed several keys (e.g. `outputs: [wrist, wrist_close]` with two crops);
several cameras are several nodes, each picking its camera by `serial_no`.
A watchdog reports a frozen stream (no frame for `frame_timeout`) on `/cameras/<camera_name>/status`
(std_msgs/String JSON) and re-opens the camera with exponential backoff until frames flow again.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String

from robot_rl.drivers.errors import DeviceNotFoundError
from robot_rl.drivers.realsense import (
    CropResize,
    DeviceClock,
    Frame,
    RealSenseCamera,
    list_devices,
    parse_crop,
    parse_profile,
)
from robot_rl.drivers.ros_common import declare_config, log, run_node, stamp
from robot_rl.config import Range, Text, param


@dataclass
class RealSenseNodeConfig:
    """Which camera this node opens (realsense-ros names where they exist)."""
    serial_no: str = param("", "camera serial number ('' = the first found); see rs-enumerate-devices -s",
                           Text(allow_empty=True), dynamic=True)   # digits on the command line arrive as an int
    camera_name: str = param("camera", "name of this camera (status topic, default output key)", Text())


@dataclass
class CameraOutputConfig:
    """What the node publishes; `outputs` defaults to the camera's name (declared after it)."""
    outputs: list[str] = param(["camera"], "observation keys fed by this camera", Text())
    crops: list[str] = param([""], "per output: 'x,y,width,height' in source pixels, '' = full frame",
                             Text(allow_empty=True))
    output_width: int = param(128, "width of the published image", Range(1, 8192))
    output_height: int = param(128, "height of the published image", Range(1, 8192))
    frame_timeout: float = param(1.0, "no frame for this long (s) = frozen stream", Range(0.0, 3600.0, low_open=True))
    reconnect_backoff: float = param(0.5, "first wait (s) before re-opening, doubled per failure",
                                     Range(0.0, 3600.0, low_open=True))
    reconnect_backoff_max: float = param(5.0, "longest wait (s) between re-opens", Range(0.0, 3600.0, low_open=True))


@dataclass
class ColorStreamConfig:
    """The color stream's parameters, declared under `rgb_camera.` as realsense-ros names them."""
    color_profile: str = param("640,480,30", "width,height,fps of the rgb8 color stream", Text())
    enable_auto_exposure: bool = param(True, "auto exposure on/off")
    exposure: float = param(0.0, "manual exposure (us) when auto exposure is off; 0 = leave", Range(0.0, 1e6))


class RealSenseNode(Node):
    def __init__(self, devices: Callable[[], Iterable] = list_devices, name: str = "realsense_camera", **node_kwargs):
        """devices: where cameras are looked up (pyrealsense2 context by default; software devices in tests).
        Several cameras in one graph: give each node its own name (or `--ros-args -r __node:=wrist_camera`)."""
        super().__init__(name, **node_kwargs)
        camera = declare_config(self, RealSenseNodeConfig())
        serial, self.camera_name = camera.serial_no, camera.camera_name
        color = declare_config(self, ColorStreamConfig(), prefix="rgb_camera.")
        profile, auto_exposure, exposure = color.color_profile, color.enable_auto_exposure, color.exposure
        p = declare_config(self, CameraOutputConfig(outputs=[self.camera_name]))
        outputs, crops, out_w, out_h = p.outputs, p.crops, p.output_width, p.output_height
        self.frame_timeout, self.backoff0, self.backoff_max = p.frame_timeout, p.reconnect_backoff, p.reconnect_backoff_max
        width, height, fps = parse_profile(profile)
        crops = list(crops) + [""] * (len(outputs) - len(crops))
        if len(crops) > len(outputs):
            raise ValueError(f"{len(crops)} crops for {len(outputs)} outputs")
        self.outputs = []
        for key, crop_text in zip(outputs, crops):
            crop = CropResize(parse_crop(crop_text), (out_h, out_w))
            crop.check(width, height)
            self.outputs.append((key, crop, self.create_publisher(Image, f"/cameras/{key}/image_raw", 10),
                                 self.create_publisher(CameraInfo, f"/cameras/{key}/camera_info", 10)))
        self.status_pub = self.create_publisher(String, f"/cameras/{self.camera_name}/status", 10)
        self.clock_map = DeviceClock()
        self.camera = RealSenseCamera(serial, width, height, fps, auto_exposure, exposure, devices,
                                      on_frame=self._on_frame, on_warning=lambda t: self._event("warn", t))
        self.camera.open()  # no camera at start: DeviceNotFoundError, the node does not pretend
        self.frozen = False
        self.freezes = 0
        self.backoff = self.backoff0
        self.next_try = 0.0
        self._event("info", f"camera {self.camera.serial} streaming {width}x{height}@{fps}")
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="realsense-watchdog", daemon=True)
        self._watchdog.start()

    def _event(self, level: str, text: str, **extra) -> None:
        log(self, level, text)
        self.status_pub.publish(String(data=json.dumps({"level": level, "event": text, "frozen": getattr(self, "frozen", False), **extra})))

    def _on_frame(self, frame: Frame) -> None:
        if self.frozen:
            self.frozen = False
            self.backoff = self.backoff0
            self._event("info", f"camera {self.camera.serial} recovered", frame_number=frame.frame_number)
        t = stamp(self.clock_map.to_host(frame))
        k = self.camera.intrinsics
        for key, crop, image_pub, info_pub in self.outputs:
            img = crop(frame.image)
            msg = Image()
            msg.header.stamp, msg.header.frame_id = t, f"{key}_color_optical_frame"
            msg.height, msg.width = img.shape[:2]
            msg.encoding, msg.is_bigendian, msg.step = "rgb8", 0, img.shape[1] * 3
            msg.data = img.tobytes()
            image_pub.publish(msg)
            info_pub.publish(camera_info(crop.intrinsics(k), msg.header))

    def _watch(self) -> None:
        period = min(0.05, self.frame_timeout / 4)
        while not self._stop.wait(period):
            now = time.monotonic()
            if self.camera.sensor is not None and self.camera.age() > self.frame_timeout:
                if not self.frozen:
                    self.frozen = True
                    self.freezes += 1
                    self._event("error", f"camera {self.camera.serial}: no frame for {self.camera.age():.2f} s "
                                         "(frozen); re-opening", frame_age=self.camera.age())
                self.camera.close()
                self.next_try = now + self.backoff
                self.backoff = min(self.backoff * 2.0, self.backoff_max)
            elif self.camera.sensor is None and now >= self.next_try:
                try:
                    self.clock_map.reset()  # a re-opened device may restart its clock
                    self.camera.open()
                    self._event("info", f"camera {self.camera.serial} re-opened; waiting for frames")
                except (DeviceNotFoundError, RuntimeError) as e:
                    self._event("warn", f"re-open failed: {e}; next try in {self.backoff:.1f} s")
                    self.next_try = now + self.backoff
                    self.backoff = min(self.backoff * 2.0, self.backoff_max)

    def close(self) -> None:
        self._stop.set()
        self._watchdog.join(timeout=3.0)
        self.camera.close()


def camera_info(k, header) -> CameraInfo:
    info = CameraInfo()
    info.header = header
    info.width, info.height = k.width, k.height
    info.distortion_model = k.model
    info.d = list(k.coeffs)
    info.k = [k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [k.fx, 0.0, k.cx, 0.0, 0.0, k.fy, k.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def main(args: list[str] | None = None) -> int:
    return run_node(RealSenseNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
