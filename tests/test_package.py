"""The package serves pip and colcon alike, and keeps the layout's import rules."""
import ast
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_layout_from_design_is_kept():
    for folder in ("robot_rl", "controllers", "drivers", "tasks", "sim", "launch", "tests", "bench"):
        assert (ROOT / folder).is_dir(), folder
    assert (ROOT / "package.xml").is_file()


def test_package_xml_is_format_3_ament_python():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.tag == "package" and root.attrib["format"] == "3"
    assert root.findtext("name") == "robot_rl"
    assert root.find("export").findtext("build_type") == "ament_python"
    for dep in ("rclpy", "std_msgs", "sensor_msgs", "geometry_msgs", "std_srvs"):
        assert dep in {e.text for e in root.findall("exec_depend")}, dep


def test_colcon_needs_are_present():
    assert (ROOT / "resource" / "robot_rl").is_file()          # ament index marker
    cfg = (ROOT / "setup.cfg").read_text()
    assert "script_dir=$base/lib/robot_rl" in cfg and "install_scripts=$base/lib/robot_rl" in cfg
    setup = (ROOT / "setup.py").read_text()
    assert "share/ament_index/resource_index/packages" in setup
    assert 'f"share/{PACKAGE}", ["package.xml"]' in setup and "launch/*_launch.py" in setup


def test_cli_entry_point_is_installed_and_runs():
    exe = Path(sys.executable).parent / "robot-rl"
    assert exe.exists(), "pip install -e . should put robot-rl on the venv's PATH"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "train" in out.stdout and "eval" in out.stdout


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_learning_core_never_imports_ros():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "robot_rl").rglob("*.py")
                 if _imports(p) & {"rclpy", "std_msgs", "sensor_msgs", "geometry_msgs", "std_srvs"}]
    assert not offenders, f"robot_rl/ must not import ROS: {offenders}"


def test_controllers_import_rclpy_only_in_their_node_module():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "controllers").rglob("*.py")
                 if "rclpy" in _imports(p) and not p.name.endswith("node.py")]
    assert not offenders, offenders
