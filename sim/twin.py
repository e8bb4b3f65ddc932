"""The in-process MuJoCo twin of a torque-controlled FR3 with the Franka hand (sim.arm_twin.ArmTwin).

As on the hardware, the policy only sets an equilibrium pose (10 Hz); the Cartesian impedance
law from `controllers.impedance` turns it into joint torques at every physics step (1 kHz), and
gravity is compensated by the "robot" (MuJoCo's body gravcomp, like the FR3's own
compensation), not by the law.

Per physics step: mj_step1 (kinematics, bias forces, gravcomp at the current state) ->
TCP pose and Jacobian into preallocated buffers -> law -> mj_step2. Splitting the step lets the
law see the state it acts on, with no extra forward pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robot_rl.controllers.impedance import CartesianImpedanceController, ImpedanceConfig
from robot_rl.sim.arm_twin import ArmTwin, mujoco, xyzw_to_wxyz
from robot_rl.sim.scene import ARM_JOINTS, FINGER_JOINTS, FINGER_OPEN, HAND_CTRL_OPEN, SceneConfig, build_model

# A comfortable FR3 posture with the TCP pointing down and the hand's x axis along base +x
# (q7 = +pi/4): the IK seed and the law's nullspace target.
HOME_Q = np.array([0.0, -0.3, 0.0, -2.3, 0.0, 2.0, np.pi / 4])


@dataclass
class TwinConfig:
    scene: SceneConfig = field(default_factory=SceneConfig)
    control_hz: float = 10.0
    impedance: ImpedanceConfig = field(default_factory=ImpedanceConfig)
    settle_s: float = 0.1           # physics time after a reset so objects come to rest
    default_tcp_pos: tuple[float, float, float] = (0.5, 0.0, 0.25)
    default_tcp_quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)


class TwinRobot(ArmTwin):
    """The FR3 twin: equilibrium pose -> impedance law (every physics step) -> joint torques."""

    def __init__(self, config: TwinConfig | SceneConfig | None = None):
        if config is None:
            config = TwinConfig()
        if isinstance(config, SceneConfig):
            config = TwinConfig(scene=config)
        model = build_model(config.scene)
        super().__init__(config, model, ARM_JOINTS, FINGER_JOINTS,
                         hand_bodies=("hand", "left_finger", "right_finger"),
                         grip_ctrl=model.actuator("hand").id)
        m = self.model
        self.n_substeps = int(round(1.0 / (self.control_hz * m.opt.timestep)))
        self._qlow, self._qhigh = m.jnt_range[:7, 0].copy(), m.jnt_range[:7, 1].copy()
        # Preallocated per-physics-step buffers.
        self._jacp = np.zeros((3, m.nv))
        self._jacr = np.zeros((3, m.nv))
        self._jac = np.zeros((6, 7))
        self._quat_wxyz = np.zeros(4)
        self._quat_xyzw = np.zeros(4)
        self._coriolis = np.zeros(7)
        self.controller = CartesianImpedanceController(config.impedance, q_nullspace=HOME_Q.copy())
        self._ik_data = mujoco.MjData(m)

    # ---- the FR3's part of ArmTwin ---------------------------------------------------------
    def joint_efforts(self) -> np.ndarray:
        """The law's joint torques now (Nm; gravity is MuJoCo's gravcomp, as the FR3's own)."""
        return self.data.ctrl[:7].copy()

    def _start_control(self, tcp_pos, tcp_quat) -> None:
        self.controller.reset(self.data.site_xpos[self._tcp].copy(), self._site_quat_xyzw())
        self.controller.set_target(tcp_pos, tcp_quat)

    def _hold_here(self) -> None:
        self.controller.reset(self.data.site_xpos[self._tcp].copy(), self._site_quat_xyzw())

    def _finger_position(self, gripper: float) -> float:
        return FINGER_OPEN * (1.0 - gripper)

    def _gripper_ctrl(self, gripper: float) -> float:
        return HAND_CTRL_OPEN * (1.0 - gripper)

    def _gripper_from_fingers(self, finger: float) -> float:
        return 1.0 - finger / FINGER_OPEN

    def _primitives(self) -> tuple:
        return self.config.scene.primitives

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
