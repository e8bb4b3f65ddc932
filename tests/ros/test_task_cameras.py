"""A task file's cameras and namespace over ROS (tasks/ros/backend.py): a camera reads the topic
the task names, a cropped camera takes its crop from the frame size the task declares and gives
the policy image_size, a frame of another size is refused by name, the env opens the robot in
the task's namespace, and a Cartesian reset runs under the task's reset gains. Against the real twin node (tests/ros/conftest.py twin_graph)."""
from __future__ import annotations

import numpy as np
import pytest

from robot_rl import tasks
from robot_rl.tasks.ros.backend import RosRobot, RosRobotConfig, camera_options, make_ros_env


def test_topics_and_crops_of_a_task_reach_the_policy(twin_graph):
    # The twin publishes 128x128 wrist and front frames under /cameras/<name>/image_raw.
    spec = tasks.make_spec("pick_cube", cameras=("side", "front"), image_size=64,
                           camera_topics={"side": "/cameras/front/image_raw"},
                           camera_frames={"side": (128, 128), "front": (128, 128)},
                           camera_crops={"side": (0, 0, 128, 128), "front": (32, 32, 96, 96)})
    with RosRobot(RosRobotConfig(cameras=spec.cameras, **camera_options(spec))) as robot:
        state = robot.observe()
        assert state.images["side"].shape == state.images["front"].shape == (64, 64, 3)
        # "side" is the whole front frame, "front" its centre half: the centre of the one is
        # the other, at twice the scale (up to interpolation and a frame between the two reads).
        centre = state.images["side"][16:48, 16:48].astype(float)
        zoomed = state.images["front"][::2, ::2].astype(float)
        assert np.abs(centre - zoomed).mean() < 20.0
        assert state.images["front"].std() > 1.0


def test_a_frame_of_another_size_is_refused_by_name(twin_graph):
    spec = tasks.make_spec("pick_cube", cameras=("wrist",), image_size=64,
                           camera_frames={"wrist": (640, 480)}, camera_crops={"wrist": (80, 0, 560, 480)})
    with RosRobot(RosRobotConfig(cameras=spec.cameras, **camera_options(spec))) as robot:
        with pytest.raises(ValueError, match=r"/cameras/wrist/image_raw: expected rgb8 640x480, got rgb8 128x128"):
            robot.observe()


def test_the_env_opens_the_robot_in_the_task_s_namespace(twin_graph, tmp_path):
    path = tmp_path / "elsewhere.yaml"
    path.write_text("base: pick_cube\nrobot: {namespace: /lab/arm9}\n")
    with pytest.raises(TimeoutError, match=r"no /lab/arm9/reset service"):
        make_ros_env(str(path), obs="pixels", robot_options={"connect_timeout": 0.5})
    here = tmp_path / "here.yaml"
    here.write_text("base: pick_cube\nrobot: {namespace: /franka}\n")
    env = make_ros_env(str(here), obs="pixels")
    try:
        assert env.unwrapped.robot.config.namespace == "/franka"
        obs, _ = env.reset(seed=0)
        assert obs["wrist"].shape == (128, 128, 3)
    finally:
        env.close()


def test_a_cartesian_reset_switches_to_the_task_s_reset_gains_and_back(twin_graph):
    from robot_rl.tasks.apps.setup_tools import node_parameters
    spec = tasks.make_spec("pick_cube", reset_gains={"translational_stiffness": 1500.0, "rotational_stiffness": 200.0})
    with RosRobot(RosRobotConfig(gains_node="/franka/twin", reset_gains=dict(spec.reset_gains))) as robot:
        before, _ = node_parameters("/franka/twin")
        with robot._reset_gains():          # what each Cartesian reset runs its move under
            during, _ = node_parameters("/franka/twin")
        after, _ = node_parameters("/franka/twin")
    assert (during["translational_stiffness"], during["rotational_stiffness"]) == (1500.0, 200.0)
    assert during["translational_ki"] == 1000.0                 # the backend's integral term stays
    assert list(during["translational_clip_pos"]) == [0.1, 0.1, 0.1]   # on the precision profile
    assert after == before


def test_robot_rl_cameras_shows_a_task_s_crops_and_what_its_policy_sees(twin_graph, tmp_path, capsys):
    from PIL import Image

    from robot_rl.cli import main as cli_main
    task = tmp_path / "cropped.yaml"
    task.write_text("base: pick_cube\nimage_size: 64\ncameras:\n"
                    "  wrist: {}\n  front: {frame: [128, 128], crop: [32, 32, 96, 96]}\n")
    out = tmp_path / "cams"
    assert cli_main(["cameras", "--task", str(task), "--out", str(out), "--seconds", "1.0"]) == 0
    printed = capsys.readouterr().out
    assert "front: 128x128 rgb8" in printed and "the policy's view" in printed
    assert Image.open(out / "front_policy.png").size == (64, 64)
    assert Image.open(out / "front.png").size == (128, 128) and not (out / "wrist_policy.png").exists()
    # A frame the camera does not publish: one line naming the camera and the sizes.
    task.write_text("base: pick_cube\ncameras:\n  front: {frame: [640, 480], crop: [80, 0, 560, 480]}\n")
    assert cli_main(["cameras", "--task", str(task), "--out", str(out), "--seconds", "1.0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "camera front: crop [80, 0, 560, 480] is outside the 128x128 frame" in err and "\n" not in err
