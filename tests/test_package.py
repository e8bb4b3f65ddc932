"""The package serves pip and colcon alike, and keeps the layout's import rules."""
import ast
import re
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


# ---------------------------------------------------------------- layering (docs/architecture.md)
# Bottom up. A module may import its own layer and the layers below it, never one above.
CORE, SIM, ENV, ROS, APPS = range(5)
LAYER_NAMES = ("core (robot contract, rotations, control law, learning)", "sim", "env", "ros", "apps")
# The ROS client libraries are the ROS layer: importing one puts a module there.
ROS_PACKAGES = {"rclpy", "std_msgs", "sensor_msgs", "geometry_msgs", "std_srvs", "builtin_interfaces",
                "rcl_interfaces", "launch", "launch_ros", "ament_index_python"}
# Per-file layers where a folder holds more than one role; the rest take their folder's layer.
FILE_LAYERS = {
    # The `robot-rl` command composes every layer (train, bring-up, tools, benchmarks): an app,
    # kept in the robot_rl package because its console script is the package's front door.
    "robot_rl/cli.py": APPS,
    "controllers/node.py": ROS,
    "sim/twin_node.py": ROS,
    # The operator's input vocabulary (key bindings, joy button layout): pure Python with no ROS,
    # read by a task file's reward.keys check, so it sits with the env.
    "drivers/keyboard.py": ENV,
    "drivers/teleop.py": ENV,
}
FOLDER_LAYERS = {"robot_rl": CORE, "controllers": CORE, "sim": SIM, "tasks": ENV, "drivers": ROS,
                 "bench": APPS, "launch": APPS}
# Subfolders split by role (tasks/: specs and env at the top, its ROS layer and its apps below).
SUBFOLDER_LAYERS = {"tasks/ros": ROS, "tasks/apps": APPS}
# Upward imports: none. The core finds the twin tasks through the task-provider entry point
# (robot_rl/run_env.py, tasks/provider.py), and the CLI is an app. Keep it empty.
KNOWN_UPWARD: set[str] = set()


def _layer_of_file(rel: str) -> int:
    if rel in FILE_LAYERS:
        return FILE_LAYERS[rel]
    folder = rel.rsplit("/", 1)[0]
    for sub, layer in SUBFOLDER_LAYERS.items():
        if folder == sub or folder.startswith(sub + "/"):
            return layer
    return FOLDER_LAYERS[rel.split("/")[0]]


# Installed names: the folders beside robot_rl/ are its subpackages (setup.py NAMESPACED).
NAMESPACED = ("controllers", "drivers", "tasks", "sim", "bench")


def _folder_module(module: str) -> str | None:
    """The import name as a path in the checkout: "robot_rl.tasks.frames" -> "tasks.frames",
    "robot_rl.train" -> "robot_rl.train"; None for a module outside the project."""
    parts = module.split(".")
    if parts[0] != "robot_rl":
        return None
    if len(parts) > 1 and parts[1] in NAMESPACED:
        return ".".join(parts[1:])
    return module


def _layer_of_module(module: str) -> int | None:
    """The layer of an imported module, or None for a third-party one (numpy, torch, mujoco...)."""
    top = module.split(".")[0]
    if top in ROS_PACKAGES:
        return ROS
    local = _folder_module(module)
    if local is None:
        return None
    parts = local.split(".")
    for n in range(len(parts), 0, -1):   # the longest prefix that is a file: "tasks.frames" -> tasks/frames.py
        rel = "/".join(parts[:n])
        if (ROOT / f"{rel}.py").is_file():
            return _layer_of_file(f"{rel}.py")
        if (ROOT / rel / "__init__.py").is_file():
            return _layer_of_file(f"{rel}/__init__.py")
    return FOLDER_LAYERS[parts[0]]


def _project_imports(path: Path):
    """(line, module) for every import in a file, lazy ones inside functions included;
    relative imports are resolved against the file's package."""
    package = path.relative_to(ROOT).parent.parts
    if package and package[0] in NAMESPACED:        # tasks/ros/x.py is robot_rl.tasks.ros.x
        package = ("robot_rl", *package)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            if node.module is None:   # `from . import x`: each name is a module of the package
                for alias in node.names:
                    yield node.lineno, f"{module}.{alias.name}"
            else:
                # `from robot_rl import tasks` imports the module robot_rl.tasks; `from x import f`
                # imports x.
                names = [f"{module}.{a.name}" for a in node.names]
                submodules = [n for n in names if _is_project_module(n)]
                for name in submodules:
                    yield node.lineno, name
                if len(submodules) < len(names):
                    yield node.lineno, module


def _is_project_module(module: str) -> bool:
    local = _folder_module(module)
    if local is None:
        return False
    rel = local.replace(".", "/")
    return (ROOT / f"{rel}.py").is_file() or (ROOT / rel / "__init__.py").is_file()


def _upward_imports() -> list[tuple[str, int, str, int, int]]:
    found = []
    for folder in FOLDER_LAYERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            mine = _layer_of_file(rel)
            for line, module in _project_imports(path):
                theirs = _layer_of_module(module)
                if theirs is not None and theirs > mine:
                    found.append((rel, line, module, mine, theirs))
    return found


def test_no_module_imports_a_layer_above_its_own():
    found = _upward_imports()
    new = [f"{rel}:{line} imports {module} ({LAYER_NAMES[theirs]}), above its own layer "
           f"({LAYER_NAMES[mine]})" for rel, line, module, mine, theirs in found
           if f"{rel}: {module}" not in KNOWN_UPWARD]
    assert not new, "upward imports (docs/architecture.md):\n" + "\n".join(new)
    stale = KNOWN_UPWARD - {f"{rel}: {module}" for rel, _, module, _, _ in found}
    assert not stale, f"fixed, so delete from KNOWN_UPWARD: {sorted(stale)}"


def test_the_layer_scan_sees_an_upward_import(tmp_path, monkeypatch):
    """The scan itself: a core module importing the env, lazily inside a function, is caught."""
    (tmp_path / "robot_rl").mkdir()
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "__init__.py").write_text("")
    (tmp_path / "robot_rl" / "bad.py").write_text("import numpy\n\ndef f():\n    from robot_rl.tasks import make_env\n"
                                                  "\ndef g():\n    from robot_rl import config, tasks\n")
    (tmp_path / "robot_rl" / "config.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _upward_imports() == [("robot_rl/bad.py", 4, "robot_rl.tasks", CORE, ENV),
                                 ("robot_rl/bad.py", 7, "robot_rl.tasks", CORE, ENV)]


def test_the_layer_scan_places_the_tasks_subfolders(tmp_path, monkeypatch):
    """tasks/ros is the ROS layer and tasks/apps the apps: the env may import neither, the ROS
    layer not the apps, and tasks/ros/__init__.py is the ROS layer too."""
    for folder in ("tasks", "tasks/ros", "tasks/apps"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "tasks" / "env_bad.py").write_text("from robot_rl.tasks.ros import backend\n")
    (tmp_path / "tasks" / "ros" / "backend.py").write_text("from ..apps import deploy\n")
    (tmp_path / "tasks" / "apps" / "deploy.py").write_text("from robot_rl.tasks.ros import backend\n"
                                                           "import robot_rl.tasks.env_bad\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert sorted(_upward_imports()) == [("tasks/env_bad.py", 1, "robot_rl.tasks.ros.backend", ENV, ROS),
                                         ("tasks/ros/backend.py", 1, "robot_rl.tasks.apps.deploy", ROS, APPS)]


CODE_IMPORT = re.compile(rf"(?:^|[;\n]\s*)(?:import|from) (?:{'|'.join(NAMESPACED)})\b(?:\.\w+)*(?: import|\s*(?:;|$))", re.M)


def test_project_folders_are_imported_by_their_installed_names():
    """`import tasks` (or sim, drivers, controllers, bench) works in a checkout only by accident
    and breaks an install: the installed names are robot_rl.tasks, ... (setup.py)."""
    found = []
    for folder in (*FOLDER_LAYERS, "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            for node in ast.walk(ast.parse(path.read_text(), rel)):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                         else [])
                found += [f"{rel}:{node.lineno} imports {n}" for n in names if n.split(".")[0] in NAMESPACED]
                # Code in a string (`python -c "import tasks; ..."`, a child's script) counts too.
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and CODE_IMPORT.search(node.value):
                    found.append(f"{rel}:{node.lineno} runs code importing {CODE_IMPORT.search(node.value).group(0)!r}")
    assert not found, "import these as robot_rl.<folder>:\n" + "\n".join(found)


def _entry_points() -> list[str]:
    """'module:attr' or 'module' targets of setup.py's console_scripts and plugin entry points."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    groups = ast.literal_eval(next(k.value for k in call.keywords if k.arg == "entry_points"))
    return [line.split("=", 1)[1].strip() for lines in groups.values() for line in lines]


def test_every_entry_point_target_imports():
    """Each console script and plugin of setup.py names a module and a function that exist (run in
    a fresh interpreter: importing the node modules loads rclpy and the device libraries)."""
    targets = _entry_points()
    assert "robot_rl.cli:main" in targets and "robot_rl.tasks.ros.actor_node:main" in targets and "robot_rl.tasks.provider" in targets
    check = ("import importlib, sys\n"
             "for t in sys.argv[1:]:\n"
             "    mod, _, attr = t.partition(':')\n"
             "    m = importlib.import_module(mod)\n"
             "    assert not attr or callable(getattr(m, attr, None)), t\n")
    out = subprocess.run([sys.executable, "-c", check, *targets], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]


# Private names (a leading underscore) imported from another module: the module's own business.
KNOWN_PRIVATE: set[str] = set()   # private names imported across modules; keep it empty


def test_no_module_imports_another_modules_private_names():
    found = set()
    for folder in FOLDER_LAYERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            for node in ast.walk(ast.parse(path.read_text(), rel)):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.update(f"{rel}: {node.module}.{a.name}" for a in node.names
                                 if a.name.startswith("_") and not a.name.startswith("__"))
    assert not found - KNOWN_PRIVATE, f"private names imported across modules: {sorted(found - KNOWN_PRIVATE)}"
    assert not KNOWN_PRIVATE - found, f"fixed, so delete from KNOWN_PRIVATE: {sorted(KNOWN_PRIVATE - found)}"


def test_a_checkout_resolves_exactly_the_five_folders_and_an_install_none(tmp_path):
    """robot_rl/__init__.py's finder, with no install in the way (python -S: no site-packages,
    no editable finder): robot_rl.tasks etc. are the folders beside robot_rl/, and nothing else
    in the checkout (setup.py, tests/, launch/) becomes a robot_rl submodule. A copy of the
    package without package.xml beside it (an installed one) adds no finder."""
    check = ("import importlib.util as u, sys\n"
             "sys.path.insert(0, sys.argv[1])\n"
             "import robot_rl\n"
             "print(robot_rl.checkout_root())\n"
             "for n in ('robot_rl.tasks', 'robot_rl.sim', 'robot_rl.drivers', 'robot_rl.controllers',\n"
             "          'robot_rl.bench', 'robot_rl.setup', 'robot_rl.tests',\n"
             "          'robot_rl.launch', 'robot_rl.robot_rl'):\n"
             "    s = u.find_spec(n)\n"
             "    print(n, s.origin if s else None)\n")
    out = subprocess.run([sys.executable, "-S", "-c", check, str(ROOT)], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == str(ROOT)
    found = dict(line.split(" ", 1) for line in lines[1:])
    for folder in ("tasks", "sim", "drivers", "controllers", "bench"):
        assert found[f"robot_rl.{folder}"] == str(ROOT / folder / "__init__.py")
    assert [found[n] for n in ("robot_rl.setup", "robot_rl.tests", "robot_rl.launch", "robot_rl.robot_rl")] == ["None"] * 4

    installed = tmp_path / "site"
    (installed / "robot_rl").mkdir(parents=True)
    (installed / "robot_rl" / "__init__.py").write_text((ROOT / "robot_rl" / "__init__.py").read_text())
    (installed / "tasks").mkdir()
    (installed / "tasks" / "__init__.py").write_text("")   # another distribution's top-level `tasks`
    out = subprocess.run([sys.executable, "-S", "-c", check, str(installed)], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "None" and "robot_rl.tasks None" in lines
