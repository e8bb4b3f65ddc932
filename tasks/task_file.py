"""Task files: a task is one YAML file, validated on load; the built-in tasks are shipped as such.

    base: pick_cube          # the task logic this file configures: pick_cube, peg_insert,
                             # widowx_pick_cube, or scene (objects and success from this file)
    name: my_pick            # default: the file's name
    robot: {model: franka, namespace: /franka}
    max_steps: 120           # then any TaskSpec field of the base (tasks/spec.py and the base's
    box_low: [0.35, -0.2, 0.015]   # module list them with their units)
    cameras:                 # a list of names, or per camera its topic, frame, crop (and size)
      wrist: {topic: /cameras/wrist/image_raw, frame: [640, 480], crop: [80, 0, 560, 480]}
    gripper: binary          # none | binary | grasp_critic, or {mode: none, hold: 0.7}
    reset: {pose: [0.5, 0.0, 0.2], rpy: [0, 0, 0], random: {xy: 0.02, z: 0.0, yaw: 0.0},
            gains: {translational_stiffness: 3000.0}}
    reward: {classifier: clf/classifier.safetensors, threshold: 0.7,
             keys: {success: s, failure: f, reset: r}, state_check: "gripper>=0.5"}
    ...

The sections (robot, cameras as a mapping, gripper, reset, reward) are the file's words for
TaskSpec fields (SECTIONS below); a field may be given flat or in its section, not both.

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
    from robot_rl.tasks.peg_insert import PegInsertSpec
    from robot_rl.tasks.pick_cube import PickCubeSpec
    from robot_rl.tasks.scene_task import SceneTaskSpec
    from robot_rl.tasks.widowx_pick_cube import WidowXPickCubeSpec
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


# section -> {key in the file: TaskSpec field}
SECTIONS: dict[str, dict[str, str]] = {
    "robot": {"model": "robot", "namespace": "robot_namespace"},
    "gripper": {"mode": "gripper_mode", "hold": "gripper_fixed", "penalty": "gripper_penalty"},
    "reset": {"pose": "tcp_start", "rpy": "tcp_start_rpy", "gains": "reset_gains"},
    "reset.random": {"xy": "tcp_start_xy_range", "z": "tcp_start_z_range", "yaw": "tcp_start_yaw_range"},
    "reward": {"classifier": "reward_classifier", "threshold": "reward_threshold",
               "keys": "operator_keys", "state_check": "success_state_check"},
}
CAMERA_KEYS = ("topic", "frame", "crop", "size")


def _section(path: Path, name: str, value: Any, out: dict[str, Any]) -> None:
    """Moves one section's keys to their TaskSpec fields in `out`."""
    if not isinstance(value, dict):
        raise TaskFileError(f"{path}: {name} must be a mapping with keys {sorted(SECTIONS[name])}"
                            + (" and random" if name == "reset" else "") + f", got {value!r}")
    for key, v in value.items():
        if name == "reset" and key == "random":
            _section(path, "reset.random", v, out)
            continue
        target = SECTIONS[name].get(key)
        if target is None:
            allowed = sorted(SECTIONS[name]) + (["random"] if name == "reset" else [])
            raise TaskFileError(f"{path}: {name}.{key}: unknown key; allowed: {allowed}")
        if target in out:
            raise TaskFileError(f"{path}: {name}.{key} and {target} both given: keep one")
        out[target] = v


def _cameras(path: Path, value: Any, out: dict[str, Any]) -> None:
    """cameras: [wrist, front], or {wrist: {topic, frame, crop, size}, front: {}}."""
    if not isinstance(value, dict):
        out["cameras"] = value
        return
    out["cameras"] = tuple(value)
    topics, frames, crops, sizes = {}, {}, {}, {}
    for cam, cfg in value.items():
        cfg = cfg or {}
        if not isinstance(cfg, dict):
            raise TaskFileError(f"{path}: cameras.{cam} must be a mapping with keys {list(CAMERA_KEYS)}, got {cfg!r}")
        unknown = set(cfg) - set(CAMERA_KEYS)
        if unknown:
            raise TaskFileError(f"{path}: cameras.{cam}: unknown keys {sorted(unknown)}; allowed: {list(CAMERA_KEYS)}")
        for key, store in (("topic", topics), ("frame", frames), ("crop", crops), ("size", sizes)):
            if key in cfg:
                store[cam] = _plain(cfg[key])
    if sizes:
        # The image encoder takes every camera at one size (it batches them): one image_size.
        if len(set(sizes.values())) > 1:
            raise TaskFileError(f"{path}: cameras.*.size = {sizes}: allowed one size for every camera "
                                "(the image encoder batches the cameras)")
        size = next(iter(sizes.values()))
        if out.get("image_size", size) != size:
            raise TaskFileError(f"{path}: cameras.*.size {size} and image_size {out['image_size']} differ: keep one")
        out["image_size"] = size
    for field, store in (("camera_topics", topics), ("camera_frames", frames), ("camera_crops", crops)):
        if store:
            if field in out:
                raise TaskFileError(f"{path}: {field} and the cameras section both given: keep one")
            out[field] = store


def _unfold_sections(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """The file's sections as flat TaskSpec fields (errors name section.key)."""
    out = {k: v for k, v in data.items() if k not in SECTIONS and k != "cameras"}
    if isinstance(data.get("robot"), str):              # robot: widowx
        data = {**data, "robot": {"model": data["robot"]}}
    if isinstance(data.get("gripper"), str):            # gripper: binary
        data = {**data, "gripper": {"mode": data["gripper"]}}
    for name in ("robot", "gripper", "reset", "reward"):
        if name in data:
            _section(path, name, data[name], out)
    if "cameras" in data:
        _cameras(path, data["cameras"], out)
    return out


def _resolve_relative(path: Path, fields: dict[str, Any]) -> None:
    """A classifier path in the file is relative to the file's folder. It need not exist where
    the task is only described (a learner on another machine): `check_reward_file` holds it
    where it is used (`robot-rl tasks FILE`, `robot-rl check`; the actor loads it)."""
    clf = fields.get("reward_classifier")
    if clf:
        resolved = Path(clf).expanduser()
        fields["reward_classifier"] = str(resolved if resolved.is_absolute() else (path.parent / resolved).resolve())


def check_reward_file(spec: Any) -> None:
    """The task's classifier file exists (TaskFileError naming the field otherwise)."""
    if spec.reward_classifier and not Path(spec.reward_classifier).is_file():
        raise TaskFileError(f"task {spec.name}: reward.classifier = {spec.reward_classifier!r}: allowed an "
                            "existing classifier file (robot-rl train-classifier writes one)")


def read_task_file(path: str | Path) -> tuple[str, dict[str, Any]]:
    """(base, fields) of a task file, with the keys checked against the base's fields."""
    from robot_rl.tasks.yaml_file import read_yaml
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
    data = _unfold_sections(path, data)
    unknown = set(data) - fields
    if unknown:
        raise TaskFileError(f"{path}: unknown fields {sorted(unknown)} for base {base}; "
                            f"fields: {sorted(fields)}")
    data.setdefault("name", path.stem)
    robot = data.get("robot", cls.robot)
    from robot_rl.tasks.spec import ROBOT_MODELS
    if base != "scene" and robot in ROBOT_MODELS and robot != cls.robot:
        raise TaskFileError(f"{path}: robot.model = {robot!r}: base {base} runs on {cls.robot}; allowed "
                            f"{cls.robot!r}, or base scene (any robot) or a base of that robot")
    _resolve_relative(path, data)
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
    if "cameras" in overrides:        # a run on fewer cameras keeps the file's settings of those
        for name in ("camera_topics", "camera_frames", "camera_crops"):
            if name in fields and name not in overrides:
                fields[name] = {c: v for c, v in fields[name].items() if c in tuple(overrides["cameras"])}
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
    ranges = (spec.tcp_start_xy_range, spec.tcp_start_xy_range, spec.tcp_start_z_range)
    for axis in range(3 if reset_in_box else 0):
        lo, hi = spec.tcp_start[axis] - ranges[axis], spec.tcp_start[axis] + ranges[axis]
        if lo < spec.box_low[axis] or hi > spec.box_high[axis]:
            raise bad("tcp_start", spec.tcp_start, f"inside the box {spec.box_low}..{spec.box_high} "
                      f"with its random range +-{ranges[0]} m in x and y, +-{ranges[2]} m in z")
    if len(set(spec.cameras)) != len(spec.cameras) or not all(str(c).isidentifier() for c in spec.cameras):
        raise bad("cameras", spec.cameras, "unique names of letters, digits and _")
    from robot_rl.drivers.keyboard import KeyBindings
    try:                                # the keyboard's other keys (its defaults) stay free
        KeyBindings(**spec.operator_keys)
    except ValueError:
        d = KeyBindings()
        taken = [repr(d.takeover), d.gripper_close, d.gripper_open, *"".join(d.axes)]
        raise bad("reward.keys", spec.operator_keys, f"distinct keys other than the keyboard's {taken}") from None


def rig_cameras(rig: Any) -> set[str]:
    """The camera names a rig publishes (/cameras/<name>/...): its RealSense outputs, its twin's."""
    names: set[str] = set()
    for node in rig.nodes:
        p = node.parameters
        if node.module == "robot_rl.drivers.realsense_node":
            names.update(p.get("outputs") or [p.get("camera_name", "camera")])
        elif node.module == "robot_rl.sim.twin_node":
            names.update(c for c in p.get("cameras", ["wrist", "front"]) if c)
    return names


def check_cameras(spec: Any, rig: Any) -> None:
    """Every camera of the task is one the rig publishes (its topic under /cameras/<name>/)."""
    published = rig_cameras(rig)
    missing = []
    for cam in spec.cameras:
        topic = spec.camera_topic(cam)
        parts = topic.strip("/").split("/")
        name = parts[1] if len(parts) == 3 and parts[0] == "cameras" else None
        if name not in published:
            missing.append(cam if topic == f"/cameras/{cam}/image_raw" else f"{cam} ({topic})")
    if missing:
        raise TaskFileError(f"task {spec.name}: cameras {missing} are not in the rig {rig.path}: allowed "
                            f"its cameras {sorted(published)} (/cameras/<name>/image_raw)")


def check_operator_keys(spec: Any, rig: Any) -> bool:
    """The rig's keyboard node (if any) binds the task's operator keys (reward.keys), and they
    do not collide with its other keys. True when the rig has a keyboard node."""
    from robot_rl.drivers.keyboard import KeyBindings

    keyboards = [n for n in rig.nodes if n.module == "robot_rl.drivers.keyboard_node"]
    defaults = KeyBindings()
    for node in keyboards:
        for role, key in spec.operator_keys.items():
            bound = node.parameters.get(f"key_{role}", getattr(defaults, role))
            if bound != key:
                raise TaskFileError(f"task {spec.name}: reward.keys.{role} = {key!r} but the rig {rig.path}'s "
                                    f"keyboard binds key_{role} = {bound!r}: allowed the same key "
                                    f"(set key_{role}: {key!r} in the rig, or change the task)")
        others = {k: node.parameters.get(f"key_{k}", getattr(defaults, k))
                  for k in ("takeover", "gripper_close", "gripper_open")}
        try:
            KeyBindings(**others, **spec.operator_keys,
                        axes=tuple(node.parameters.get("key_axes", defaults.axes)))
        except ValueError as e:
            raise TaskFileError(f"task {spec.name}: reward.keys with the rig {rig.path}'s keyboard: {e}") from None
    return bool(keyboards)


GAINS_NODE_MODULES = ("robot_rl.controllers.node", "robot_rl.sim.twin_node")   # the nodes a Cartesian reset switches


def check_reset_gains(spec: Any, rig: Any, reset_translational_ki: float = 1000.0) -> bool:
    """The task's reset gains are within what the rig's gains node accepts at run time: its
    start-up gains widened to its reset profile (controllers.node.declare_reset_envelope), or
    anything with allow_loosening. True when the rig has such a node and the task reset gains."""
    from dataclasses import fields as dc_fields

    from robot_rl.controllers.impedance import ImpedanceConfig
    from robot_rl.controllers.limits import envelope, loosenings

    nodes = [n for n in rig.nodes if n.module in GAINS_NODE_MODULES]
    if not spec.reset_gains or not nodes:
        return False
    names = {f.name for f in dc_fields(ImpedanceConfig)}
    for node in nodes:
        p = node.parameters
        if p.get("allow_loosening", False):
            continue
        start = ImpedanceConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in p.items() if k in names})
        allowed = start
        if p.get("reset_profile", "") == "precision":
            allowed = envelope(start, ImpedanceConfig.precision().replace(
                translational_ki=float(p.get("reset_translational_ki", 1000.0))))
        gains = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.reset_gains.items()}
        wanted = ImpedanceConfig.precision().replace(**{"translational_ki": reset_translational_ki, **gains})
        refused = [msg for msg in loosenings(allowed, wanted) if msg.split()[0].split("[")[0] in spec.reset_gains]
        if refused:
            raise TaskFileError(f"task {spec.name}: reset.gains beyond what the rig {rig.path}'s node {node.fqn} "
                                f"accepts (reset_profile {p.get('reset_profile', '')!r}, allow_loosening false): "
                                + "; ".join(refused))
    return True


# ------------------------------------------------------------------------------------ CLI

def _summary(path: Path) -> str:
    base, fields = read_task_file(path)
    comment = next((line[1:].strip() for line in path.read_text().splitlines() if line.startswith("#")), "")
    robot = fields.get("robot", bases()[base].robot)
    return f"{robot:<6} base {base}: {comment}"


def cmd_tasks(args: Any) -> int:
    """Lists the built-in tasks and the task files in --dir (validating each); with FILE,
    validates that file and prints the task it describes."""
    import sys
    if args.file:
        try:
            spec = build_spec(task_path(args.file))
            check_reward_file(spec)
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
                check_reward_file(build_spec(path))
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
