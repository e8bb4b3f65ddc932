"""The launch files and parameter files, checked statically (launch_ros is not installed here;
where it is, the launch descriptions are also built): they start the same nodes as
`robot-rl up` (tasks.bringup.PROFILES), name parameter files that exist and parse as ROS 2
params files for those nodes, and start executables that are console entry points."""
from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from tasks.bringup import PROFILES, child_command, params_file

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch"


def _launch_nodes(path: Path) -> tuple[list[dict], list[str]]:
    """The keyword arguments of every Node(...) call, and every string constant ending in .yaml."""
    tree = ast.parse(path.read_text(), str(path))
    nodes, yamls = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Node":
            kwargs = {}
            for kw in node.keywords:
                try:
                    kwargs[kw.arg] = ast.literal_eval(kw.value)
                except ValueError:
                    kwargs[kw.arg] = ast.unparse(kw.value)
            nodes.append(kwargs)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(".yaml"):
            yamls.append(node.value)
    return nodes, yamls


def _console_scripts() -> dict[str, str]:
    text = (ROOT / "setup.py").read_text()
    return dict(re.findall(r'"([\w-]+)\s*=\s*([\w.]+:\w+)"', text))


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_launch_file_starts_the_profile_with_its_parameter_file(profile):
    path = LAUNCH / f"{profile}_launch.py"
    nodes, yamls = _launch_nodes(path)
    assert yamls == [f"{profile}.yaml"] and (LAUNCH / yamls[0]).is_file()
    assert params_file(profile) == LAUNCH / f"{profile}.yaml"
    launched = [(n["executable"], n["name"], n["namespace"], tuple(map(tuple, n.get("remappings", []))))
                for n in nodes]
    expected = [(s.executable, s.name, s.namespace, s.remappings) for s in PROFILES[profile]]
    assert launched == expected, "the launch file and tasks.bringup.PROFILES must start the same graph"
    for n in nodes:
        assert n["package"] == "robot_rl" and n["parameters"] == "[params]", n


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_parameter_file_is_a_ros2_params_file_for_the_profile_nodes(profile):
    data = yaml.safe_load((LAUNCH / f"{profile}.yaml").read_text())
    fqns = {f"{s.namespace.rstrip('/')}/{s.name}" for s in PROFILES[profile]}
    for key, section in data.items():
        assert key in fqns, f"{profile}.yaml: {key} is not a node of the profile ({sorted(fqns)})"
        assert set(section) == {"ros__parameters"} and isinstance(section["ros__parameters"], dict), key
    if profile == "twin":      # the twin profile is complete: the twin's section is there
        assert "/franka/twin" in data


def test_twin_parameters_are_the_ones_the_twin_node_declares(graph):
    """Every parameter the twin profile sets is one the node declares (a typo would be ignored)."""
    from sim.twin_node import TwinNode

    node = graph.add(TwinNode(**graph.kwargs(cameras=[""])))
    given = yaml.safe_load((LAUNCH / "twin.yaml").read_text())["/franka/twin"]["ros__parameters"]
    unknown = [name for name in given if not node.has_parameter(name)]
    assert not unknown, unknown


def test_executables_are_console_entry_points():
    """Each executable whose module exists is a console script `<executable> = <module>:main`
    in setup.py (the lead adds them; the missing ones are printed ready to paste)."""
    scripts = _console_scripts()
    missing = []
    for specs in PROFILES.values():
        for s in specs:
            if importlib.util.find_spec(s.module) is None:
                continue   # a driver not written yet: `robot-rl up` says so (test_ros_processes)
            if scripts.get(s.executable) != f"{s.module}:main":
                missing.append(f'"{s.executable} = {s.module}:main",')
    assert not missing, "add to setup.py console_scripts:\n" + "\n".join(sorted(set(missing)))


def test_processes_mode_runs_the_module_with_the_same_params_and_names():
    spec = PROFILES["franka"][0]
    cmd = child_command(spec, Path("/p.yaml"))
    assert cmd[1:3] == ["-m", spec.module]
    assert cmd[3:] == ["--ros-args", "--params-file", "/p.yaml", "-r", "__ns:=/franka", "-r", "__node:=franka",
                       "-r", "equilibrium_pose:=controller/equilibrium_pose"]


@pytest.mark.skipif(importlib.util.find_spec("launch_ros") is None, reason="launch_ros not installed")
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_launch_descriptions_build_where_launch_ros_exists(profile):
    spec = importlib.util.spec_from_file_location(f"{profile}_launch", LAUNCH / f"{profile}_launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert len(description.entities) == len(PROFILES[profile]) + 1   # + the params_file argument
