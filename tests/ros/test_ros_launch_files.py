"""The launch files and rig files, checked statically (launch_ros is not installed here; where
it is, the launch descriptions are also built): every profile's launch file starts its shipped
rig file through rig_launch.py, which builds its nodes from tasks.ros.rig as `robot-rl up` does;
the rig files load, name only parameters their nodes declare (the twin), and start
executables that are console entry points."""
from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

from robot_rl.tasks.ros.bringup import PROFILES, child_command, params_file, profile_nodes
from robot_rl.tasks.ros.rig import NODE_KINDS, load_rig

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch"


def _console_scripts() -> dict[str, str]:
    text = (ROOT / "setup.py").read_text()
    return dict(re.findall(r'"([\w-]+)\s*=\s*([\w.]+:\w+)"', text))


@pytest.mark.parametrize("profile", PROFILES)
def test_launch_file_starts_the_profile_s_rig_file(profile):
    tree = ast.parse((LAUNCH / f"{profile}_launch.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "shipped_rig"]
    assert [ast.literal_eval(c.args[0]) for c in calls] == [profile]
    assert params_file(profile) == LAUNCH / f"{profile}.yaml"
    load_rig(params_file(profile))            # a valid rig file


def test_rig_launch_builds_each_node_from_the_rig_spec():
    """rig_launch.py passes every NodeSpec field the composed and process modes use."""
    tree = ast.parse((LAUNCH / "rig_launch.py").read_text())
    nodes = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "Node"]
    assert len(nodes) == 1
    given = {kw.arg: ast.unparse(kw.value) for kw in nodes[0].keywords}
    assert given == {"package": "'robot_rl'", "executable": "spec.executable", "name": "spec.name",
                     "namespace": "spec.namespace", "parameters": "[dict(spec.parameters)]",
                     "remappings": "list(spec.remappings)", "output": "'screen'"}


def test_twin_parameters_are_the_ones_the_twin_node_declares(graph):
    """Every parameter the twin profile sets is one the node declares (a typo would be ignored)."""
    from robot_rl.sim.twin_node import TwinNode

    node = graph.add(TwinNode(**graph.kwargs(cameras=[""])))
    given = profile_nodes("twin")[0].parameters
    unknown = [name for name in given if not node.has_parameter(name)]
    assert given and not unknown, unknown


def test_executables_are_console_entry_points():
    """Each node kind's executable is a console script `<executable> = <module>:main` in setup.py."""
    scripts = _console_scripts()
    missing = [f'"{k.executable} = {k.module}:main",' for k in NODE_KINDS.values()
               if scripts.get(k.executable) != f"{k.module}:main"]
    assert not missing, "add to setup.py console_scripts:\n" + "\n".join(sorted(set(missing)))


def test_processes_mode_runs_the_module_with_the_same_params_and_names():
    spec = profile_nodes("franka")[0]
    cmd = child_command(spec, Path("/p.yaml"))
    assert cmd[1:3] == ["-m", spec.module]
    assert cmd[3:] == ["--ros-args", "--params-file", "/p.yaml", "-r", "__ns:=/franka", "-r", "__node:=franka",
                       "-r", "equilibrium_pose:=controller/equilibrium_pose"]


@pytest.mark.skipif(importlib.util.find_spec("launch_ros") is None, reason="launch_ros not installed")
@pytest.mark.parametrize("profile", PROFILES)
def test_launch_descriptions_build_where_launch_ros_exists(profile):
    spec = importlib.util.spec_from_file_location(f"{profile}_launch", LAUNCH / f"{profile}_launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert len(description.entities) == 2   # the rig argument and the rig's nodes
