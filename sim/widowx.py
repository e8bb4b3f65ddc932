"""MuJoCo twin of the WidowX 250 6-DoF (wx250s): scene composed in code, and the in-process
robot implementing `robot_rl.robot.RobotInterface` (the same API as sim.twin.TwinRobot).

Scene: the link offsets, joint axes, limits and inertials of the published wx250s description
(controllers.widowx_model: the same numbers the IK uses, so the twin's FK is the model's FK);
simple geometry (capsules, boxes), a parallel gripper of two sliding fingers coupled by an
equality; the table, the task objects and the wrist/front cameras as in the Franka scene.

Actuation, as on the hardware: each Dynamixel runs its own position PID (MuJoCo `pid`
actuators: kp, kd, ki with an anti-windup clamp, the force clipped to the servo's stall torque;
the integral term is what removes the gravity droop on the real servos, so there is no gravity
compensation). In front of the servos, the SAME damped least-squares IK as the WidowX driver
(controllers.ik.DLSIK) turns the env's equilibrium pose into joint goals at `ik_hz` (50 Hz,
five IK updates per 10 Hz policy step), each goal within max_velocity / ik_hz of the last.
The goals integrate from the previous goal (not from the measured angles), so the servo's
integral action, not the IK, removes steady-state error.

MuJoCo 3.x (e.g. 3.8.1, which gym-hil 0.1.14 needs) has no `pid` actuator (MjsActuator.set_to_pid
and the PID gain and dynamics types came with 4.0). There each servo is a PD position actuator
(the same kp, dampratio and force limit), and gravity compensation routed through the actuators
(body gravcomp, joint actgravcomp, so it counts against the stall torque) does the integral
term's job of holding the arm against gravity. What that twin lacks: the integral's removal of
other steady loads (a held cube's weight), so it tracks a few millimetres less tightly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from robot_rl.controllers.ik import DLSIK, IKConfig
from robot_rl.controllers.widowx_model import EE_TO_TCP, WIDOWX_250S, WIDOWX_FINGER_RANGE
from robot_rl.sim.arm_twin import ArmTwin, mujoco
from robot_rl.sim.scene import Primitive, SceneConfig, add_camera, add_cube, add_primitive, check_cameras
# MuJoCo >= 4.0 has the servo's own PID actuator; 3.x gets the stand-in in the docstring.
HAS_PID_ACTUATOR = hasattr(mujoco.MjsActuator, "set_to_pid")

ARM_JOINTS = WIDOWX_250S.joint_names
FINGER_JOINTS = ("left_finger", "right_finger")
FINGER_PAD_INSET = 0.009   # the pad's inner face is this far inside the finger joint position
# wx250s: gripper_link -> ee_gripper_link (the TCP) along the approach axis.
TCP_FROM_GRIPPER_LINK = 0.458325 - 0.36475

# Link chain of the wx250s (parent -> child offsets, joint axes; from the xacro / menagerie),
# with the inertials (pos, quat wxyz, mass, diagonal inertia) of the published description.
_LINKS = (
    # body, parent offset, joint axis, inertial pos, inertial quat, mass, diag inertia
    ("shoulder_link", (0, 0, 0.072), (0, 0, 1), (2.23e-05, 4.15e-05, 0.00663),
     (0.0130352, 0.706387, 0.012996, 0.707586), 0.480879, (5.89e-4, 5.56e-4, 3.79e-4)),
    ("upper_arm_link", (0, 0, 0.03865), (0, 1, 0), (0.0171605, 0, 0.191323),
     (0.705539, 0.0470667, -0.0470667, 0.705539), 0.430811, (3.644e-3, 3.463e-3, 3.99e-4)),
    ("upper_forearm_link", (0.04975, 0, 0.25), (0, 1, 0), (0.107963, 0.000116, 0),
     (0.000981, 0.707106, -0.000981, 0.707106), 0.234589, (8.88e-4, 8.88e-4, 3.97e-5)),
    ("lower_forearm_link", (0.175, 0, 0), (1, 0, 0), (0.0374395, 0.00522252, 0),
     (-0.0732511, 0.703302, 0.0732511, 0.703302), 0.220991, (1.834e-4, 1.725e-4, 5.89e-5)),
    ("wrist_link", (0.075, 0, 0), (0, 1, 0), (0.04236, -1.07e-05, 0.010577),
     (0.608721, 0.363497, -0.359175, 0.606895), 0.084957, (3.29e-5, 3.08e-5, 2.68e-5)),
    # gripper_link: the description's diagonal inertia (3e-3) is implausible for a 0.11 kg
    # part (0.17 m radius of gyration); a 6 cm block's is used instead.
    ("gripper_link", (0.065, 0, 0), (1, 0, 0), (0.0325296, 0, 0.0090959),
     (1, 0, 0, 0), 0.110084, (8e-5, 8e-5, 8e-5)),
)
# Drawn/colliding shape per link: capsule from the link origin to `end` (radius), or a box.
_SHAPES = {
    "shoulder_link": ("box", (0, 0, 0.02), (0.035, 0.035, 0.02)),
    "upper_arm_link": ("capsule", (0.04975, 0, 0.25), 0.028),
    "upper_forearm_link": ("capsule", (0.175, 0, 0), 0.022),
    "lower_forearm_link": ("capsule", (0.075, 0, 0), 0.02),
    "wrist_link": ("capsule", (0.065, 0, 0), 0.02),
    "gripper_link": ("box", (0.045, 0, 0), (0.02, 0.045, 0.02)),
}


@dataclass
class ServoConfig:
    """Dynamixel position PID per arm joint (Nm/rad, Nm s/rad, Nm/(rad s)); torque limits are
    the model's stall torques. Roughly the XM430's default gains, stiffened so the twin tracks
    within millimetres like a tuned arm."""
    kp: tuple[float, ...] = (40.0, 80.0, 60.0, 15.0, 15.0, 5.0)
    dampratio: float = 1.0
    ki: tuple[float, ...] = (200.0, 600.0, 400.0, 60.0, 80.0, 20.0)
    # Motor speed limit: a DC motor's torque falls linearly to zero at its no-load speed, i.e.
    # back-EMF damping = stall torque / no-load speed on top of the PID (XM430-W350: 46 rpm at
    # 12 V; XL430-W250: 57 rpm). It is what bounds the real arm's speed when the goal jumps.
    no_load_speed: tuple[float, ...] = (4.82, 4.82, 4.82, 4.82, 4.82, 5.97)   # rad/s
    armature: float = 0.03        # reflected rotor inertia of a ~350:1 Dynamixel gearbox (kg m^2)
    frictionloss: float = 0.05    # Nm
    gripper_kp: float = 400.0     # N/m on the finger slide
    gripper_force: float = 10.0   # N per finger


@dataclass
class WidowXSceneConfig:
    objects: Literal["none", "cube"] = "none"
    cameras: tuple[str, ...] = ()
    image_size: int = 128
    pretty: bool = False          # accepted for make_twin's signature; the WidowX is drawn simply
    timestep: float = 0.002
    cube_half_size: float = 0.02
    cube_mass: float = 0.05
    table_height: float = 0.0
    primitives: tuple[Primitive, ...] = ()  # a task file's objects (tasks/scene_task.py), as on the FR3
    servo: ServoConfig = field(default_factory=ServoConfig)


def build_spec(cfg: WidowXSceneConfig) -> "mujoco.MjSpec":
    model = WIDOWX_250S
    spec = mujoco.MjSpec()
    spec.modelname = "wx250s_twin"
    spec.compiler.degree = False   # joint ranges in radians (MjSpec's default is degrees)
    spec.option.timestep = cfg.timestep
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.impratio = 10.0
    spec.visual.global_.offwidth = max(640, cfg.image_size)
    spec.visual.global_.offheight = max(480, cfg.image_size)
    spec.visual.quality.shadowsize = 0
    spec.visual.quality.offsamples = 0

    world = spec.worldbody
    light = world.add_light(name="top", pos=[0.3, 0.0, 1.5], dir=[0, 0, -1])
    light.castshadow = False
    light.diffuse = [0.8, 0.8, 0.8]
    light.ambient = [0.3, 0.3, 0.3]
    world.add_geom(name="table", type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.5, 0.5, 0.02],
                   pos=[0.25, 0.0, cfg.table_height - 0.02], rgba=[0.55, 0.45, 0.35, 1])

    base = world.add_body(name="base_link", pos=[0, 0, cfg.table_height])
    base.explicitinertial = True
    base.mass, base.ipos, base.inertia = 0.538736, [-0.038, 0.0006, 0.0193], [2.5e-3, 2.1e-3, 6.9e-4]
    base.add_geom(name="base_link", type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.05, 0.05, 0.034],
                  pos=[-0.02, 0, 0.034], rgba=[0.15, 0.15, 0.15, 1])
    dark = [0.12, 0.12, 0.12, 1]
    servo = cfg.servo
    parent = base
    for i, (name, offset, axis, ipos, iquat, mass, inertia) in enumerate(_LINKS):
        body = parent.add_body(name=name, pos=list(offset))
        body.explicitinertial = True
        body.ipos, body.iquat, body.mass, body.inertia = list(ipos), list(iquat), mass, list(inertia)
        joint = model.joint_names[i]
        body.add_joint(name=joint, type=mujoco.mjtJoint.mjJNT_HINGE, axis=list(axis),
                       range=[model.lower[i], model.upper[i]], limited=mujoco.mjtLimited.mjLIMITED_TRUE,
                       armature=servo.armature, frictionloss=servo.frictionloss,
                       damping=float(model.max_effort[i] / servo.no_load_speed[i]))
        kind, a, b = _SHAPES[name]
        if kind == "capsule":
            body.add_geom(name=name, type=mujoco.mjtGeom.mjGEOM_CAPSULE, fromto=[0, 0, 0, *a],
                          size=[b, 0, 0], rgba=dark)
        else:
            body.add_geom(name=name, type=mujoco.mjtGeom.mjGEOM_BOX, pos=list(a), size=list(b),
                          rgba=dark)
        parent = body
    gripper = parent
    _add_fingers(gripper)
    tcp_quat = np.zeros(4)
    mujoco.mju_mat2Quat(tcp_quat, EE_TO_TCP.ravel())
    gripper.add_site(name="tcp", pos=[TCP_FROM_GRIPPER_LINK, 0, 0], quat=tcp_quat, size=[0.005],
                     group=4)

    if not HAS_PID_ACTUATOR:   # MuJoCo 3.x: gravity held through the actuators (module docstring)
        arm_and_hand = {name for name, *_ in _LINKS} | {"left_finger_link", "right_finger_link"}
        for body in spec.bodies:
            if body.name in arm_and_hand:
                body.gravcomp = 1.0
        for joint in model.joint_names:
            spec.joint(joint).actgravcomp = True
    for i, joint in enumerate(model.joint_names):
        act = spec.add_actuator(name=joint, target=joint, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        kp = servo.kp[i]
        if HAS_PID_ACTUATOR:
            act.set_to_pid(kp=kp, dampratio=servo.dampratio, ki=servo.ki[i],
                           imax=float(model.max_effort[i]))
        else:
            act.set_to_position(kp=kp, dampratio=servo.dampratio)
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.ctrlrange = [model.lower[i], model.upper[i]]
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.forcerange = [-model.max_effort[i], model.max_effort[i]]
    grip = spec.add_actuator(name="gripper", target="left_finger", trntype=mujoco.mjtTrn.mjTRN_JOINT)
    grip.set_to_position(kp=servo.gripper_kp, dampratio=1.0)
    grip.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
    grip.ctrlrange = list(WIDOWX_FINGER_RANGE)
    grip.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
    grip.forcerange = [-servo.gripper_force, servo.gripper_force]
    eq = spec.add_equality(type=mujoco.mjtEq.mjEQ_JOINT, name1="right_finger", name2="left_finger")
    eq.data[:5] = [0.0, 1.0, 0.0, 0.0, 0.0]
    spec.add_exclude(bodyname1="base_link", bodyname2="shoulder_link")

    if cfg.objects == "cube":
        add_cube(spec, SceneConfig(cube_half_size=cfg.cube_half_size, cube_mass=cfg.cube_mass,
                                    table_height=cfg.table_height))
        spec.body("cube").pos = [0.3, 0.0, cfg.table_height + cfg.cube_half_size]
    elif cfg.objects != "none":
        raise ValueError(f"the WidowX twin has no {cfg.objects!r} objects (it has: none, cube)")
    for p in cfg.primitives:
        add_primitive(spec, p, cfg.table_height)

    check_cameras(cfg.cameras)
    # Wrist: above the palm, looking along the approach axis at the space between the fingers.
    add_camera(gripper, "wrist", [0.0, 0.0, 0.06], [0.13, 0.0, 0.0], fovy=75.0)
    # Front: across the table, facing the robot, framing the pick workspace.
    add_camera(world, "front", [0.65, 0.0, 0.32], [0.25, 0.0, 0.06], fovy=50.0)
    return spec


def _add_fingers(gripper) -> None:
    """Two fingers sliding sideways (gripper y) from 0.015 to 0.037 m off the centre; each pad's
    inner face sits FINGER_PAD_INSET inside the joint position (a 12 .. 56 mm opening), its
    centre at the TCP's depth along the approach axis."""
    pad_centre = TCP_FROM_GRIPPER_LINK - 0.066
    for side, sign in (("left", 1.0), ("right", -1.0)):
        finger = gripper.add_body(name=f"{side}_finger_link", pos=[0.066, 0, 0])
        finger.explicitinertial = True
        finger.mass, finger.ipos, finger.inertia = 0.016246, [0.0138, 0, 0], [4.8e-6, 3.7e-6, 1.5e-6]
        finger.add_joint(name=f"{side}_finger", type=mujoco.mjtJoint.mjJNT_SLIDE,
                         axis=[0, sign, 0], range=list(WIDOWX_FINGER_RANGE),
                         limited=mujoco.mjtLimited.mjLIMITED_TRUE, armature=0.01, damping=1.0)
        finger.add_geom(name=f"{side}_pad", type=mujoco.mjtGeom.mjGEOM_BOX,
                        pos=[pad_centre, sign * (0.004 - FINGER_PAD_INSET), 0],
                        size=[0.02, 0.004, 0.012], rgba=[0.3, 0.3, 0.3, 1], condim=4,
                        friction=[1.5, 0.01, 0.001])
        finger.add_geom(name=f"{side}_finger_base", type=mujoco.mjtGeom.mjGEOM_BOX,
                        size=[0.006, 0.004, 0.012], rgba=[0.3, 0.3, 0.3, 1])


def build_model(cfg: WidowXSceneConfig) -> "mujoco.MjModel":
    return build_spec(cfg).compile()


@dataclass
class WidowXTwinConfig:
    scene: WidowXSceneConfig = field(default_factory=WidowXSceneConfig)
    control_hz: float = 10.0
    ik_hz: float = 50.0
    ik: IKConfig = field(default_factory=IKConfig)
    settle_s: float = 0.3
    default_tcp_pos: tuple[float, float, float] = (0.3, 0.0, 0.15)
    default_tcp_quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)


class PoseTarget:
    """The twin's equilibrium pose, behind the small part of the impedance controller's API the
    twin node uses (`set_target`, `target`), so sim/twin_node.py drives either twin."""

    def __init__(self, pos, quat):
        self.pos, self.quat = np.array(pos, dtype=float), np.array(quat, dtype=float)

    def set_target(self, pos, quat) -> None:
        pos, quat = np.asarray(pos, dtype=float), np.asarray(quat, dtype=float)
        if pos.shape != (3,) or quat.shape != (4,):
            raise ValueError(f"bad target shapes pos {pos.shape}, quat {quat.shape}")
        norm = float(np.linalg.norm(quat))
        if not (np.all(np.isfinite(pos)) and math.isfinite(norm) and norm > 1e-6):
            raise ValueError("non-finite equilibrium pose or zero quaternion")
        self.pos, self.quat = pos.copy(), quat / norm

    @property
    def target(self) -> tuple[np.ndarray, np.ndarray]:
        return self.pos.copy(), self.quat.copy()

    def set_config(self, config) -> None:
        raise ValueError("the WidowX twin is position-controlled through IK: it has no impedance "
                         "gains to set")


class WidowXTwin(ArmTwin):
    """The WidowX twin: equilibrium pose -> DLS IK (ik_hz) -> joint goals -> servo PIDs (physics rate)."""

    arm_joints = ARM_JOINTS

    def __init__(self, config: WidowXTwinConfig | None = None):
        config = config or WidowXTwinConfig()
        if config.ik_hz < config.control_hz:
            raise ValueError("ik_hz must be >= control_hz")
        model = build_model(config.scene)
        # ctrl addresses: a MuJoCo 4 pid actuator takes two controls (position goal, velocity
        # reference); the goal is the first. MuJoCo 3.x: one control per actuator, at its id.
        ctrladr = getattr(model, "actuator_ctrladr", np.arange(model.nu))
        super().__init__(config, model, ARM_JOINTS, FINGER_JOINTS,
                         hand_bodies=("gripper_link", "left_finger_link", "right_finger_link"),
                         grip_ctrl=int(ctrladr[model.actuator("gripper").id]))
        m = self.model
        self.physics_per_ik = max(1, int(round(1.0 / (config.ik_hz * m.opt.timestep))))
        self.ik_per_step = max(1, int(round(config.ik_hz / self.control_hz)))
        # Physics steps per wait_step (the twin node changes it to its publishing chunk).
        self.n_substeps = self.ik_per_step * self.physics_per_ik
        self._ik_dt = self.physics_per_ik * m.opt.timestep
        self._arm_ctrl = [int(ctrladr[m.actuator(j).id]) for j in ARM_JOINTS]
        self._arm_act = [int(m.actuator_actadr[m.actuator(j).id]) for j in ARM_JOINTS]
        self._arm_ki = np.array([m.actuator_gainprm[m.actuator(j).id, 0] for j in ARM_JOINTS])
        self.ik = DLSIK(WIDOWX_250S, config.ik)
        self.controller = PoseTarget(config.default_tcp_pos, config.default_tcp_quat)
        self._q_goal = WIDOWX_250S.postures["ready"].copy()
        self._since_ik = 0          # physics steps since the last IK update

    @property
    def q_goal(self) -> np.ndarray:
        return self._q_goal.copy()

    # ---- the WidowX's part of ArmTwin -------------------------------------------------------
    def joint_efforts(self) -> np.ndarray:
        """The servos' torques now (Nm): what joint_states.effort carries."""
        return self.data.actuator_force[:6].copy()

    def solve_ik(self, pos: np.ndarray, quat_xyzw: np.ndarray) -> np.ndarray:
        """Joint angles for a TCP pose, from the 'ready' posture; raises if out of reach."""
        result = self.ik.solve_pose(WIDOWX_250S.postures["ready"], pos, quat_xyzw)
        if result.position_error > 2e-3 or result.orientation_error > 0.02:
            raise ValueError(f"TCP pose {np.asarray(pos).tolist()} {np.asarray(quat_xyzw).tolist()} "
                             f"is out of the WidowX's reach (IK error {result.position_error:.3f} m, "
                             f"{result.orientation_error:.3f} rad)")
        return result.q

    def _set_arm_goal(self, q: np.ndarray) -> None:
        self._q_goal = q.copy()
        self._since_ik = 0
        self.data.ctrl[self._arm_ctrl] = q

    def _start_control(self, tcp_pos, tcp_quat) -> None:
        self.controller.set_target(tcp_pos, tcp_quat)
        # Start the servos' integrators where a settled servo holds them: at the gravity torque
        # (so the arm does not sag first and climb back during the settle time).
        if HAS_PID_ACTUATOR:
            self.data.act[self._arm_act] = self.data.qfrc_bias[:6] / self._arm_ki

    def _hold_here(self) -> None:
        """The goal and the target become the measured posture and pose."""
        d = self.data
        self._q_goal = d.qpos[:6].copy()
        d.ctrl[self._arm_ctrl] = self._q_goal
        self.controller.set_target(d.site_xpos[self._tcp].copy(), self._site_quat_xyzw())

    def _finger_position(self, gripper: float) -> float:
        lo, hi = WIDOWX_FINGER_RANGE
        return hi - gripper * (hi - lo)

    _gripper_ctrl = _finger_position   # the finger servo's goal is the finger position

    def _gripper_from_fingers(self, finger: float) -> float:
        lo, hi = WIDOWX_FINGER_RANGE
        return (hi - finger) / (hi - lo)

    def _primitives(self) -> tuple:
        return self.config.scene.primitives

    def _run_physics(self, n_steps: int) -> None:
        """n_steps physics steps, with an IK update every physics_per_ik steps. The count runs on
        across calls, so the IK keeps its rate whatever chunks the caller steps in (the twin
        node steps 1/state_rate s at a time)."""
        m, d = self.model, self.data
        ctrl, target = self._arm_ctrl, self.controller
        for _ in range(n_steps):
            if self._since_ik == 0:
                self._q_goal = self.ik.solve(self._q_goal, target.pos, target.quat, self._ik_dt)
                d.ctrl[ctrl] = self._q_goal
            mujoco.mj_step(m, d)
            self._since_ik = (self._since_ik + 1) % self.physics_per_ik
        mujoco.mj_forward(m, d)


__all__ = ["WidowXTwin", "PoseTarget", "WidowXTwinConfig", "WidowXSceneConfig", "ServoConfig", "build_model",
           "build_spec", "ARM_JOINTS", "FINGER_JOINTS"]
