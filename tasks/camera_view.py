"""A task camera's view: its frame cropped and resized to the policy's square image.

A task file gives each camera a frame size (width, height: what the camera publishes) and a
crop (x0, y0, x1, y1 in that frame's pixels), as HIL-SERL's per-camera crops and LeRobot's crop
tool do. The ROS backend applies it to the frames it receives; the in-process twin renders the
same frame size and applies the same crop (`CroppedTwinCameras`), so a rehearsal in the twin
feeds the policy the same shapes and the same processing as the real cameras.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from robot_rl.robot import RobotState

# The twin's offscreen buffer (sim.scene: offwidth/offheight >= 640x480): larger frames are
# rendered scaled down, with the crop scaled alike.
TWIN_MAX_FRAME = (640, 480)


def crop_and_resize(image: np.ndarray, crop: tuple[int, int, int, int] | None, size: int) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (size, size, 3): the crop (x0, y0, x1, y1), then an antialiased
    resize (PIL's bilinear, which widens its filter when shrinking)."""
    if crop is not None:
        x0, y0, x1, y1 = crop
        h, w = image.shape[:2]
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise ValueError(f"crop {list(crop)} is outside the {w}x{h} frame")
        image = image[y0:y1, x0:x1]
    if image.shape[0] == image.shape[1] == size:
        return np.array(image)                  # an own, writable copy (the frame may be a buffer view)
    from PIL import Image

    return np.array(Image.fromarray(np.ascontiguousarray(image)).resize((size, size), Image.BILINEAR))


class CroppedTwinCameras:
    """The in-process twin (a RobotInterface) with the task's cropped cameras: each is rendered
    at its frame size (scaled to fit TWIN_MAX_FRAME) and cropped and resized like the real one.
    Uncropped cameras come from the twin as before."""

    def __init__(self, twin: Any, spec: Any):
        from robot_rl.sim import mujoco_import

        mujoco = mujoco_import()
        self.twin, self.spec = twin, spec
        self.control_hz = twin.control_hz
        self._views: dict[str, tuple[Any, tuple[int, int, int, int]]] = {}
        for cam, crop in spec.camera_crops.items():
            w, h = spec.camera_frames[cam]
            scale = min(1.0, TWIN_MAX_FRAME[0] / w, TWIN_MAX_FRAME[1] / h)
            renderer = mujoco.Renderer(twin.model, int(round(h * scale)), int(round(w * scale)))
            scaled = tuple(int(round(v * scale)) for v in crop)
            self._views[cam] = (renderer, scaled)

    def _with_views(self, state: RobotState) -> RobotState:
        for cam, (renderer, crop) in self._views.items():
            renderer.update_scene(self.twin.data, camera=cam)
            state.images[cam] = crop_and_resize(renderer.render(), crop, self.spec.image_size)
        return state

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> RobotState:
        return self._with_views(self.twin.reset(seed=seed, options=options))

    def command(self, pos: np.ndarray, quat: np.ndarray, gripper: float) -> None:
        self.twin.command(pos, quat, gripper)

    def wait_step(self) -> RobotState:
        return self._with_views(self.twin.wait_step())

    def recover(self) -> None:
        self.twin.recover()

    def task_state(self) -> dict[str, np.ndarray]:
        return self.twin.task_state()

    def render(self, camera: str = "front", size: int | None = None) -> np.ndarray:
        return self.twin.render(camera, size)

    def close(self) -> None:
        for renderer, _ in self._views.values():
            renderer.close()
        self._views.clear()
        self.twin.close()

    def __getattr__(self, name: str) -> Any:
        # Everything else (model, data, solve_ik, ... used by experts and benchmarks) is the twin's.
        return getattr(self.twin, name)
