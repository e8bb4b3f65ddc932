"""The WidowX twin's MuJoCo 3.x servos (sim/widowx.py: no `pid` actuator before MuJoCo 4.0, so a
PD position actuator with gravity compensation through the actuators stands in for the PID).

Measured by hand on mujoco 3.8.1 (docs/install.md). Here the same build path runs on the
installed MuJoCo with the PID switched off: the suite's venv cannot hold MuJoCo 3.x beside 4.x,
so this flag is the one stand-in, and it selects exactly the code a 3.x install runs."""
from __future__ import annotations

import numpy as np
import pytest

import robot_rl.sim.widowx as widowx
from robot_rl.sim.widowx import WidowXSceneConfig, WidowXTwin, WidowXTwinConfig

DOWN = np.array([1.0, 0.0, 0.0, 0.0])


@pytest.fixture(scope="module")
def pd_twin():
    patch = pytest.MonkeyPatch()
    patch.setattr(widowx, "HAS_PID_ACTUATOR", False)
    robot = WidowXTwin(WidowXTwinConfig(scene=WidowXSceneConfig(objects="cube")))
    try:
        yield robot
    finally:
        robot.close()
        patch.undo()


def test_the_stand_in_is_pd_servos_holding_gravity(pd_twin):
    m = pd_twin.model
    arm = [m.actuator(j).id for j in widowx.ARM_JOINTS]
    assert m.na == 0                                        # no integrator states
    assert np.all(m.actuator_biasprm[arm, 1] < 0)           # -kp: a position servo
    assert np.all(m.jnt_actgravcomp[:6]) and m.body_gravcomp[m.body("upper_arm_link").id] == 1.0
    np.testing.assert_allclose(m.actuator_forcerange[arm, 1], widowx.WIDOWX_250S.max_effort)


def test_the_stand_in_holds_and_tracks_within_5mm(pd_twin):
    state = pd_twin.reset(options={"tcp_pos": [0.28, 0.0, 0.14], "tcp_quat": DOWN})
    assert np.linalg.norm(state.tcp_pos - [0.28, 0.0, 0.14]) < 3e-3
    for pos in ([0.22, -0.08, 0.05], [0.38, 0.1, 0.2]):
        pos = np.array(pos)
        for _ in range(25):   # 2.5 s
            pd_twin.command(pos, DOWN, 0.0)
            state = pd_twin.wait_step()
        assert np.linalg.norm(state.tcp_pos - pos) < 5e-3, (pos, state.tcp_pos)
    assert np.linalg.norm(state.tcp_vel) < 0.02
