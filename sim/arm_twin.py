"""The MuJoCo arm twin base: what every in-process twin does the same way, whatever the arm.

It implements robot_rl.robot.RobotInterface over a compiled scene with a `tcp` site: reset
(IK, objects placed, physics settled), command, wait_step, recover, task_state, rendering and
the observed state (TCP pose, twist, external wrench on the hand, gripper). An arm specialises
it (sim.twin.TwinRobot: FR3 under the impedance law; sim.widowx.WidowXTwin: WX250s servos
behind IK) with its IK, its physics step, its gripper mapping and how its control starts.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from robot_rl.robot import RobotState
from robot_rl.sim import GL_HELP, mujoco_import

mujoco = mujoco_import()


def wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    return np.array([q[1], q[2], q[3], q[0]])


def xyzw_to_wxyz(q: np.ndarray) -> np.ndarray:
    return np.array([q[3], q[0], q[1], q[2]])


def has_body(model, name: str) -> bool:
    return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name) >= 0


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


class ArmTwin:
    """The shared part of a MuJoCo arm twin. A subclass sets `controller` (something with
    set_target(pos, quat)) and `n_substeps`, and provides the hooks at the end of this class.

    The config needs: control_hz, settle_s, default_tcp_pos, default_tcp_quat, and a scene
    with cameras and image_size."""

    def __init__(self, config, model, arm_joints, finger_joints, hand_bodies, grip_ctrl: int):
        self.config = config
        self.control_hz = float(config.control_hz)
        self.model = model
        self.data = mujoco.MjData(model)
        m = model
        self.n_arm = len(arm_joints)
        arm = list(range(self.n_arm))
        if [m.joint(j).qposadr[0] for j in arm_joints] != arm or [m.joint(j).dofadr[0] for j in arm_joints] != arm:
            raise AssertionError("the arm joints must come first in qpos/qvel")
        self._finger_qadr = [m.joint(j).qposadr[0] for j in finger_joints]
        self._tcp = m.site("tcp").id
        self._grip_ctrl = grip_ctrl
        self._hand_bodies = [m.body(n).id for n in hand_bodies]
        self._gripper_cmd = 0.0
        self._vel6 = np.zeros(6)
        self._renderers = Renderers(model)
        if config.scene.cameras:  # fail now, with the install hint, not at the first step
            self._renderers.render(self.data, config.scene.cameras[0], config.scene.image_size)

    # ---- RobotInterface --------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> RobotState:
        """Puts the arm at the requested TCP pose (the arm's IK), places the task objects, and
        lets physics settle. Deterministic: the same options give the same state.

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
        d.qpos[:self.n_arm] = q
        self._set_arm_goal(q)
        self._gripper_cmd = float(np.clip(opts.get("gripper", 0.0), 0.0, 1.0))
        d.qpos[self._finger_qadr] = self._finger_position(self._gripper_cmd)
        d.ctrl[self._grip_ctrl] = self._gripper_ctrl(self._gripper_cmd)
        if has_body(m, "cube"):
            self._place_free_body("cube", opts.get("cube_pos"), opts.get("cube_quat"))
        for p in self._primitives():
            if p.free:
                self._place_free_body(p.name, opts.get(f"{p.name}_pos"), opts.get(f"{p.name}_quat"))
        if has_body(m, "hole") and "hole_pos" in opts:
            mocap = m.body("hole").mocapid[0]
            d.mocap_pos[mocap] = np.asarray(opts["hole_pos"], dtype=float)
        mujoco.mj_forward(m, d)
        self._start_control(tcp_pos, tcp_quat)
        self._run_physics(int(round(self.config.settle_s / m.opt.timestep)))
        return self._state()

    def command(self, pos: np.ndarray, quat: np.ndarray, gripper: float) -> None:
        """Sets the equilibrium pose and the gripper; a bad value raises and keeps the last command."""
        pos = np.asarray(pos, dtype=float)
        quat = np.asarray(quat, dtype=float)
        if pos.shape != (3,) or quat.shape != (4,):
            raise ValueError(f"bad command shapes pos {pos.shape}, quat {quat.shape}")
        if not np.isfinite(gripper):
            raise ValueError(f"non-finite gripper command {gripper}")
        if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(quat))):
            raise ValueError("non-finite equilibrium pose")
        self.controller.set_target(pos, quat)
        self._gripper_cmd = float(np.clip(gripper, 0.0, 1.0))
        self.data.ctrl[self._grip_ctrl] = self._gripper_ctrl(self._gripper_cmd)

    def wait_step(self) -> RobotState:
        self._run_physics(self.n_substeps)
        return self._state()

    def recover(self) -> None:
        # A twin has no reflexes; like libfranka's automatic recovery, it holds where it is.
        mujoco.mj_forward(self.model, self.data)
        self._hold_here()

    def task_state(self) -> dict[str, np.ndarray]:
        m, d = self.model, self.data
        out: dict[str, np.ndarray] = {}
        if has_body(m, "cube"):
            b = m.body("cube").id
            out["cube_pos"] = d.xpos[b].copy()
            out["cube_quat"] = wxyz_to_xyzw(d.xquat[b])
        if has_body(m, "hole"):
            out["hole_pos"] = d.xpos[m.body("hole").id].copy()
            out["hole_top"] = d.site_xpos[m.site("hole_top").id].copy()
            out["peg_tip"] = d.site_xpos[m.site("peg_tip").id].copy()
        for p in self._primitives():
            b = m.body(p.name).id
            out[f"{p.name}_pos"] = d.xpos[b].copy()
            out[f"{p.name}_quat"] = wxyz_to_xyzw(d.xquat[b])
        return out

    def render(self, camera: str = "front", size: int | None = None) -> np.ndarray:
        """One image from any scene camera now (e.g. videos of a state-only env); size <= 480."""
        return self._renderers.render(self.data, camera, size or self.config.scene.image_size)

    def close(self) -> None:
        self._renderers.close()

    # ---- shared mechanics ---------------------------------------------------------------
    def _site_quat_xyzw(self) -> np.ndarray:
        q = np.zeros(4)
        mujoco.mju_mat2Quat(q, self.data.site_xmat[self._tcp])
        return wxyz_to_xyzw(q)

    def _place_free_body(self, name: str, pos, quat) -> None:
        m, d = self.model, self.data
        adr = m.jnt_qposadr[m.body(name).jntadr[0]]
        if pos is not None:
            d.qpos[adr:adr + 3] = np.asarray(pos, dtype=float)
        if quat is not None:
            d.qpos[adr + 3:adr + 7] = xyzw_to_wxyz(np.asarray(quat, dtype=float))

    def _state(self) -> RobotState:
        m, d, n = self.model, self.data, self.n_arm
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
            gripper=float(np.clip(self._gripper_from_fingers(fingers), 0.0, 1.0)),
            q=d.qpos[:n].copy(),
            dq=d.qvel[:n].copy(),
            images=images,
            stamp=float(d.time),
        )

    def _tcp_wrench(self) -> tuple[np.ndarray, np.ndarray]:
        """External wrench the world applies to the hand (contacts on palm, fingers, a held peg),
        base frame, torque about the TCP: pressing down on a table reads +z. On the FR3 it stands
        for O_F_ext_hat_K; contacts on the links above the hand are not included."""
        m, d = self.model, self.data
        mujoco.mj_rnePostConstraint(m, d)
        force, torque = np.zeros(3), np.zeros(3)
        tcp = d.site_xpos[self._tcp]
        for b in self._hand_bodies:
            # cfrc_ext is [torque, force] about subtree_com of the body's root (the c-frame).
            f = d.cfrc_ext[b, 3:]
            origin = d.subtree_com[m.body_rootid[b]]
            force += f
            torque += d.cfrc_ext[b, :3] + np.cross(origin - tcp, f)
        return force, torque

    # ---- what an arm provides -----------------------------------------------------------
    def solve_ik(self, pos: np.ndarray, quat_xyzw: np.ndarray) -> np.ndarray:
        """Joint angles putting the TCP at (pos, quat); ValueError when out of reach."""
        raise NotImplementedError

    def joint_efforts(self) -> np.ndarray:
        """The arm's joint torques now (Nm): what joint_states.effort carries."""
        raise NotImplementedError

    def _run_physics(self, n_steps: int) -> None:
        """n_steps physics steps under the arm's control, then mj_forward."""
        raise NotImplementedError

    def _set_arm_goal(self, q: np.ndarray) -> None:
        """At reset, after the arm is put at q: the arm's actuators start there (default: nothing)."""

    def _start_control(self, tcp_pos: np.ndarray, tcp_quat: np.ndarray) -> None:
        """At reset, after mj_forward: control starts, targeting (tcp_pos, tcp_quat)."""
        raise NotImplementedError

    def _hold_here(self) -> None:
        """recover(): the target becomes the measured pose."""
        raise NotImplementedError

    def _finger_position(self, gripper: float) -> float:
        """Finger joint position for a gripper value (0 open .. 1 closed)."""
        raise NotImplementedError

    def _gripper_ctrl(self, gripper: float) -> float:
        """Gripper actuator control for a gripper command (0 open .. 1 closed)."""
        raise NotImplementedError

    def _gripper_from_fingers(self, finger: float) -> float:
        """Gripper value (0 open .. 1 closed, before clipping) of the mean finger position."""
        raise NotImplementedError

    def _primitives(self) -> tuple:
        """A task file's objects in the scene (sim.scene.Primitive); none by default."""
        return ()
