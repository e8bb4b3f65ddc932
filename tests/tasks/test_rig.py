"""Rig files (tasks/ros/rig.py): the shipped profiles load, a lab's own rig with two cameras by
serial and an external F/T sensor on its own topic becomes one params file keyed by each
node's full name, and every malformed rig is refused naming the file, node and field."""
from __future__ import annotations

import pytest
import yaml

from robot_rl.tasks.ros.bringup import PROFILES, params_file, resolve_rig
from robot_rl.tasks.ros.rig import NODE_KINDS, RigError, load_rig, parse_rig

LAB_RIG = """
nodes:
  - kind: franka
    remap: {equilibrium_pose: controller/equilibrium_pose}
    parameters: {robot_ip: 172.16.0.2, use_gripper: false}
  - kind: controller
    parameters: {translational_stiffness: 2000.0, box_low: [0.35, -0.2, 0.015]}
  - kind: robotiq
    parameters: {port: /dev/ttyUSB0}
  - kind: ft
    parameters: {sensor: ft300, port: /dev/ttyUSB1}
  - kind: realsense
    name: wrist_camera
    parameters: {serial_no: "123456789012", camera_name: wrist, outputs: [wrist]}
  - kind: realsense
    name: front_camera
    parameters: {serial_no: "210987654321", camera_name: front, outputs: [front]}
  - kind: spacemouse
"""


@pytest.mark.parametrize("profile", PROFILES)
def test_shipped_profiles_are_rig_files_of_known_kinds(profile):
    rig = load_rig(params_file(profile))
    assert rig.nodes and all(n.module in {k.module for k in NODE_KINDS.values()} for n in rig.nodes)
    assert resolve_rig(profile).nodes == rig.nodes


def test_a_lab_rig_becomes_one_params_file_keyed_by_full_names(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text(LAB_RIG)
    rig = resolve_rig(str(path))
    assert [n.fqn for n in rig.nodes] == ["/franka/franka", "/franka/controller", "/franka/robotiq_gripper",
                                          "/franka/ft/ft_sensor", "/wrist_camera", "/front_camera", "/spacemouse"]
    assert rig.nodes[0].ros_args() == ["-r", "equilibrium_pose:=controller/equilibrium_pose"]
    params = yaml.safe_load(rig.to_params_file(tmp_path / "params.yaml").read_text())
    assert params["/wrist_camera"]["ros__parameters"]["serial_no"] == "123456789012"
    assert params["/front_camera"]["ros__parameters"]["outputs"] == ["front"]
    assert "/spacemouse" not in params                        # no parameters, no section
    assert params["/franka/controller"]["ros__parameters"]["box_low"] == [0.35, -0.2, 0.015]


@pytest.mark.parametrize("text, error", [
    ("nodes: []", r"'nodes' is empty"),
    ("robots: []", r"one key, 'nodes'"),
    ("nodes: [{kind: ur5}]", r"nodes\[0\]\.kind: 'ur5' is not a node kind"),
    ("nodes: [{kind: twin, params: {}}]", r"nodes\[0\]: unknown keys \['params'\]"),
    ("nodes: [{kind: realsense}, {kind: realsense}]", r"nodes\[1\] and nodes\[0\] are both /realsense_camera"),
    ("nodes: [{kind: twin, namespace: franka}]", r"nodes\[0\]\.namespace: 'franka' is not an absolute"),
    ("nodes: [{kind: twin, name: 'my twin'}]", r"nodes\[0\]\.name: 'my twin' is not a ROS node name"),
    ("nodes: [{kind: twin, optional: 1}]", r"nodes\[0\]\.optional: must be true or false"),
    ("nodes: [{kind: twin, remap: [a, b]}]", r"nodes\[0\]\.remap: must map topic names"),
    ("nodes: [{kind: twin, parameters: {gains: {k: 1}}}]", r"nodes\[0\]\.parameters\.gains: .* is not a ROS parameter"),
    ("nodes: [{kind: twin, parameters: {task: null}}]", r"nodes\[0\]\.parameters\.task"),
])
def test_malformed_rigs_are_refused_naming_the_field(tmp_path, text, error):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RigError, match=error) as info:
        load_rig(path)
    assert str(path) in str(info.value)


def test_unreadable_rig_files_are_one_clear_error(tmp_path):
    with pytest.raises(RigError, match="cannot read the rig file"):
        load_rig(tmp_path / "missing.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00nodes: [")
    with pytest.raises(RigError, match="not a YAML file"):
        load_rig(tmp_path / "bin.yaml")
    with pytest.raises(RigError, match="neither a profile"):
        resolve_rig("franka_rig.txt")
    assert parse_rig({"nodes": [{"kind": "twin"}]}).nodes[0].fqn == "/franka/twin"


def test_up_with_a_bad_rig_says_so_in_one_line_and_starts_nothing(tmp_path, capsys):
    from robot_rl.tasks.ros.bringup import main
    path = tmp_path / "bad.yaml"
    path.write_text("nodes: [{kind: ur5}]")
    assert main([str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("robot-rl: error:") and "ur5" in err[0]
