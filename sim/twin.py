"""The in-process MuJoCo twin of a torque-controlled FR3 with the Franka hand.

It implements `tasks.robot.RobotInterface`. As on the hardware, the policy only sets an
equilibrium pose (10 Hz); the Cartesian impedance law from `controllers.impedance` turns it
into joint torques at every physics step (1 kHz), and gravity is compensated by the "robot"
(MuJoCo's body gravcomp, like the FR3's own compensation), not by the law.

Per physics step: mj_step1 (kinematics, bias forces, gravcomp at the current state) ->
TCP pose and Jacobian into preallocated buffers -> law -> mj_step2. Splitting the step lets the
law see the state it acts on, with no extra forward pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from controllers.impedance import CartesianImpedanceController, ImpedanceConfig
from sim import GL_HELP, mujoco_import
from sim.scene import (ARM_JOINTS, FINGER_JOINTS, FINGER_OPEN, HAND_CTRL_OPEN, SceneConfig,
                       build_model)
from tasks.robot import RobotState

mujoco = mujoco_import()

# A comfortable FR3 posture with the TCP pointing down and the hand's x axis along base +x
# (q7 = +pi/4): the IK seed and the law's nullspace target.
HOME_Q = np.array([0.0, -0.3, 0.0, -2.3, 0.0, 2.0, np.pi / 4])


def wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    return np.array([q[1], q[2], q[3], q[0]])


def xyzw_to_wxyz(q: np.ndarray) -> np.ndarray:
    return np.array([q[3], q[0], q[1], q[2]])


@dataclass
class TwinConfig:
    scene: SceneConfig = field(default_factory=SceneConfig)
    control_hz: float = 10.0
    impedance: ImpedanceConfig = field(default_factory=ImpedanceConfig)
    settle_s: float = 0.1           # physics time after a reset so objects come to rest
    default_tcp_pos: tuple[float, float, float] = (0.5, 0.0, 0.25)
    default_tcp_quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)


class Renderers:
    """One mujoco.Renderer per image size, made on first use and reused for every camera and
    every frame (a renderer owns a GL context and buffers: costly to make, cheap to reuse)."""

    def __init__(self, model):
        self._model = model
        self._by_size: dict[int, Any] = {}

    def render(self, data, camera: str, size: int) -> np.ndarray:
        renderer = self._by_size.get(size)
        if renderer is None:
            try:
                renderer = mujoco.Renderer(self._model, size, size)
            except Exception as err:  # FatalError, no libEGL/libOSMesa, no display for glfw...
                raise RuntimeError(
                    f"cannot create a MuJoCo offscreen renderer ({err!r}).\n{GL_HELP}") from err
            self._by_size[size] = renderer
        renderer.update_scene(data, camera=camera)
        return renderer.render()

    def close(self) -> None:
        for renderer in self._by_size.values():
            renderer.close()
        self._by_size.clear()


class TwinRobot:
    """MuJoCo twin implementing tasks.robot.RobotInterface."""

    def __init__(self, config: TwinConfig | SceneConfig | None = None):
        if config is None:
            config = TwinConfig()
        if isinstance(config, SceneConfig):
            config = TwinConfig(scene=config)
        self.config = config
        self.control_hz = float(config.control_hz)
        self.model = build_model(config.scene)
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.n_substeps = int(round(1.0 / (self.control_hz * m.opt.timestep)))

        qadr = [m.joint(j).qposadr[0] for j in ARM_JOINTS]
        dadr = [m.joint(j).dofadr[0] for j in ARM_JOINTS]
        if qadr != list(range(7)) or dadr != list(range(7)):
            raise AssertionError("the arm joints must come first in qpos/qvel")
        self._finger_qadr = [m.joint(j).qposadr[0] for j in FINGER_JOINTS]
        self._tcp = m.site("tcp").id
        self._hand_ctrl = m.actuator("hand").id
        self._hand_bodies = [m.body(n).id for n in ("hand", "left_finger", "right_finger")]
        self._qlow, self._qhigh = m.jnt_range[:7, 0].copy(), m.jnt_range[:7, 1].copy()

        # Preallocated per-physics-step buffers.
        self._jacp = np.zeros((3, m.nv))
        self._jacr = np.zeros((3, m.nv))
        self._jac = np.zeros((6, 7))
        self._quat_wxyz = np.zeros(4)
        self._quat_xyzw = np.zeros(4)
        self._coriolis = np.zeros(7)
        self._vel6 = np.zeros(6)

        self.controller = CartesianImpedanceController(config.impedance, q_nullspace=HOME_Q.copy())
        self._gripper_cmd = 0.0
        self._renderers = Renderers(self.model)
        if config.scene.cameras:  # fail now, with the install hint, not at the first step
            self._renderers.render(self.data, config.scene.cameras[0], config.scene.image_size)
        self._ik_data = mujoco.MjData(m)

    # ---- RobotInterface --------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> RobotState:
        """Puts the arm at the requested TCP pose (IK from HOME_Q), places the task objects,
        and lets physics settle. Deterministic: the same options give the same state.

        options: tcp_pos (3,), tcp_quat (4, xyzw), gripper (0..1), cube_pos (3,),
        cube_quat (4, xyzw), hole_pos (3,), <name>_pos / <name>_quat of a task file's free
        objects. Missing keys take the defaults. `seed` is unused:
        the randomness lives in the env (tasks.env), which passes explicit options."""
        del seed
        opts = dict(options or {})
        m, d = self.model, self.data
        tcp_pos = np.asarray(opts.get("tcp_pos", self.config.default_tcp_pos), dtype=float)
        tcp_quat = np.asarray(opts.get("tcp_quat", self.config.default_tcp_quat), dtype=float)
        # IK first (on scratch data): an unreachable pose raises and leaves the scene as it was.
        q = self.solve_ik(tcp_pos, tcp_quat)
        mujoco.mj_resetData(m, d)
        d.qpos[:7] = q
        self._gripper_cmd = float(np.clip(opts.get("gripper", 0.0), 0.0, 1.0))
        d.qpos[self._finger_qadr] = FINGER_OPEN * (1.0 - self._gripper_cmd)
        d.ctrl[self._hand_ctrl] = HAND_CTRL_OPEN * (1.0 - self._gripper_cmd)
        if _has_body(m, "cube"):
            self._place_free_body("cube", opts.get("cube_pos"), opts.get("cube_quat"))
        for p in self.config.scene.primitives:
            if p.free:
                self._place_free_body(p.name, opts.get(f"{p.name}_pos"), opts.get(f"{p.name}_quat"))
        if _has_body(m, "hole") and "hole_pos" in opts:
            mocap = m.body("hole").mocapid[0]
            d.mocap_pos[mocap] = np.asarray(opts["hole_pos"], dtype=float)
        mujoco.mj_forward(m, d)
        self.controller.reset(d.site_xpos[self._tcp].copy(), self._site_quat_xyzw())
        self.controller.set_target(tcp_pos, tcp_quat)
        self._run_physics(int(round(self.config.settle_s / m.opt.timestep)))
        return self._state()

    def command(self, pos: np.ndarray, quat: np.ndarray, gripper: float) -> None:
        pos = np.asarray(pos, dtype=float)
        quat = np.asarray(quat, dtype=float)
        if pos.shape != (3,) or quat.shape != (4,) or not np.isfinite(gripper):
            raise ValueError(f"bad command shapes pos {pos.shape}, quat {quat.shape}")
        if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(quat))):
            raise ValueError("non-finite equilibrium pose")
        self.controller.set_target(pos, quat)
        self._gripper_cmd = float(np.clip(gripper, 0.0, 1.0))
        self.data.ctrl[self._hand_ctrl] = HAND_CTRL_OPEN * (1.0 - self._gripper_cmd)

    def wait_step(self) -> RobotState:
        self._run_physics(self.n_substeps)
        return self._state()

    def recover(self) -> None:
        # The twin has no reflexes; like libfranka's automatic recovery, it holds where it is.
        d = self.data
        mujoco.mj_forward(self.model, d)
        self.controller.reset(d.site_xpos[self._tcp].copy(), self._site_quat_xyzw())

    def task_state(self) -> dict[str, np.ndarray]:
        m, d = self.model, self.data
        out: dict[str, np.ndarray] = {}
        if _has_body(m, "cube"):
            b = m.body("cube").id
            out["cube_pos"] = d.xpos[b].copy()
            out["cube_quat"] = wxyz_to_xyzw(d.xquat[b])
        if _has_body(m, "hole"):
            out["hole_pos"] = d.xpos[m.body("hole").id].copy()
            out["hole_top"] = d.site_xpos[m.site("hole_top").id].copy()
            out["peg_tip"] = d.site_xpos[m.site("peg_tip").id].copy()
        for p in self.config.scene.primitives:
            b = m.body(p.name).id
            out[f"{p.name}_pos"] = d.xpos[b].copy()
            out[f"{p.name}_quat"] = wxyz_to_xyzw(d.xquat[b])
        return out

    def render(self, camera: str = "front", size: int | None = None) -> np.ndarray:
        """One image from any scene camera now (e.g. videos of a state-only env); size <= 480."""
        return self._renderers.render(self.data, camera, size or self.config.scene.image_size)

    def close(self) -> None:
        self._renderers.close()

    # ---- physics ------------------------------------------------------------------------
    def _run_physics(self, n_steps: int) -> None:
        m, d, tcp, ctrl = self.model, self.data, self._tcp, self.controller
        jacp, jacr, jac, cor = self._jacp, self._jacr, self._jac, self._coriolis
        qw, qx = self._quat_wxyz, self._quat_xyzw
        for _ in range(n_steps):
            mujoco.mj_step1(m, d)
            mujoco.mju_mat2Quat(qw, d.site_xmat[tcp])
            qx[:3] = qw[1:]
            qx[3] = qw[0]
            mujoco.mj_jacSite(m, d, jacp, jacr, tcp)
            jac[:3] = jacp[:, :7]
            jac[3:] = jacr[:, :7]
            # Coriolis/centrifugal only: qfrc_bias holds gravity too, which gravcomp cancels.
            np.subtract(d.qfrc_bias[:7], d.qfrc_gravcomp[:7], out=cor)
            try:
                d.ctrl[:7] = ctrl.compute(d.qpos[:7], d.qvel[:7], d.site_xpos[tcp], qx, jac, cor)
            except ValueError:  # NonFiniteError: as a driver would, send the hold torque first
                d.ctrl[:7] = ctrl.hold_torque()
                raise
            mujoco.mj_step2(m, d)
        mujoco.mj_forward(m, d)  # observe the state physics ended in

    def _site_quat_xyzw(self) -> np.ndarray:
        q = np.zeros(4)
        mujoco.mju_mat2Quat(q, self.data.site_xmat[self._tcp])
        return wxyz_to_xyzw(q)

    def _place_free_body(self, name: str, pos, quat) -> None:
        m, d = self.model, self.data
        joint = m.body(name).jntadr[0]
        adr = m.jnt_qposadr[joint]
        if pos is not None:
            d.qpos[adr:adr + 3] = np.asarray(pos, dtype=float)
        if quat is not None:
            d.qpos[adr + 3:adr + 7] = xyzw_to_wxyz(np.asarray(quat, dtype=float))

    def solve_ik(self, pos: np.ndarray, quat_xyzw: np.ndarray, iters: int = 200) -> np.ndarray:
        """Joint angles putting the TCP at (pos, quat): damped least squares from HOME_Q, with a
        nullspace pull to HOME_Q. Kinematics only, on a scratch MjData: deterministic."""
        m, d = self.model, self._ik_data
        pos = np.asarray(pos, dtype=float)
        d.qpos[:] = self.model.qpos0
        d.qpos[:7] = HOME_Q
        target_wxyz = xyzw_to_wxyz(np.asarray(quat_xyzw, dtype=float))
        target_wxyz /= np.linalg.norm(target_wxyz)
        jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        cur, neg, dq_err = np.zeros(4), np.zeros(4), np.zeros(4)
        err = np.zeros(6)
        for _ in range(iters):
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            err[:3] = pos - d.site_xpos[self._tcp]
            mujoco.mju_mat2Quat(cur, d.site_xmat[self._tcp])
            mujoco.mju_negQuat(neg, cur)
            mujoco.mju_mulQuat(dq_err, target_wxyz, neg)
            mujoco.mju_quat2Vel(err[3:], dq_err, 1.0)
            if np.linalg.norm(err) < 1e-7:
                break
            mujoco.mj_jacSite(m, d, jacp, jacr, self._tcp)
            jac = np.vstack([jacp[:, :7], jacr[:, :7]])
            jjt = jac @ jac.T + 1e-4 * np.eye(6)
            pinv = jac.T @ np.linalg.inv(jjt)
            step = pinv @ err + (np.eye(7) - pinv @ jac) @ (0.1 * (HOME_Q - d.qpos[:7]))
            d.qpos[:7] = np.clip(d.qpos[:7] + step, self._qlow, self._qhigh)
        if np.linalg.norm(err[:3]) > 5e-3 or np.linalg.norm(err[3:]) > 0.02:
            raise ValueError(f"TCP pose {pos.tolist()} {list(quat_xyzw)} is out of the FR3's reach "
                             f"(IK error {np.linalg.norm(err[:3]):.3f} m, {np.linalg.norm(err[3:]):.3f} rad)")
        return d.qpos[:7].copy()

    # ---- observation --------------------------------------------------------------------
    def _state(self) -> RobotState:
        m, d = self.model, self.data
        mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_SITE, self._tcp, self._vel6, 0)
        force, torque = self._tcp_wrench()
        fingers = float(np.mean(d.qpos[self._finger_qadr]))
        size = self.config.scene.image_size
        images = {cam: self._renderers.render(d, cam, size) for cam in self.config.scene.cameras}
        return RobotState(
            tcp_pos=d.site_xpos[self._tcp].copy(),
            tcp_quat=self._site_quat_xyzw(),
            tcp_vel=np.concatenate([self._vel6[3:], self._vel6[:3]]),
            tcp_force=force,
            tcp_torque=torque,
            gripper=float(np.clip(1.0 - fingers / FINGER_OPEN, 0.0, 1.0)),
            q=d.qpos[:7].copy(),
            dq=d.qvel[:7].copy(),
            images=images,
            stamp=float(d.time),
        )

    def _tcp_wrench(self) -> tuple[np.ndarray, np.ndarray]:
        """External wrench the world applies to the hand (contacts on hand, fingers, held peg),
        base frame, torque about the TCP: pressing down on a table reads +z. It stands for the
        FR3's O_F_ext_hat_K; contacts on the arm's links above the hand are not included."""
        m, d = self.model, self.data
        mujoco.mj_rnePostConstraint(m, d)
        force, torque = np.zeros(3), np.zeros(3)
        tcp = d.site_xpos[self._tcp]
        for b in self._hand_bodies:
            # cfrc_ext is [torque, force] about subtree_com of the body's root (the c-frame).
            f = d.cfrc_ext[b, 3:]
            t = d.cfrc_ext[b, :3]
            origin = d.subtree_com[m.body_rootid[b]]
            force += f
            torque += t + np.cross(origin - tcp, f)
        return force, torque


def _has_body(model, name: str) -> bool:
    return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name) >= 0
