"""Builds the twin's MuJoCo scenes in code: the FR3 + Franka hand from franky-sim, a table, the
task objects, cameras and the TCP site.

One function, `build_model(SceneConfig)`, composes an `mujoco.MjSpec` and compiles it. The task
objects are chosen by `SceneConfig.objects`; no XML is copied per task.

Differences from franky-sim's fr3.xml, and why:
- the joint position servos become torque motors (ctrlrange = actuatorfrcrange), because the
  impedance law in controllers/ commands torques, as on the real robot;
- every robot body gets `gravcomp=1`: the FR3 compensates gravity itself, so the torques the law
  sends are on top of gravity compensation (MuJoCo applies it as a passive force, `qfrc_gravcomp`);
- timestep 1 ms, the rate of libfranka's torque loop;
- without `pretty`, the high-poly visual meshes are dropped and the collision meshes drawn
  instead, with no shadows and no anti-aliasing: ~20x faster software rendering.
"""
from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from typing import Literal

import numpy as np

from robot_rl.sim import mujoco_import

mujoco = mujoco_import()

ARM_JOINTS = tuple(f"fr3_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("finger_joint1", "finger_joint2")
# Franka's flange -> TCP offset for the Franka hand (the "EE" frame of libfranka).
TCP_OFFSET_Z = 0.1034
# The hand actuator: ctrl 0..255 maps to finger opening 0..0.04 m each (franky-sim / menagerie).
HAND_CTRL_OPEN = 255.0
CAMERAS = ("wrist", "front")
FINGER_OPEN = 0.04


PRIMITIVE_SHAPES = ("box", "cylinder", "sphere")


@dataclass(frozen=True)
class Primitive:
    """One task object of a task file's twin scene. size: half sizes as MuJoCo takes them (box:
    3 half extents; cylinder: radius, half height; sphere: radius). A free one has a free joint
    (it can be pushed, grasped, lifted) and is placed at every reset; a fixed one is a target,
    a wall or a fixture. Its pose is in the twin's ground truth as <name>_pos / <name>_quat."""
    name: str
    shape: str = "box"
    size: tuple[float, ...] = (0.02, 0.02, 0.02)
    pos: tuple[float, float, float] = (0.5, 0.0, 0.02)
    free: bool = True
    mass: float = 0.05
    rgba: tuple[float, float, float, float] = (0.2, 0.5, 0.9, 1.0)

    def __post_init__(self) -> None:
        sizes = {"box": 3, "cylinder": 2, "sphere": 1}
        if self.shape not in sizes:
            raise ValueError(f"object {self.name!r}: shape {self.shape!r} is not one of {PRIMITIVE_SHAPES}")
        if len(self.size) != sizes[self.shape] or not all(0.002 <= v <= 0.5 for v in self.size):
            raise ValueError(f"object {self.name!r}: a {self.shape} takes {sizes[self.shape]} half size(s) "
                             f"in [0.002, 0.5] m, got {list(self.size)}")
        if len(self.pos) != 3 or not all(np.isfinite(self.pos)):
            raise ValueError(f"object {self.name!r}: pos must be 3 finite numbers, got {list(self.pos)}")
        if not 0.001 <= self.mass <= 5.0:
            raise ValueError(f"object {self.name!r}: mass {self.mass} outside [0.001, 5] kg")
        if len(self.rgba) != 4 or not all(0.0 <= c <= 1.0 for c in self.rgba):
            raise ValueError(f"object {self.name!r}: rgba must be 4 numbers in [0, 1]")


@dataclass
class SceneConfig:
    objects: Literal["none", "cube", "peg_hole"] = "none"
    cameras: tuple[str, ...] = ()          # rendered into every RobotState: "wrist", "front"
    image_size: int = 128
    pretty: bool = False                   # textured high-poly meshes, shadows, anti-aliasing
    timestep: float = 0.001
    cube_half_size: float = 0.025
    cube_mass: float = 0.08
    peg_half_width: float = 0.0125         # square peg, held in the hand
    peg_length: float = 0.07
    peg_tip_below_tcp: float = 0.03
    hole_clearance: float = 0.003          # per side
    hole_depth: float = 0.035
    # Extra fixed boxes (pos xyz, half-size xyz), e.g. a wall for the contact-force test.
    fixed_boxes: tuple[tuple[tuple[float, float, float], tuple[float, float, float]], ...] = ()
    table_height: float = 0.0              # the robot base stands on the table top
    primitives: tuple[Primitive, ...] = ()  # a task file's objects (tasks/task_file.py)


def franky_fr3_xml() -> str:
    return str(importlib.resources.files("franky_sim") / "assets" / "fr3.xml")


def _meshdir() -> str:
    # fr3.xml says meshdir="assets", but its meshes live in assets/meshes next to the file.
    return str(importlib.resources.files("franky_sim") / "assets" / "meshes")


def check_cameras(names) -> None:
    """Every twin has the same two cameras; a scene asking for another is a config error."""
    unknown = set(names) - set(CAMERAS)
    if unknown:
        raise ValueError(f"unknown cameras {sorted(unknown)}; the twin has {CAMERAS}")


def look_at_quat(pos, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """MuJoCo camera quaternion (w, x, y, z) for a camera at `pos` looking at `target`.

    A MuJoCo camera looks along its -z axis with +y up in the image."""
    pos, target, up = (np.asarray(v, dtype=float) for v in (pos, target, up))
    back = pos - target
    back /= np.linalg.norm(back)
    right = np.cross(up, back)
    if np.linalg.norm(right) < 1e-9:  # looking along `up`: pick any right vector
        right = np.cross((0.0, 1.0, 0.0), back)
    right /= np.linalg.norm(right)
    cam_up = np.cross(back, right)
    mat = np.column_stack([right, cam_up, back])
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, mat.ravel())
    return quat


def add_camera(body, name: str, pos, target, fovy: float, up=(0.0, 0.0, 1.0)) -> None:
    """A camera on `body` (the world or a robot link) at `pos`, looking at `target` (body frame)."""
    body.add_camera(name=name, pos=list(pos), fovy=fovy, quat=look_at_quat(pos, target, up=up))


def _load_robot(spec: mujoco.MjSpec, pretty: bool) -> None:
    spec.meshdir = _meshdir()
    for act in spec.actuators:
        if act.name == "hand":
            continue
        joint = spec.joint(act.target)
        limit = float(joint.actfrcrange[1])
        act.set_to_motor()
        act.inheritrange = 0.0
        act.ctrllimited = 1
        act.ctrlrange = [-limit, limit]
        act.forcelimited = 0
    for body in spec.bodies:
        if body.name not in ("world",):
            body.gravcomp = 1.0
    for name in FINGER_JOINTS:
        # The fr3 childclass gives the fingers the arm's joint friction (1.1 N), which stalls
        # the hand's weak position servo half way; menagerie's panda hand has none.
        spec.joint(name).frictionloss = 0.0
    if not pretty:
        colours = {"hand": (0.9, 0.9, 0.92, 1), "left_finger": (0.25, 0.25, 0.25, 1),
                   "right_finger": (0.25, 0.25, 0.25, 1)}
        for geom in list(spec.geoms):
            if geom.classname.name == "visual":
                spec.delete(geom)
        used = {g.meshname for g in spec.geoms if g.meshname}
        for mesh in list(spec.meshes):
            if mesh.name not in used:
                spec.delete(mesh)
        for geom in spec.geoms:
            geom.group = 2  # drawn by the default renderer groups (0, 1, 2)
            geom.rgba = colours.get(geom.parent.name, (0.95, 0.95, 0.95, 1))
            geom.material = ""


def build_spec(cfg: SceneConfig) -> mujoco.MjSpec:
    spec = mujoco.MjSpec.from_file(franky_fr3_xml())
    _load_robot(spec, cfg.pretty)
    spec.option.timestep = cfg.timestep
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC  # stabler grasps than pyramidal
    spec.option.impratio = 10.0
    spec.visual.global_.offwidth = max(640, cfg.image_size)
    spec.visual.global_.offheight = max(480, cfg.image_size)
    if not cfg.pretty:
        spec.visual.quality.shadowsize = 0
        spec.visual.quality.offsamples = 0
    for key in list(spec.keys):  # franky's keyframe has no entries for our objects
        spec.delete(key)

    world = spec.worldbody
    light = world.add_light(name="top", pos=[0.5, 0.0, 1.5], dir=[0, 0, -1])
    light.castshadow = bool(cfg.pretty)
    light.diffuse = [0.8, 0.8, 0.8]
    light.ambient = [0.3, 0.3, 0.3]
    # Table top at z = table_height; the robot base stands on it.
    world.add_geom(name="table", type=mujoco.mjtGeom.mjGEOM_BOX,
                   size=[0.6, 0.6, 0.02], pos=[0.45, 0.0, cfg.table_height - 0.02],
                   rgba=[0.55, 0.45, 0.35, 1], group=0)

    hand = spec.body("hand")
    tcp = hand.add_site(name="tcp", pos=[0, 0, TCP_OFFSET_Z], size=[0.005], group=4)
    del tcp

    if cfg.objects == "cube":
        add_cube(spec, cfg)
    elif cfg.objects == "peg_hole":
        _add_peg(hand, cfg)
        _add_hole(spec, cfg)
    for p in cfg.primitives:
        add_primitive(spec, p, cfg.table_height)
    for i, (pos, half) in enumerate(cfg.fixed_boxes):
        world.add_geom(name=f"fixed_box{i}", type=mujoco.mjtGeom.mjGEOM_BOX, size=list(half),
                       pos=list(pos), rgba=[0.4, 0.4, 0.8, 1], group=0)

    check_cameras(cfg.cameras)
    # Both cameras always exist (free unless rendered); cfg.cameras says which go in the state.
    # Wrist: on the hand, behind the fingers, looking at the space between the fingertips
    # (like the RealSense on SERL's Franka hand mount).
    add_camera(hand, "wrist", [0.08, 0.0, 0.03], [0.0, 0.0, 0.16], fovy=70.0, up=[1.0, 0.0, 0.0])
    add_camera(world, "front", [1.05, 0.0, 0.45], [0.5, 0.0, 0.08], fovy=45.0)
    return spec


def add_cube(spec: mujoco.MjSpec, cfg: SceneConfig) -> None:
    h = cfg.cube_half_size
    cube = spec.worldbody.add_body(name="cube", pos=[0.5, 0.0, cfg.table_height + h])
    cube.add_freejoint(name="cube_free")
    cube.add_geom(name="cube", type=mujoco.mjtGeom.mjGEOM_BOX, size=[h, h, h],
                  mass=cfg.cube_mass, rgba=[0.85, 0.15, 0.15, 1], condim=4,
                  friction=[1.0, 0.01, 0.001], group=0)


def add_primitive(spec: mujoco.MjSpec, p: Primitive, table_height: float) -> None:
    shape = {"box": mujoco.mjtGeom.mjGEOM_BOX, "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER,
             "sphere": mujoco.mjtGeom.mjGEOM_SPHERE}[p.shape]
    body = spec.worldbody.add_body(name=p.name, pos=[p.pos[0], p.pos[1], table_height + p.pos[2]])
    if p.free:
        body.add_freejoint(name=f"{p.name}_free")
    size = list(p.size) + [0.0] * (3 - len(p.size))
    body.add_geom(name=p.name, type=shape, size=size, mass=p.mass, rgba=list(p.rgba), condim=4,
                  friction=[1.0, 0.01, 0.001], group=0)


def _add_peg(hand, cfg: SceneConfig) -> None:
    # The peg is part of the hand: held firmly between the fingertips, its tip below the TCP.
    w, half_len = cfg.peg_half_width, cfg.peg_length / 2
    tip_below_tcp = cfg.peg_tip_below_tcp
    hand.add_geom(name="peg", type=mujoco.mjtGeom.mjGEOM_BOX, size=[w, w, half_len],
                  pos=[0, 0, TCP_OFFSET_Z + tip_below_tcp - half_len], mass=0.05,
                  rgba=[0.15, 0.35, 0.85, 1], group=2, friction=[0.5, 0.005, 0.0001])
    hand.add_site(name="peg_tip", pos=[0, 0, TCP_OFFSET_Z + tip_below_tcp], size=[0.003], group=4)


def _add_hole(spec: mujoco.MjSpec, cfg: SceneConfig) -> None:
    # A block with a square through-hole, built from four boxes; a mocap body so that reset can
    # move it. The table is the hole's floor.
    hw = cfg.peg_half_width + cfg.hole_clearance   # hole half width
    outer = hw + 0.03
    hd = cfg.hole_depth / 2
    block = spec.worldbody.add_body(name="hole", mocap=True,
                                    pos=[0.5, 0.0, cfg.table_height])
    wall_half = (outer - hw) / 2
    for i, (px, py, sx, sy) in enumerate([
        (hw + wall_half, 0, wall_half, outer), (-hw - wall_half, 0, wall_half, outer),
        (0, hw + wall_half, hw, wall_half), (0, -hw - wall_half, hw, wall_half),
    ]):
        block.add_geom(name=f"hole_wall{i}", type=mujoco.mjtGeom.mjGEOM_BOX, size=[sx, sy, hd],
                       pos=[px, py, hd], rgba=[0.2, 0.65, 0.3, 1], group=0,
                       friction=[0.5, 0.005, 0.0001])
    block.add_site(name="hole_top", pos=[0, 0, cfg.hole_depth], size=[0.003], group=4)


def build_model(cfg: SceneConfig) -> mujoco.MjModel:
    return build_spec(cfg).compile()
