"""The MuJoCo twin: torque-actuated FR3 driven by controllers.impedance at 1 kHz."""
import mujoco
import numpy as np
import pytest

from robot_rl.controllers.impedance import ImpedanceConfig
from robot_rl.sim.scene import SceneConfig, build_model
from robot_rl.sim.twin import TwinConfig, TwinRobot

DOWN = np.array([1.0, 0.0, 0.0, 0.0])  # TCP z along base -z


def contact_force_on_robot(twin: TwinRobot) -> np.ndarray:
    """Sum of contact forces the world puts on the hand and fingers (base frame), read straight
    from MuJoCo's contacts: an independent check of RobotState.tcp_force."""
    m, d = twin.model, twin.data
    hand = {m.body(n).id for n in ("hand", "left_finger", "right_finger")}
    total = np.zeros(3)
    for i in range(d.ncon):
        c = d.contact[i]
        f6 = np.zeros(6)
        mujoco.mj_contactForce(m, d, i, f6)
        f_world = c.frame.reshape(3, 3).T @ f6[:3]  # force of geom1 on geom2
        b1, b2 = m.geom_bodyid[c.geom[0]], m.geom_bodyid[c.geom[1]]
        if b2 in hand and b1 not in hand:
            total += f_world
        elif b1 in hand and b2 not in hand:
            total -= f_world
    return total


def test_scene_uses_torque_motors_and_gravcomp():
    m = build_model(SceneConfig())
    assert m.opt.timestep == pytest.approx(0.001)
    for i in range(7):
        assert m.actuator_biastype[i] == mujoco.mjtBias.mjBIAS_NONE
        assert m.actuator_gainprm[i, 0] == 1.0
    np.testing.assert_allclose(m.actuator_ctrlrange[:7, 1], [87, 87, 87, 87, 12, 12, 12])
    assert m.body_gravcomp[m.body("fr3_link3").id] == 1.0
    assert m.actuator("hand").id == 7


def test_reset_reaches_requested_pose_and_holds_still():
    twin = TwinRobot(SceneConfig())
    target = np.array([0.45, 0.08, 0.3])
    state = twin.reset(options={"tcp_pos": target, "tcp_quat": DOWN})
    assert np.linalg.norm(state.tcp_pos - target) < 2e-3
    assert abs(abs(np.dot(state.tcp_quat, DOWN)) - 1.0) < 1e-4
    for _ in range(10):  # 1 s holding: gravity compensation + law keep it in place
        state = twin.wait_step()
    assert np.linalg.norm(state.tcp_pos - target) < 3e-3
    assert np.linalg.norm(state.tcp_vel) < 1e-2
    assert state.stamp == pytest.approx(twin.config.settle_s + 1.0, abs=1e-6)


def test_twin_tracks_equilibrium_pose():
    twin = TwinRobot(SceneConfig())
    start = twin.reset(options={"tcp_pos": [0.5, 0.0, 0.25]}).tcp_pos
    goal = start + np.array([0.04, -0.03, 0.03])
    twin.command(goal, DOWN, 0.0)
    for _ in range(15):
        state = twin.wait_step()
    assert np.linalg.norm(state.tcp_pos - goal) < 5e-3


def test_clipped_error_bounds_contact_force_against_a_wall():
    """Equilibrium 20 cm inside a fixed box: the spring force stays at ~K * clip = 20 N."""
    cfg = ImpedanceConfig()
    bound = cfg.translational_stiffness * cfg.translational_clip_pos[2]  # 2000 N/m * 0.01 m
    wall = ((0.5, 0.0, 0.075), (0.1, 0.1, 0.075))  # top face at z = 0.15, under the hand
    twin = TwinRobot(TwinConfig(scene=SceneConfig(fixed_boxes=(wall,)), impedance=cfg))
    twin.reset(options={"tcp_pos": [0.5, 0.0, 0.2]})
    twin.command(np.array([0.5, 0.0, -0.05]), DOWN, 0.0)
    forces = []
    for _ in range(20):
        state = twin.wait_step()
        forces.append(state.tcp_force.copy())
    steady = np.array(forces[-5:])
    # Fingertips rest on the box top (they reach 8 mm below the TCP): pushing, not passing.
    assert state.tcp_pos[2] > 0.15
    assert np.all(steady[:, 2] > 0.7 * bound)              # it does push down on the wall
    assert np.all(steady[:, 2] <= bound * 1.1)             # ... but no harder than K * clip
    np.testing.assert_allclose(state.tcp_force, contact_force_on_robot(twin), atol=0.5)


def test_gripper_opens_and_closes():
    twin = TwinRobot(SceneConfig())
    state = twin.reset()
    assert state.gripper == pytest.approx(0.0, abs=0.02)
    twin.command(state.tcp_pos, state.tcp_quat, 1.0)
    for _ in range(5):
        state = twin.wait_step()
    assert state.gripper > 0.95


def test_bad_commands_raise_and_keep_the_target():
    twin = TwinRobot(SceneConfig())
    state = twin.reset()
    before = twin.controller.target
    with pytest.raises(ValueError):
        twin.command(np.array([np.nan, 0.0, 0.2]), DOWN, 0.0)
    with pytest.raises(ValueError):
        twin.command(np.zeros(2), DOWN, 0.0)
    after = twin.controller.target
    np.testing.assert_array_equal(before[0], after[0])
    assert np.linalg.norm(twin.wait_step().tcp_pos - state.tcp_pos) < 2e-3


def test_same_options_reproduce_the_same_state():
    options = {"tcp_pos": [0.52, -0.03, 0.2], "cube_pos": [0.48, 0.04, 0.025],
               "cube_quat": [0.0, 0.0, 0.2588, 0.9659]}
    runs = []
    for _ in range(2):
        twin = TwinRobot(SceneConfig(objects="cube"))
        twin.reset(options=options)
        twin.command(np.array([0.48, 0.04, 0.1]), DOWN, 0.0)
        runs.append((twin.wait_step(), twin.task_state()))
    (s1, t1), (s2, t2) = runs
    np.testing.assert_array_equal(s1.q, s2.q)
    np.testing.assert_array_equal(s1.tcp_force, s2.tcp_force)
    np.testing.assert_array_equal(t1["cube_pos"], t2["cube_pos"])
    np.testing.assert_allclose(t1["cube_pos"][:2], [0.48, 0.04], atol=1e-3)


def test_unreachable_reset_pose_is_refused_and_leaves_the_scene_as_it_was():
    """IK runs before the scene is cleared, so a bad reset pose cannot leave the arm elsewhere."""
    twin = TwinRobot(SceneConfig())
    try:
        before = twin.reset().q.copy()
        with pytest.raises(ValueError, match="out of the FR3's reach"):
            twin.reset(options={"tcp_pos": [1.5, 0.0, 0.2]})
        np.testing.assert_allclose(twin.data.qpos[:7], before, atol=1e-6)
    finally:
        twin.close()
