"""A real 7-DoF plant for the impedance law: the FR3 MJCF shipped with franky-sim, in MuJoCo.

Gravity is off (the Franka compensates gravity itself; the law never sees it), the position
actuators are disabled (torques go in through qfrc_applied, as the twin does), the physics
runs at the 1 kHz control rate, and the TCP is 0.1034 m down the hand's z axis.
"""
from __future__ import annotations

import importlib.resources

import mujoco
import numpy as np
import pytest

TCP_OFFSET = np.array([0.0, 0.0, 0.1034])


def load_fr3_model(extra_worldbody: str = "") -> mujoco.MjModel:
    assets = importlib.resources.files("franky_sim") / "assets"
    xml = (assets / "fr3.xml").read_text()
    # The shipped file says meshdir="assets" but the meshes live in assets/meshes.
    xml = xml.replace('meshdir="assets"', f'meshdir="{assets / "meshes"}"')
    if extra_worldbody:
        xml = xml.replace("<worldbody>", "<worldbody>" + extra_worldbody, 1)
    model = mujoco.MjModel.from_xml_string(xml)
    model.opt.timestep = 0.001
    model.opt.gravity[:] = 0.0
    model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_ACTUATION
    return model


class Fr3Plant:
    """Steps the arm with given joint torques and reads what the controller needs."""

    def __init__(self, model: mujoco.MjModel, frictionless: bool = True):
        self.model = model
        if frictionless:  # joint friction would only blur the law's steady state
            self.model.dof_frictionloss[:] = 0.0
        self.data = mujoco.MjData(model)
        mujoco.mj_resetDataKeyframe(model, self.data, model.key("home").id)
        mujoco.mj_forward(model, self.data)
        self.hand = model.body("hand").id
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def state(self):
        d = self.data
        rot = d.xmat[self.hand].reshape(3, 3)
        pos = d.xpos[self.hand] + rot @ TCP_OFFSET
        mujoco.mj_jac(self.model, d, self._jacp, self._jacr, pos, self.hand)
        jac = np.vstack([self._jacp[:, :7], self._jacr[:, :7]])
        w, x, y, z = d.xquat[self.hand]  # MuJoCo wxyz -> project xyzw
        return {
            "q": d.qpos[:7].copy(),
            "dq": d.qvel[:7].copy(),
            "ee_pos": pos,
            "ee_quat": np.array([x, y, z, w]),
            "jacobian": jac,
            "coriolis": d.qfrc_bias[:7].copy(),  # gravity is off: bias = Coriolis/centrifugal
        }

    def step(self, tau: np.ndarray) -> None:
        self.data.qfrc_applied[:7] = tau
        mujoco.mj_step(self.model, self.data)


@pytest.fixture(scope="session")
def fr3_model() -> mujoco.MjModel:
    return load_fr3_model()


@pytest.fixture
def fr3(fr3_model) -> Fr3Plant:
    return Fr3Plant(fr3_model)


@pytest.fixture(scope="session")
def make_fr3():
    """Factory for a plant with extra worldbody XML (walls, tables); loads a fresh model."""
    return lambda extra_worldbody="", frictionless=True: Fr3Plant(
        load_fr3_model(extra_worldbody), frictionless
    )
