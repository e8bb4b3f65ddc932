"""RealSense: the node against `pyrealsense2.software_device` cameras fed with frames.

The software devices are handed to the node as its device list: librealsense does not list
software devices in `rs.context().query_devices()`, so that one lookup cannot be exercised
without a USB camera; everything after it (sensor, profiles, options, frames) is librealsense.
"""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String

from robot_rl.drivers.errors import DeviceNotFoundError
from robot_rl.drivers.peers.realsense_sim import SoftwareCamera, pattern_frame
from robot_rl.drivers.realsense import CropResize, DeviceClock, Frame, Intrinsics, parse_crop, parse_profile
from robot_rl.drivers.realsense_node import RealSenseNode


@pytest.fixture
def cameras():
    made: list[SoftwareCamera] = []

    def make(serial: str, **kw) -> SoftwareCamera:
        made.append(SoftwareCamera(serial, **kw))
        return made[-1]

    try:
        yield make
    finally:
        for cam in made:
            cam.close()


def as_array(msg: Image) -> np.ndarray:
    return np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)


def test_crop_resize_and_intrinsics():
    img = pattern_frame(640, 480, 3)
    full = CropResize(None)(img)
    assert full.shape == (128, 128, 3) and full.dtype == np.uint8
    crop = CropResize((100, 50, 256, 256))
    out = crop(img)
    assert out.shape == (128, 128, 3)
    # the ramps say where the pixels came from: red ~ u, green ~ v of the source
    ref = img[50:306, 100:356][::2, ::2].astype(int)
    assert np.abs(out.astype(int) - ref).mean() < 3.0
    k = crop.intrinsics(Intrinsics(640, 480, 600.0, 600.0, 319.5, 239.5))
    assert (k.width, k.height, k.fx, k.fy) == (128, 128, 300.0, 300.0)
    assert k.cx == pytest.approx((319.5 + 0.5 - 100) / 2 - 0.5) and k.cy == pytest.approx((239.5 + 0.5 - 50) / 2 - 0.5)
    with pytest.raises(ValueError, match="does not fit"):
        CropResize((600, 0, 100, 100)).check(640, 480)
    for bad in ("1,2,3", "a,b,c,d", "0,0,-5,10"):
        with pytest.raises(ValueError):
            parse_crop(bad)
    assert parse_profile("640,480,30") == parse_profile("640x480x30") == (640, 480, 30)
    with pytest.raises(ValueError):
        parse_profile("640,480")


def test_device_clock_keeps_device_spacing():
    clock = DeviceClock()
    host = [100.0 + i / 30 + jitter for i, jitter in enumerate([0.004, 0.001, 0.009, 0.002])]
    frames = [Frame(np.zeros((1, 1, 3), np.uint8), 5000 + i * 1000 / 30, "hardware_clock", i, h) for i, h in enumerate(host)]
    stamps = [clock.to_host(f) for f in frames][1:]
    assert np.allclose(np.diff(stamps), 1 / 30)  # after the least-delayed frame, spacing is the device's
    assert clock.to_host(Frame(frames[0].image, 1.7e12, "global_time", 0, 0.0)) == pytest.approx(1.7e9)


def test_two_cameras_by_serial_crops_stamps_and_info(ros, cameras):
    wrist, front = cameras("817612070540"), cameras("935322071234", width=424, height=240, fps=15)
    devices = lambda: [front.device, wrist.device]  # noqa: E731  (order must not matter)
    images = {k: ros.inbox(Image, f"/cameras/{k}/image_raw") for k in ("wrist", "wrist_close", "front")}
    info = ros.inbox(CameraInfo, "/cameras/wrist_close/camera_info")
    ros.add(RealSenseNode(devices, **ros.kwargs(serial_no="817612070540", camera_name="wrist",
                                                outputs=["wrist", "wrist_close"], crops=["", "160,120,320,240"])))
    ros.add(RealSenseNode(devices, name="front_camera", **ros.kwargs(serial_no="935322071234", camera_name="front",
                                                **{"rgb_camera.color_profile": "424,240,15",
                                                   "rgb_camera.enable_auto_exposure": False,
                                                   "rgb_camera.exposure": 300.0})))
    wrist.stream()
    front.stream()
    a = images["wrist"].wait_for(lambda m: True)
    b = images["wrist_close"].wait_for(lambda m: m.header.stamp == a.header.stamp)
    f = images["front"].wait_for(lambda m: True)
    for m, key in ((a, "wrist"), (b, "wrist_close"), (f, "front")):
        assert (m.height, m.width, m.encoding, m.step) == (128, 128, "rgb8", 384)
        assert m.header.frame_id == f"{key}_color_optical_frame"
    # the same frame, cropped differently (the blue channel carries the frame number)
    source = pattern_frame(640, 480, int(as_array(a)[0, 0, 2]))  # what the camera sent
    assert np.array_equal(as_array(b), CropResize((160, 120, 320, 240))(source))
    assert np.array_equal(as_array(a), CropResize(None)(source))
    assert as_array(f)[..., 0].max() > 200  # the front camera's own frames
    ci = info.wait_for(lambda m: True)
    assert (ci.width, ci.height, ci.header.frame_id) == (128, 128, "wrist_close_color_optical_frame")
    assert ci.k[0] == pytest.approx(600 * 128 / 320) and ci.k[4] == pytest.approx(600 * 128 / 240)
    sensor = front.device.query_sensors()[0]
    import pyrealsense2 as rs

    assert sensor.get_option(rs.option.enable_auto_exposure) == 0 and sensor.get_option(rs.option.exposure) == 300
    # stamps: device spacing kept (30 fps -> 33.3 ms), monotonic, close to now
    n0 = len(images["wrist"])
    images["wrist"].wait_for(lambda m: True, start=n0 + 5)
    stamps = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in images["wrist"].msgs])
    gaps = np.diff(stamps)
    assert np.all(gaps > 0) and np.median(gaps) == pytest.approx(1 / 30, abs=1e-3)
    assert abs(stamps[-1] - time.time()) < 1.0


def test_freeze_is_reported_and_the_camera_recovers_with_backoff(ros, cameras):
    cam = cameras("111")
    status = ros.inbox(String, "/cameras/wrist/status")
    images = ros.inbox(Image, "/cameras/wrist/image_raw")
    node = ros.add(RealSenseNode(lambda: [cam.device], **ros.kwargs(
        serial_no="111", camera_name="wrist", frame_timeout=0.2, reconnect_backoff=0.05, reconnect_backoff_max=0.2)))
    cam.stream()
    images.wait_for(lambda m: True)
    cam.pause()  # the stream freezes (USB hiccup, cable pulled)
    frozen = status.wait_for(lambda m: "frozen" in json.loads(m.data)["event"])
    assert json.loads(frozen.data)["level"] == "error"
    t_last_frame = cam.sent[-1][2]
    assert 0.2 <= status.times[status.msgs.index(frozen)] - t_last_frame < 0.2 + 0.4
    deadline = time.monotonic() + 3
    while node.backoff < 0.2:  # re-opened, still no frames: it backs off, capped
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert node.freezes == 1
    n = len(images)
    cam.stream()  # frames again
    status.wait_for(lambda m: "recovered" in m.data, timeout=5)
    images.wait_for(lambda m: True, start=n)
    assert not node.frozen and node.backoff == pytest.approx(0.05)


def test_missing_camera_and_bad_parameters_are_clear_errors(ros, cameras):
    cam = cameras("111")
    with pytest.raises(DeviceNotFoundError, match="no RealSense camera with serial '222'"):
        RealSenseNode(lambda: [cam.device], **ros.kwargs(serial_no="222"))
    with pytest.raises(DeviceNotFoundError, match="offers no rgb8 1280x720@30"):
        RealSenseNode(lambda: [cam.device], **ros.kwargs(**{"rgb_camera.color_profile": "1280,720,30"}))
    with pytest.raises(ValueError, match="does not fit"):
        RealSenseNode(lambda: [cam.device], **ros.kwargs(crops=["600,400,100,100"]))
