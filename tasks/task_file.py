"""Task files: a task is one YAML file, validated on load; the built-in tasks are shipped as such.

    base: pick_cube          # the task logic this file configures: pick_cube, peg_insert,
                             # widowx_pick_cube, or scene (objects and success from this file)
    name: my_pick            # default: the file's name
    max_steps: 120           # then any TaskSpec field of the base (tasks/spec.py and the base's
    box_low: [0.35, -0.2, 0.015]   # module list them with their units)
    ...

A built-in name (`pick_cube`) means its shipped file, tasks/task_files/pick_cube.yaml; anything
ending in .yaml is a user's file. Errors name the file, the field and what is allowed: an
unknown key, a box with low >= high, a reset pose outside the box, an object or check that
does not fit. `check_cameras` holds a task's cameras against a rig's.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any


SHIPPED_DIR = Path(__file__).resolve().parent / "task_files"


class TaskFileError(ValueError):
    """A task file that does not describe a task; the message names the file and the field."""


def bases() -> dict[str, type]:
    """The task logic a file can configure."""
    from tasks.peg_insert import PegInsertSpec
    from tasks.pick_cube import PickCubeSpec
    from tasks.scene_task import SceneTaskSpec
    from tasks.widowx_pick_cube import WidowXPickCubeSpec
    return {"pick_cube": PickCubeSpec, "peg_insert": PegInsertSpec,
            "widowx_pick_cube": WidowXPickCubeSpec, "scene": SceneTaskSpec}


def shipped_tasks() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SHIPPED_DIR.glob("*.yaml"))}


def is_task_file(name: str) -> bool:
    return str(name).endswith((".yaml", ".yml"))


def task_path(name: str) -> Path:
    """A built-in task's file, or a user's task file; TaskFileError naming both kinds if neither."""
    shipped = shipped_tasks()
    if name in shipped:
        return shipped[name]
    if is_task_file(name):
        return Path(name)
    raise TaskFileError(f"unknown task {name!r}: built-in tasks are {sorted(shipped)}, "
                        "or give a task file (my_task.yaml)")


def _plain(value: Any) -> Any:
    """YAML lists become tuples (TaskSpec's vector fields are tuples); mappings stay."""
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    return value


def read_task_file(path: str | Path) -> tuple[str, dict[str, Any]]:
    """(base, fields) of a task file, with the keys checked against the base's fields."""
    from tasks.yaml_file import read_yaml
    path = Path(path)
    data = read_yaml(path, TaskFileError, "task file")
    if not isinstance(data, dict):
        raise TaskFileError(f"{path}: a task file is a mapping of fields, got {type(data).__name__}")
    data = dict(data)
    base = data.pop("base", None)
    known_bases = bases()
    if base not in known_bases:
        raise TaskFileError(f"{path}: base: {base!r} is not a task base; bases: {sorted(known_bases)}")
    cls = known_bases[base]
    fields = {f.name for f in dataclasses.fields(cls)}
    if "success" in data:               # the file's word for the scene base's success_check
        data["success_check"] = data.pop("success")
    unknown = set(data) - fields
    if unknown:
        raise TaskFileError(f"{path}: unknown fields {sorted(unknown)} for base {base}; "
                            f"fields: {sorted(fields)}")
    data.setdefault("name", path.stem)
    return base, {k: _plain(v) for k, v in data.items()}


def build_spec(path: str | Path, **overrides: Any) -> Any:
    """The TaskSpec a task file describes (overrides: fields changed for one run)."""
    path = Path(path)
    base, fields = read_task_file(path)
    cls = bases()[base]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(overrides) - known
    if unknown:
        raise TaskFileError(f"{path}: unknown spec fields {sorted(unknown)} in task_overrides for base "
                            f"{base}; fields: {sorted(known)}")
    fields.update({k: _plain(v) for k, v in overrides.items()})
    try:
        spec = cls(**fields)
    except (TypeError, ValueError) as e:
        raise TaskFileError(f"{path}: {e}") from None
    # A run's overrides may move the box alone (a driver that resets to its joint home does
    # not use tcp_start); the file itself must hold a reset pose inside its box.
    _check_ranges(spec, path, reset_in_box=not overrides)
    return spec


def _check_ranges(spec: Any, path: Path, reset_in_box: bool = True) -> None:
    def bad(field: str, value: Any, allowed: str) -> TaskFileError:
        return TaskFileError(f"{path}: {field} = {value!r}: allowed {allowed}")

    if not 0.5 <= spec.control_hz <= 1000:
        raise bad("control_hz", spec.control_hz, "0.5 to 1000 Hz")
    if not 1 <= spec.max_steps <= 100_000:
        raise bad("max_steps", spec.max_steps, "1 to 100000")
    if not 16 <= spec.image_size <= 512:
        raise bad("image_size", spec.image_size, "16 to 512 px")
    if not 0 < spec.action_scale_pos <= 0.1 or not 0 <= spec.action_scale_rot <= 0.5:
        raise bad("action_scale_pos/rot", (spec.action_scale_pos, spec.action_scale_rot),
                  "(0, 0.1] m and [0, 0.5] rad per step")
    q = spec.nominal_quat
    if len(q) != 4 or abs(math.sqrt(sum(v * v for v in q)) - 1.0) > 1e-3:
        raise bad("nominal_quat", q, "a unit quaternion (x, y, z, w)")
    r = spec.tcp_start_xy_range
    for axis in range(3 if reset_in_box else 0):
        lo, hi = spec.tcp_start[axis] - (r if axis < 2 else 0.0), spec.tcp_start[axis] + (r if axis < 2 else 0.0)
        if lo < spec.box_low[axis] or hi > spec.box_high[axis]:
            raise bad("tcp_start", spec.tcp_start, f"inside the box {spec.box_low}..{spec.box_high} "
                      f"with its random range +-{r} m in x and y")
    if len(set(spec.cameras)) != len(spec.cameras) or not all(str(c).isidentifier() for c in spec.cameras):
        raise bad("cameras", spec.cameras, "unique names of letters, digits and _")


def rig_cameras(rig: Any) -> set[str]:
    """The camera names a rig publishes (/cameras/<name>/...): its RealSense outputs, its twin's."""
    names: set[str] = set()
    for node in rig.nodes:
        p = node.parameters
        if node.module == "drivers.realsense_node":
            names.update(p.get("outputs") or [p.get("camera_name", "camera")])
        elif node.module == "sim.twin_node":
            names.update(c for c in p.get("cameras", ["wrist", "front"]) if c)
    return names


def check_cameras(spec: Any, rig: Any) -> None:
    missing = [c for c in spec.cameras if c not in rig_cameras(rig)]
    if missing:
        raise TaskFileError(f"task {spec.name}: cameras {missing} are not in the rig {rig.path} "
                            f"(it publishes {sorted(rig_cameras(rig))})")


# ------------------------------------------------------------------------------------ CLI

def _summary(path: Path) -> str:
    base, fields = read_task_file(path)
    comment = next((line[1:].strip() for line in path.read_text().splitlines() if line.startswith("#")), "")
    return f"base {base}: {comment}"


def cmd_tasks(args: Any) -> int:
    """Lists the built-in tasks and the task files in --dir (validating each); with FILE,
    validates that file and prints the task it describes."""
    import sys
    if args.file:
        try:
            spec = build_spec(task_path(args.file))
        except TaskFileError as e:
            print(f"robot-rl: error: {e}", file=sys.stderr)
            return 2
        print(f"{args.file}: a valid task ({type(spec).__name__})")
        for f in dataclasses.fields(spec):
            print(f"  {f.name}: {getattr(spec, f.name)!r}")
        return 0
    print("built-in tasks (tasks/task_files):")
    for name, path in shipped_tasks().items():
        print(f"  {name:<18} {_summary(path)}")
    bad = 0
    for folder in args.dir or []:
        files = sorted(p for p in Path(folder).glob("*.y*ml"))
        print(f"task files in {folder}:")
        for path in files:
            try:
                build_spec(path)
                print(f"  {str(path):<30} {_summary(path)}")
            except TaskFileError as e:
                bad += 1
                print(f"  {str(path):<30} INVALID: {e}")
    return 2 if bad else 0


def register(subparsers) -> None:
    p = subparsers.add_parser("tasks", help="list the built-in tasks and your task files, or check one file")
    p.add_argument("file", nargs="?", help="a task file (or built-in name) to validate and print")
    p.add_argument("--dir", action="append", help="also list (and validate) the task files in this folder")
    p.set_defaults(func=cmd_tasks)
