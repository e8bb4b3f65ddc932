"""The task file's sections (tasks/task_file.py SECTIONS): robot and namespace, cameras with topic,
frame, crop and size, gripper mode, reset pose / random range / gains, reward classifier,
threshold, operator keys and state check. Each maps to TaskSpec fields, each bad value is one
error naming the file, the field and what is allowed, and the cropped cameras give the policy
the same images in the in-process twin as the ROS backend does (tests/ros/test_task_cameras.py)."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from robot_rl import tasks
from robot_rl.tasks.camera_view import crop_and_resize
from robot_rl.tasks.ros.rig import parse_rig
from robot_rl.tasks.task_file import TaskFileError, check_cameras, check_operator_keys

FULL = """\
# A task with every section.
base: pick_cube
robot: {model: franka, namespace: /lab/arm1}
max_steps: 80
cameras:
  wrist: {topic: /cameras/wrist/image_raw, frame: [640, 480], crop: [80, 0, 560, 480], size: 96}
  front: {topic: /cameras/side/image_raw}
gripper: grasp_critic
reset:
  pose: [0.5, 0.0, 0.2]
  rpy: [0.0, 0.1, 0.2]
  random: {xy: 0.01, z: 0.02, yaw: 0.3}
  gains: {translational_stiffness: 3000.0, translational_ki: 500.0}
reward:
  classifier: clf.safetensors
  threshold: 0.8
  keys: {success: y, failure: n}
  state_check: "gripper>=0.5,z>=0.05"
"""


def _write(tmp_path, text: str, name: str = "task.yaml"):
    path = tmp_path / name
    path.write_text(text)
    (tmp_path / "clf.safetensors").write_bytes(b"")   # the classifier file must exist; not opened here
    return path


def _edit(tmp_path, path_in_file: str, value, text: str = FULL):
    """FULL with one (dotted) key set, or removed when value is None."""
    data = yaml.safe_load(text)
    *parents, last = path_in_file.split(".")
    node = data
    for p in parents:
        node = node.setdefault(p, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return _write(tmp_path, yaml.safe_dump(data, sort_keys=False))


def test_every_section_reaches_its_spec_field(tmp_path):
    path = _write(tmp_path, FULL)
    spec = tasks.make_spec(str(path))
    assert (spec.robot, spec.namespace) == ("franka", "/lab/arm1")
    assert spec.cameras == ("wrist", "front") and spec.image_size == 96
    assert spec.camera_topic("front") == "/cameras/side/image_raw"
    assert spec.camera_frames == {"wrist": (640, 480)} and spec.camera_crops == {"wrist": (80, 0, 560, 480)}
    assert spec.gripper_mode == "grasp_critic" and spec.gripper_fixed is None
    assert spec.tcp_start == (0.5, 0.0, 0.2) and spec.tcp_start_rpy == (0.0, 0.1, 0.2)
    assert (spec.tcp_start_xy_range, spec.tcp_start_z_range, spec.tcp_start_yaw_range) == (0.01, 0.02, 0.3)
    assert spec.reset_gains == {"translational_stiffness": 3000.0, "translational_ki": 500.0}
    # The classifier path is relative to the task file, resolved on load.
    assert spec.reward_classifier == str((tmp_path / "clf.safetensors").resolve())
    assert spec.reward_threshold == 0.8 and spec.success_state_check == "gripper>=0.5,z>=0.05"
    assert spec.operator_keys == {"success": "y", "failure": "n", "reset": "r"}   # reset: the default


def test_defaults_and_short_forms(tmp_path):
    spec = tasks.make_spec(str(_write(tmp_path, "base: scene\nrobot: widowx\ngripper: none\n"
                                      "box_low: [0.15, -0.18, 0.015]\nbox_high: [0.42, 0.18, 0.25]\n"
                                      "tcp_start: [0.28, 0.0, 0.14]\n"
                                      "scene: [{name: b, pos: [0.28, 0.0, 0.02]}]\n"
                                      "success: {kind: reach, object: b, distance: 0.05}\n")))
    assert spec.robot == "widowx" and spec.namespace == "/widowx"
    assert spec.gripper_mode == "none" and spec.gripper_fixed == 0.0          # held open
    assert spec.camera_topic("wrist") == "/cameras/wrist/image_raw"
    held = tasks.make_spec(str(_write(tmp_path, "base: peg_insert\ngripper: {mode: none, hold: 0.69}\n")))
    assert held.gripper_fixed == 0.69 and tasks.make_spec("peg_insert").gripper_mode == "none"
    assert tasks.make_spec("pick_cube").gripper_mode == "binary"


def test_the_reset_pose_and_its_random_range_are_sampled(tmp_path):
    from robot_rl.controllers.rotations import matrix_to_rpy, quat_to_matrix as quat_to_rot
    spec = tasks.make_spec(str(_write(tmp_path, FULL)))
    nominal = quat_to_rot(spec.nominal_quat)
    rng = np.random.default_rng(0)
    for _ in range(50):
        opt = spec.sample_reset(rng)
        offset = opt["tcp_pos"] - np.array(spec.tcp_start)
        assert np.all(np.abs(offset[:2]) <= 0.01 + 1e-12) and abs(offset[2]) <= 0.02 + 1e-12
        roll, pitch, yaw = matrix_to_rpy(nominal.T @ quat_to_rot(opt["tcp_quat"]))
        assert roll == pytest.approx(0.0, abs=1e-9) and pitch == pytest.approx(0.1, abs=1e-9)
        assert abs(yaw - 0.2) <= 0.3 + 1e-9
    # Without a z range the random stream is the one every seeded run had before.
    plain = tasks.make_spec("pick_cube")
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    opt = plain.sample_reset(a)
    xy = b.uniform(-0.02, 0.02, size=2)
    assert np.allclose(opt["tcp_pos"], [0.5 + xy[0], xy[1], 0.2])


@pytest.mark.parametrize("key, value, error", [
    ("robot.model", "ur5", r"robot = 'ur5': allowed one of \['franka', 'widowx'\]"),
    ("robot.model", "widowx", r"robot.model = 'widowx': base pick_cube runs on franka"),
    ("robot.namespace", "franka", r"robot_namespace = 'franka': allowed '' \(= /<robot>\) or a ROS namespace"),
    ("robot.ip", "1.2.3.4", r"robot.ip: unknown key; allowed: \['model', 'namespace'\]"),
    ("cameras.wrist.crop", [80, 0, 700, 480], r"cameras.wrist.crop = \[80, 0, 700, 480\]: allowed 0 <= x0 < x1 <= 640"),
    ("cameras.wrist.frame", None, r"cameras.wrist.crop = .*: allowed with the camera's frame"),
    ("cameras.wrist.frame", [640], r"cameras.wrist.frame = \(640,\): allowed \[width, height\]"),
    ("cameras.wrist.zoom", 2, r"cameras.wrist: unknown keys \['zoom'\]; allowed: \['topic', 'frame', 'crop', 'size'\]"),
    ("cameras.front.size", 128, r"cameras.\*.size = .*: allowed one size for every camera"),
    ("cameras.front.topic", "cameras front", r"cameras.front.topic = 'cameras front': allowed a ROS topic name"),
    ("image_size", 128, r"cameras.\*.size 96 and image_size 128 differ"),
    ("gripper", "magnetic", r"gripper.mode = 'magnetic': allowed one of \['none', 'binary', 'grasp_critic'\]"),
    ("gripper", {"mode": "binary", "hold": 0.5}, r"gripper.hold = 0.5: allowed only with gripper mode none"),
    ("gripper", {"mode": "none", "hold": 1.5}, r"gripper.hold = 1.5: allowed 0 \(open\) to 1 \(closed\)"),
    ("gripper_fixed", 0.2, r"gripper.hold and gripper_fixed both given|gripper.hold = 0.2: allowed only"),
    ("reset.pose", [0.5, 0.0, 0.5], r"tcp_start = .*: allowed inside the box"),
    ("tcp_start", [0.5, 0.0, 0.2], r"reset.pose and tcp_start both given: keep one"),
    ("reset.rpy", [0.0, 0.5, 0.0], r"reset.rpy = \[0.0, 0.5, 0.0\]: allowed 3 angles within the orientation limits"),
    ("reset.random", {"xy": 0.01, "pitch": 0.1}, r"reset.random.pitch: unknown key; allowed: \['xy', 'yaw', 'z'\]"),
    ("reset.random", {"z": -0.1}, r"tcp_start_z_range = -0.1: allowed 0 to 0.2"),
    ("reset.random", {"z": 0.19}, r"tcp_start = .*: allowed inside the box .* \+-0.19 m in z"),
    ("reset.gains", {"stiffness": 10.0}, r"reset.gains = \['stiffness'\]: allowed impedance parameters"),
    ("reset.gains", {"translational_stiffness": -5.0}, r"reset.gains: .*translational_stiffness"),
    ("reward.threshold", 1.5, r"reward.threshold = 1.5: allowed \(0, 1\]"),
    ("reward.keys", {"success": "y", "failure": "y"}, r"reward.keys = .*: allowed a different key for each role"),
    ("reward.keys", {"rerecord": "z"}, r"reward.keys = \['rerecord'\]: allowed the roles"),
    ("reward.keys", {"success": "i"}, r"reward.keys = .*: allowed distinct keys other than the keyboard's"),
    ("reward.state_check", "speed>3", r"reward.state_check: bad state check 'speed>3'"),
    ("reward.source", "human", r"reward.source: unknown key; allowed: \['classifier', 'keys', 'state_check', 'threshold'\]"),
])
def test_each_bad_section_value_names_the_file_the_field_and_the_range(tmp_path, key, value, error):
    path = _edit(tmp_path, key, value)
    with pytest.raises(TaskFileError, match=error) as info:
        tasks.make_spec(str(path))
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_the_cli_reports_a_bad_section_in_one_line(tmp_path, capsys):
    from robot_rl.cli import main as cli_main
    assert cli_main(["tasks", str(_edit(tmp_path, "reward.threshold", 0.0))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("robot-rl: error:") and "reward.threshold = 0.0" in err and "\n" not in err



def test_a_missing_classifier_file_is_found_where_the_task_is_checked_not_where_it_is_described(tmp_path, capsys):
    from robot_rl.cli import main as cli_main
    path = _edit(tmp_path, "reward.classifier", "nowhere/clf.safetensors")
    # A learner on another machine builds the task without the actor's classifier file ...
    spec = tasks.make_spec(str(path))
    assert spec.reward_classifier == str(tmp_path / "nowhere" / "clf.safetensors")
    # ... and `robot-rl tasks FILE` (like `robot-rl check`) refuses it in one line.
    assert cli_main(["tasks", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "reward.classifier = " in err and "nowhere/clf.safetensors" in err and "allowed an existing" in err
    assert "\n" not in err


def test_a_camera_missing_from_the_rig_and_keys_the_rig_does_not_bind_are_refused(tmp_path):
    spec = tasks.make_spec(str(_write(tmp_path, FULL)))
    rig = parse_rig({"nodes": [{"kind": "franka"},
                               {"kind": "realsense", "parameters": {"camera_name": "wrist", "outputs": ["wrist"]}},
                               {"kind": "keyboard", "parameters": {"key_success": "y", "key_failure": "n"}}]})
    # front reads /cameras/side/image_raw, which no camera of the rig publishes.
    with pytest.raises(TaskFileError, match=r"cameras \['front \(/cameras/side/image_raw\)'\] are not in the rig"):
        check_cameras(spec, rig)
    side = parse_rig({"nodes": [{"kind": "franka"},
                                {"kind": "realsense", "name": "a", "parameters": {"camera_name": "wrist", "outputs": ["wrist"]}},
                                {"kind": "realsense", "name": "b", "parameters": {"camera_name": "side", "outputs": ["side"]}}]})
    check_cameras(spec, side)
    assert check_operator_keys(spec, rig) is True
    assert check_operator_keys(spec, side) is False          # no keyboard: nothing to agree with
    other = parse_rig({"nodes": [{"kind": "franka"}, {"kind": "keyboard", "parameters": {"key_success": "s"}}]})
    with pytest.raises(TaskFileError, match=r"reward.keys.success = 'y' but the rig .* binds key_success = 's'"):
        check_operator_keys(spec, other)


def test_crop_and_resize_takes_exactly_the_crop():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[0:480, 80:560] = (10, 200, 30)                     # the crop region, one colour
    out = crop_and_resize(frame, (80, 0, 560, 480), 96)
    assert out.shape == (96, 96, 3) and out.dtype == np.uint8 and out.flags.writeable
    assert np.all(out == (10, 200, 30))
    with pytest.raises(ValueError, match=r"crop \[0, 0, 700, 480\] is outside the 640x480 frame"):
        crop_and_resize(frame, (0, 0, 700, 480), 96)


def test_cropped_cameras_in_the_twin_give_the_policy_its_image_size(tmp_path):
    text = FULL.replace("size: 96", "size: 64").replace("reward:", "reward_unused:")
    data = yaml.safe_load(text)
    data.pop("reward_unused")
    data["cameras"]["wrist"]["frame"], data["cameras"]["wrist"]["crop"] = [160, 120], [20, 0, 140, 120]
    data["cameras"]["front"] = {}
    path = _write(tmp_path, yaml.safe_dump(data, sort_keys=False))
    env = tasks.make_env(str(path), obs="pixels", seed=0)
    try:
        obs, _ = env.reset()
        assert obs["wrist"].shape == obs["front"].shape == (64, 64, 3)
        assert env.observation_space["wrist"].shape == (64, 64, 3)
        assert obs["wrist"].std() > 1.0                       # a rendered view, not a blank
        robot = env.unwrapped.robot
        renderer, crop = robot._views["wrist"]
        assert crop == (20, 0, 140, 120)                       # within the 640x480 render limit: unscaled
        obs, *_ = env.step(np.zeros(7, np.float32))
        renderer.update_scene(robot.data, camera="wrist")
        assert np.array_equal(obs["wrist"], crop_and_resize(renderer.render(), crop, 64))
    finally:
        env.close()


WIDOWX_SCENE = """\
# Reach a block with the WidowX: a task file alone, on the WidowX twin.
base: scene
robot: widowx
max_steps: 40
gripper: none
box_low: [0.15, -0.18, 0.015]
box_high: [0.42, 0.18, 0.25]
reset: {pose: [0.28, 0.0, 0.14], random: {xy: 0.01}}
object_xy_range: 0.03
scene:
  - {name: block, shape: box, size: [0.015, 0.015, 0.015], pos: [0.3, 0.0, 0.015], free: true}
  - {name: pad, shape: cylinder, size: [0.03, 0.002], pos: [0.25, -0.1, 0.002], free: false}
success: {kind: reach, object: block, distance: 0.05}
"""


def test_a_yaml_only_widowx_scene_task_steps_and_scores_in_the_widowx_twin(tmp_path, servo_onto):
    from robot_rl.sim.widowx import WidowXTwin
    env = tasks.make_env(str(_write(tmp_path, WIDOWX_SCENE)), obs="state", seed=0)
    try:
        assert isinstance(env.unwrapped.robot, WidowXTwin)
        obs, _ = env.reset(seed=2)
        truth = env.unwrapped.robot.task_state()
        assert set(truth) == {"block_pos", "block_quat", "pad_pos", "pad_quat"}
        assert np.all(np.abs(truth["block_pos"][:2] - [0.3, 0.0]) <= 0.03 + 1e-3)
        assert obs["state"].shape == (20 + 3,)
        obs, reward, terminated, truncated, info = servo_onto(env, "block")
        assert info["success"] and terminated and reward == 1.0
    finally:
        env.close()


def test_a_yaml_only_widowx_scene_task_trains_with_robot_rl_train(tmp_path):
    import json

    from robot_rl.cli import main as cli_main
    path = _write(tmp_path, WIDOWX_SCENE)
    run = tmp_path / "run"
    code = cli_main(["train", "--task", str(path), "--steps", "30", "--run-dir", str(run),
                     "--set", "demos=0", "--set", "learning_starts=20", "--set", "eval_every=0",
                     "--set", "task_overrides={max_steps: 10}", "--set", "agent.hidden_dims=[32, 32]",
                     "--set", "batch_size=16",
                     "--set", "final_eval_episodes=1", "--set", "progress=false",
                     "--set", "agent.critic_ensemble_size=2", "--set", "agent.critic_subsample_size=null"])
    assert code == 0
    result = json.loads((run / "eval.json").read_text())
    assert result["task"] == str(path) and result["env_steps"] >= 30 and result["updates"] > 0


@pytest.mark.parametrize("name", tasks.TASKS)
def test_every_shipped_task_file_loads_with_its_robot_and_namespace(name):
    spec = tasks.make_spec(name)
    assert spec.robot == ("widowx" if name.startswith("widowx") else "franka")
    assert spec.namespace == f"/{spec.robot}" and spec.gripper_mode in ("none", "binary")
    assert spec.operator_keys == {"success": "s", "failure": "f", "reset": "r"}


def test_reset_gains_beyond_what_the_rig_s_controller_accepts_are_refused():
    from robot_rl.tasks.task_file import check_reset_gains
    rig = parse_rig({"nodes": [{"kind": "franka"},
                               {"kind": "controller", "parameters": {"reset_profile": "precision",
                                                                     "translational_stiffness": 2000.0}}]})
    softer = tasks.make_spec("pick_cube", reset_gains={"translational_stiffness": 1500.0})
    assert check_reset_gains(softer, rig) is True
    assert check_reset_gains(tasks.make_spec("pick_cube"), rig) is False     # no reset gains: nothing to hold
    stiffer = tasks.make_spec("pick_cube", reset_gains={"translational_stiffness": 3000.0})
    with pytest.raises(TaskFileError, match=r"reset.gains beyond what the rig .* node /franka/controller accepts"
                                            r".*translational_stiffness 3000 is looser than the start-up 2000"):
        check_reset_gains(stiffer, rig)
    loose = parse_rig({"nodes": [{"kind": "controller", "parameters": {"allow_loosening": True}}]})
    assert check_reset_gains(stiffer, loose) is True


def test_a_run_on_fewer_cameras_keeps_the_file_s_settings_of_those(tmp_path):
    spec = tasks.make_spec(str(_write(tmp_path, FULL)), cameras=["front"])
    assert spec.cameras == ("front",) and spec.camera_crops == {} and spec.camera_frames == {}
    assert spec.camera_topic("front") == "/cameras/side/image_raw"


def test_gripper_mode_grasp_critic_is_learned_by_the_grasp_critic():
    """The task's gripper mode and the run's agent must agree, or the run refuses at start."""
    from robot_rl.config import ConfigError
    from robot_rl.run_env import make_run_env
    from robot_rl.train import TrainConfig

    cfg = TrainConfig(task="pick_cube", task_overrides={"gripper_mode": "grasp_critic"})
    with pytest.raises(ConfigError, match="gripper mode grasp_critic needs the grasp critic"):
        make_run_env(cfg)
    cfg.agent.grasp_critic = True
    make_run_env(cfg).close()
    peg = TrainConfig(task="peg_insert")
    peg.agent.grasp_critic = True
    with pytest.raises(ConfigError, match="gripper mode none"):
        make_run_env(peg)
