"""The set-up tools (tasks/apps/setup_tools.py) against the twin node, over real topics and
parameter services: each tool joins the graph as its own node, as it does next to a robot."""
from __future__ import annotations

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped

from robot_rl.controllers.node import pose_from_msg
from robot_rl.cli import main as cli_main
from robot_rl.tasks.apps import setup_tools


def _twin_tcp(twin_graph) -> np.ndarray:
    inbox = twin_graph.inbox(PoseStamped, "/franka/ee_pose")
    inbox.wait_count(1)
    return pose_from_msg(inbox.msgs[-1])[0]


def test_pose_reads_the_live_tcp_and_the_swept_box(twin_graph):
    got = setup_tools.read_pose("/franka", track_s=1.0, margin=0.02)
    tcp = _twin_tcp(twin_graph)
    assert np.linalg.norm(got["tcp_pos"] - tcp) < 0.01
    assert got["joints"] is not None and len(got["joints"]) == 7
    assert np.all(got["box_low"] <= got["tcp_pos"] - 0.02 + 1e-9)
    assert np.all(got["box_high"] >= got["tcp_pos"] + 0.02 - 1e-9)
    # The twin starts with the TCP pointing down (the nominal orientation): small rpy.
    assert np.all(np.abs(got["rpy_from_nominal"]) < 0.2)


def test_cameras_write_a_png_each_with_the_crop_drawn(twin_graph, tmp_path):
    from PIL import Image
    report = setup_tools.snapshot_cameras(["wrist", "front"], tmp_path, seconds=1.5,
                                          crops={"wrist": (10, 10, 100, 100)})
    for cam in ("wrist", "front"):
        assert report[cam]["png"] is not None, cam
        assert (report[cam]["width"], report[cam]["height"]) == (128, 128)
        assert report[cam]["rate_hz"] > 3.0
    img = np.asarray(Image.open(report["wrist"]["png"]))
    assert tuple(img[50, 10]) == (255, 0, 0)          # the crop's left edge is drawn
    with pytest.raises(setup_tools.SetupError, match="outside"):
        setup_tools.snapshot_cameras(["wrist"], tmp_path, seconds=0.5, crops={"wrist": (0, 0, 500, 20)})


def test_check_passes_on_the_twin_and_names_what_is_wrong(twin_graph):
    results = setup_tools.check_task("pick_cube", "/franka", "pixels", seconds=2.0)
    failed = [(r.what, r.detail) for r in results if r.required and not r.ok]
    assert not failed, failed
    assert {"/franka/ee_pose", "/cameras/wrist/image_raw", "/franka/reset service"} <= {r.what for r in results}
    # A task whose images are 64 px: the twin's 128 px cameras fail the size check, by name.
    results = setup_tools.check_task("pick_cube", "/franka", "pixels", seconds=1.0,
                                     task_overrides={"image_size": 64})
    bad = {r.what for r in results if not r.ok and r.required}
    assert bad == {"/cameras/wrist/image_raw", "/cameras/front/image_raw"}


def test_check_of_an_absent_robot_ends_in_one_error_line(capsys):
    code = cli_main(["check", "pick_cube", "--namespace", "/nobody", "--obs", "state", "--seconds", "0.5",
                     "--discovery", "0.5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("robot-rl: error: pick_cube cannot run on /nobody")
    assert "/nobody/ee_pose" in err[0]


def test_gains_lists_sets_and_reports_refusals(twin_graph):
    values, refused = setup_tools.node_parameters("/franka/twin")
    assert "translational_stiffness" in values and not refused
    softer = float(values["translational_stiffness"]) * 0.5
    values, refused = setup_tools.node_parameters("/franka/twin", {"translational_stiffness": softer})
    assert not refused and values["translational_stiffness"] == pytest.approx(softer)
    values, refused = setup_tools.node_parameters("/franka/twin", {"translational_stiffness": -1.0})
    assert set(refused) == {"translational_stiffness"} and refused["translational_stiffness"]
    assert values["translational_stiffness"] == pytest.approx(softer)     # unchanged


def test_gains_parse_values_as_yaml():
    assert setup_tools.parse_assignments(["a=300", "b=[1, 2.5, 3]", "c=true"]) == \
        {"a": 300, "b": [1.0, 2.5, 3.0], "c": True}
    with pytest.raises(setup_tools.SetupError, match="NAME=VALUE"):
        setup_tools.parse_assignments(["novalue"])


def test_move_holds_a_target_one_centimetre_up(twin_graph):
    r = setup_tools.move_offset("/franka", np.array([0.0, 0.0, 0.01]), seconds=2.0)
    assert r["target"][2] == pytest.approx(r["start"][2] + 0.01)
    assert r["error_m"] < 0.004, r
    with pytest.raises(setup_tools.SetupError, match="max-offset"):
        setup_tools.move_offset("/franka", np.array([0.0, 0.0, 0.2]), seconds=1.0)


def test_check_with_a_rig_that_lacks_a_camera_fails_before_listening(tmp_path, capsys):
    rig = tmp_path / "rig.yaml"
    rig.write_text("nodes: [{kind: franka}, {kind: realsense, parameters: {camera_name: wrist, outputs: [wrist]}}]")
    code = cli_main(["check", "pick_cube", "--rig", str(rig), "--namespace", "/nobody", "--discovery", "0.1",
                     "--seconds", "0.1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cameras ['front'] are not in the rig" in err[0]
