"""Task files (tasks/task_file.py): the built-in tasks are files that give exactly the specs the
code defined; a task written only as a file, with a twin scene, builds, scores and trains with
`robot-rl train`; every malformed file is refused naming the file and the field."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from robot_rl import tasks
from robot_rl.cli import main as cli_main
from robot_rl.tasks.peg_insert import PegInsertSpec
from robot_rl.tasks.pick_cube import PickCubeSpec
from robot_rl.tasks.ros.rig import parse_rig
from robot_rl.tasks.task_file import SHIPPED_DIR, TaskFileError, check_cameras
from robot_rl.tasks.widowx_pick_cube import WidowXPickCubeSpec

REACH = (SHIPPED_DIR / "reach_block.yaml").read_text()


@pytest.mark.parametrize("name, cls", [("pick_cube", PickCubeSpec), ("peg_insert", PegInsertSpec),
                                       ("widowx_pick_cube", WidowXPickCubeSpec)])
def test_built_in_task_files_are_the_specs_the_code_defines(name, cls):
    assert tasks.make_spec(name) == cls()
    assert tasks.make_spec(name, max_steps=50) == cls(max_steps=50)


def _write(tmp_path, text: str, name: str = "my_task.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _edit(tmp_path, **changes):
    data = yaml.safe_load(REACH)
    for k, v in changes.items():
        if v is None:
            data.pop(k, None)
        else:
            data[k] = v
    return _write(tmp_path, yaml.safe_dump(data))


@pytest.mark.parametrize("changes, error", [
    ({"base": "pick_bananas"}, r"base: 'pick_bananas' is not a task base"),
    ({"max_step": 10}, r"unknown fields \['max_step'\]"),
    ({"box_low": [0.7, -0.2, 0.015]}, r"box_low .* must be < box_high"),
    ({"tcp_start": [0.5, 0.19, 0.2]}, r"tcp_start = .*: allowed inside the box"),
    ({"control_hz": 5000.0}, r"control_hz = 5000.0: allowed 0.5 to 1000 Hz"),
    ({"nominal_quat": [0.0, 0.0, 0.0, 0.0]}, r"nominal_quat = .*: allowed a unit quaternion"),
    ({"success": {"kind": "wipe", "object": "block"}}, r"success.kind must be one of"),
    ({"success": {"kind": "reach", "object": "ghost", "distance": 0.05}}, r"success.object 'ghost' is not a scene object"),
    ({"success": {"kind": "reach", "object": "block"}}, r"success of kind reach takes exactly"),
    ({"scene": [{"name": "block", "shape": "cone"}]}, r"shape 'cone' is not one of"),
    ({"scene": [{"name": "block", "size": [0.02, 0.02]}]}, r"a box takes 3 half size"),
    ({"scene": [{"name": "block", "colour": [1, 0, 0, 1]}]}, r"unknown keys \['colour'\]"),
    ({"scene": [{"name": "cube"}]}, r"not cube/hole/table"),
])
def test_malformed_task_files_name_the_file_and_field(tmp_path, changes, error):
    path = _edit(tmp_path, **changes)
    with pytest.raises(TaskFileError, match=error) as info:
        tasks.make_spec(str(path))
    assert str(path) in str(info.value)


def test_unreadable_or_unknown_tasks_are_one_clear_error(tmp_path):
    with pytest.raises(TaskFileError, match="cannot read the task file"):
        tasks.make_spec(str(tmp_path / "missing.yaml"))
    with pytest.raises(TaskFileError, match="not a YAML file"):
        tasks.make_spec(str(_write(tmp_path, "base: [scene", "broken.yaml")))
    with pytest.raises(TaskFileError, match="unknown task 'pick_banana'.*built-in tasks are"):
        tasks.make_spec("pick_banana")
    with pytest.raises(TaskFileError, match="unknown spec fields \\['max_step'\\] in task_overrides"):
        tasks.make_spec("pick_cube", max_step=3)


def test_a_task_s_cameras_must_be_in_the_rig():
    rig = parse_rig({"nodes": [{"kind": "franka"},
                               {"kind": "realsense", "parameters": {"camera_name": "wrist", "outputs": ["wrist"]}}]})
    spec = tasks.make_spec("pick_cube")
    with pytest.raises(TaskFileError, match=r"cameras \['front'\] are not in the rig"):
        check_cameras(spec, rig)
    check_cameras(tasks.make_spec("pick_cube", cameras=["wrist"]), rig)


def test_a_file_task_builds_its_scene_in_the_twin_and_scores_it(tmp_path, servo_onto):
    path = _write(tmp_path, REACH)
    env = tasks.make_env(str(path), obs="state", seed=0)
    try:
        obs, info = env.reset(seed=3)
        truth = env.unwrapped.robot.task_state()
        assert set(truth) >= {"block_pos", "block_quat", "pad_pos"}
        # The block was placed within +-object_xy_range of its pos, on the table.
        assert np.all(np.abs(truth["block_pos"][:2] - [0.5, 0.0]) <= 0.05 + 1e-6)
        assert obs["state"].shape == (20 + 3,)          # proprio + the free block relative to the TCP
        obs, reward, terminated, truncated, info = servo_onto(env, "block")
        assert info["success"] and terminated and reward == 1.0
    finally:
        env.close()


def test_a_file_task_trains_with_robot_rl_train_and_evaluates(tmp_path, capsys):
    path = _write(tmp_path, REACH)
    run = tmp_path / "run"
    code = cli_main(["train", "--task", str(path), "--steps", "100", "--run-dir", str(run),
                     "--set", "demos=0", "--set", "learning_starts=50", "--set", "eval_every=0",
                     "--set", "final_eval_episodes=1", "--set", "progress=false",
                     "--set", "agent.critic_ensemble_size=2", "--set", "agent.critic_subsample_size=null"])
    assert code == 0
    result = json.loads((run / "eval.json").read_text())
    assert result["task"] == str(path) and result["env_steps"] >= 100 and result["updates"] > 0
    assert cli_main(["eval", str(run), "--episodes", "1"]) == 0     # eval rebuilds the same task


def test_scripted_demos_for_a_task_without_an_expert_are_refused(tmp_path):
    from robot_rl.run_env import make_env_and_expert
    from robot_rl.train import collect_demos
    handle = make_env_and_expert(str(_write(tmp_path, REACH)))
    try:
        assert handle.expert is None
        with pytest.raises(ValueError, match="no scripted expert: record demos"):
            collect_demos(handle, buffer=None, episodes=5, seed=0)
    finally:
        handle.close()


def test_robot_rl_tasks_lists_and_validates(tmp_path, capsys):
    good = _write(tmp_path, REACH, "reach.yaml")
    _write(tmp_path, "base: scene\nmax_steps: 0\n", "bad.yaml")
    assert cli_main(["tasks", "--dir", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert "pick_cube" in out and "reach_block" in out
    assert f"{good}" in out and "INVALID" in out
    assert cli_main(["tasks", str(good)]) == 0
