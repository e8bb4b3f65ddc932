"""The impedance law closing the loop on the FR3 arm in MuJoCo (gravity off, 1 kHz)."""
import mujoco
import numpy as np
import pytest

from robot_rl.controllers.impedance import CartesianImpedanceController, ImpedanceConfig
from robot_rl.controllers.rotations import axis_angle_to_quat, quat_angle, quat_multiply

# The nullspace target is the posture the plant starts in (the FR3 "home" keyframe).


def run(plant, ctrl, ticks, record=None):
    taus = []
    for _ in range(ticks):
        s = plant.state()
        tau = ctrl.compute(**s)
        plant.step(tau)
        taus.append(tau)
        if record is not None:
            record.append((s["ee_pos"].copy(), s["ee_quat"].copy()))
    return np.array(taus)


def test_step_response_converges_without_overshoot(fr3):
    ctrl = CartesianImpedanceController(ImpedanceConfig(), fr3.state()["q"])
    s = fr3.state()
    ctrl.reset(s["ee_pos"], s["ee_quat"])
    start = s["ee_pos"].copy()
    step = np.array([0.05, -0.03, 0.04])
    goal_pos = start + step
    goal_quat = quat_multiply(axis_angle_to_quat([0.15, 0.0, 0.3]), s["ee_quat"])
    ctrl.set_target(goal_pos, goal_quat)
    trace = []
    taus = run(fr3, ctrl, 3000, trace)
    pos, quat = trace[-1]
    assert np.linalg.norm(pos - goal_pos) < 2e-3
    assert quat_angle(quat, goal_quat) < 0.01
    # overshoot: progress along the step never goes more than 1.5 mm past the goal
    progress = np.array([(p - start) @ step / np.linalg.norm(step) for p, _ in trace])
    assert progress.max() - np.linalg.norm(step) < 1.5e-3
    assert np.max(np.abs(np.diff(taus, axis=0))) <= 1.0 + 1e-9
    assert np.abs(taus[-100:]).max() < 0.5  # settled: no chatter at rest


def test_rate_limit_holds_every_tick_through_jumps_and_profile_switches(fr3):
    ctrl = CartesianImpedanceController(ImpedanceConfig(), fr3.state()["q"])
    s = fr3.state()
    ctrl.reset(s["ee_pos"], s["ee_quat"])
    home_pos, home_quat = s["ee_pos"].copy(), s["ee_quat"].copy()
    taus = [np.zeros(7)]
    # big jumps far outside the clip, and stiffness changes, at once
    ctrl.set_target(home_pos + [0.15, 0.1, -0.1], quat_multiply(axis_angle_to_quat([0, 0.4, 0]), home_quat))
    taus.extend(run(fr3, ctrl, 400))
    ctrl.set_config(ImpedanceConfig.precision().replace(translational_stiffness=4000.0))
    taus.extend(run(fr3, ctrl, 400))
    ctrl.set_target(home_pos, home_quat)
    ctrl.set_config(ImpedanceConfig.compliant())
    taus.extend(run(fr3, ctrl, 400))
    deltas = np.abs(np.diff(np.array(taus), axis=0))
    assert deltas.max() <= 1.0 + 1e-9
    assert deltas.max() > 0.99  # the limit did bind, so the check is not vacuous


def test_large_target_jump_is_reached_under_the_precision_profile(fr3):
    ctrl = CartesianImpedanceController(ImpedanceConfig.precision(), fr3.state()["q"])
    s = fr3.state()
    ctrl.reset(s["ee_pos"], s["ee_quat"])
    goal = s["ee_pos"] + [-0.1, 0.15, -0.1]
    ctrl.set_target(goal, s["ee_quat"])
    trace = []
    run(fr3, ctrl, 3000, trace)
    assert np.linalg.norm(trace[-1][0] - goal) < 3e-3
    assert quat_angle(trace[-1][1], s["ee_quat"]) < 0.02


def wall_force(plant, wall_id):
    """Total contact force the wall exerts on the robot, world frame."""
    m, d = plant.model, plant.data
    total, f6 = np.zeros(3), np.zeros(6)
    for i in range(d.ncon):
        con = d.contact[i]
        if wall_id in (con.geom1, con.geom2):
            mujoco.mj_contactForce(m, d, i, f6)
            f = con.frame.reshape(3, 3).T @ f6[:3]  # contact frame -> world; acts on geom2
            total += f if con.geom1 == wall_id else -f
    return total


@pytest.mark.parametrize("clip_pos_z, expected_force", [(0.01, 20.0), (0.004, 8.0)])
def test_contact_force_against_a_table_is_stiffness_times_clip(make_fr3, fr3, clip_pos_z, expected_force):
    home = fr3.state()["ee_pos"]
    top = home[2] - 0.03
    table = (f'<geom name="table" type="box" pos="{home[0]} {home[1]} {top - 0.05}" '
             'size="0.2 0.2 0.05"/>')
    plant = make_fr3(table)
    cfg = ImpedanceConfig(translational_clip_pos=(0.01, 0.01, clip_pos_z))
    s = plant.state()
    ctrl = CartesianImpedanceController(cfg, s["q"])
    ctrl.reset(s["ee_pos"], s["ee_quat"])
    # the target 8 cm inside the table: the error (ee - target) is +z and clipped at clip_pos_z
    ctrl.set_target(s["ee_pos"] - [0.0, 0.0, 0.08], s["ee_quat"])
    run(plant, ctrl, 2500)
    force = wall_force(plant, plant.model.geom("table").id)
    assert force[2] == pytest.approx(expected_force, rel=0.03)
    assert np.linalg.norm(force[:2]) < 0.1 * expected_force
