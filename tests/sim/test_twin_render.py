"""Offscreen rendering of the twin's cameras, and the error when no GL backend works."""
import os
import subprocess
import sys

import numpy as np
import pytest

from robot_rl.sim.scene import SceneConfig
from robot_rl.sim.twin import TwinRobot


def red_pixels(img):
    return (img[..., 0] > 150) & (img[..., 1] < 80) & (img[..., 2] < 80)


def centroid(mask):
    return np.argwhere(mask).mean(axis=0)


def test_camera_images_have_the_right_shape_and_are_not_blank():
    twin = TwinRobot(SceneConfig(objects="cube", cameras=("wrist", "front"), image_size=128))
    try:
        state = twin.reset(options={"cube_pos": [0.5, 0.0, 0.025]})
        assert set(state.images) == {"wrist", "front"}
        for name, img in state.images.items():
            assert img.shape == (128, 128, 3) and img.dtype == np.uint8, name
            assert img.std() > 10, f"{name} looks blank"
        # The red cube is in view of both cameras.
        for img in state.images.values():
            assert red_pixels(img).sum() > 10
        # Images follow the robot: the cube moves across the wrist view when the arm moves.
        twin.command(state.tcp_pos + [0.0, 0.05, 0.0], state.tcp_quat, 0.0)
        for _ in range(5):
            moved = twin.wait_step()
        shift = np.abs(centroid(red_pixels(moved.images["wrist"])) - centroid(red_pixels(state.images["wrist"])))
        assert shift.max() > 5
    finally:
        twin.close()


def _run_without_gl(backend: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["MUJOCO_GL"] = backend
    code = ("from robot_rl import tasks; env = tasks.make_env('pick_cube', obs='pixels'); env.reset()")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


@pytest.mark.parametrize("backend", ["glfw", "not-a-backend"])
def test_no_gl_backend_gives_a_clear_message(backend):
    # glfw with no display cannot make a context; an unknown name is rejected by mujoco.
    result = _run_without_gl(backend)
    assert result.returncode != 0
    assert "apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri" in result.stderr
    assert "MUJOCO_GL=egl" in result.stderr


def test_pretty_scene_renders_textured_meshes_at_video_size():
    twin = TwinRobot(SceneConfig(objects="peg_hole", pretty=True))
    try:
        twin.reset()
        assert twin.model.nmesh > 30  # the high-poly visual meshes are kept
        frame = twin.render("front", size=256)
        assert frame.shape == (256, 256, 3) and frame.std() > 10
    finally:
        twin.close()
