"""The Cartesian impedance law: analytic checks of each term, then closed loop on the FR3.

Analytic checks use J = [I6 | 0], q = q_nullspace, dq = 0, no Coriolis: then the nullspace
term is zero and tau[:6] is exactly the commanded wrench F (tau = J^T F).
"""
from dataclasses import asdict

import numpy as np
import pytest

from robot_rl.controllers.impedance import UPPER_BOUNDS, CartesianImpedanceController, ImpedanceConfig, NonFiniteError
from robot_rl.controllers.rotations import axis_angle_to_quat, quat_angle, quat_multiply

Q_NS = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.8])
J_ID = np.hstack([np.eye(6), np.zeros((6, 1))])
P0 = np.array([0.5, 0.0, 0.3])
Q0 = np.array([1.0, 0.0, 0.0, 0.0])  # TCP pointing down, as on the Franka


def analytic(ctrl, ee_pos=P0, ee_quat=Q0, dq=None):
    dq = np.zeros(7) if dq is None else dq
    return ctrl.compute(Q_NS, dq, ee_pos, ee_quat, J_ID, np.zeros(7))


# The loosest rate limit ImpedanceConfig accepts: above every torque these tests produce.
NO_RATE_LIMIT = UPPER_BOUNDS["torque_rate_limit"]


def unlimited(**changes):
    """No rate limit that binds, so one call shows the law's wrench."""
    return ImpedanceConfig(torque_rate_limit=NO_RATE_LIMIT, **changes)


# ---------------------------------------------------------------- reference clipping
def test_spring_force_is_k_times_error_inside_the_clip():
    ctrl = CartesianImpedanceController(unlimited(), Q_NS)
    ctrl.reset(P0, Q0)
    tau = analytic(ctrl, ee_pos=P0 + [0.004, -0.002, 0.001])
    np.testing.assert_allclose(tau[:3], [-8.0, 4.0, -2.0], atol=1e-9)
    np.testing.assert_allclose(tau[3:], 0.0, atol=1e-9)


def test_clip_bounds_force_per_axis_asymmetric():
    cfg = unlimited(
        translational_clip_neg=(0.002, 0.004, 0.006),
        translational_clip_pos=(0.003, 0.005, 0.007),
        rotational_clip_neg=(0.01, 0.02, 0.03),
        rotational_clip_pos=(0.015, 0.025, 0.035),
    )
    ctrl = CartesianImpedanceController(cfg, Q_NS)
    ctrl.reset(P0, Q0)
    K, Kr = cfg.translational_stiffness, cfg.rotational_stiffness
    # ee far on the + side: error hits clip_pos, the spring pushes back with K * clip_pos.
    tau = analytic(ctrl, ee_pos=P0 + [1.0, 1.0, 1.0])
    np.testing.assert_allclose(tau[:3], [-K * 0.003, -K * 0.005, -K * 0.007], atol=1e-9)
    tau = analytic(ctrl, ee_pos=P0 - [1.0, 1.0, 1.0])
    np.testing.assert_allclose(tau[:3], [K * 0.002, K * 0.004, K * 0.006], atol=1e-9)
    # Rotation: current = target rotated 1 rad about +x / -y / +z (base frame).
    for axis, sign, expected in (
        (0, +1, -Kr * 0.015), (0, -1, Kr * 0.01),
        (1, +1, -Kr * 0.025), (1, -1, Kr * 0.02),
        (2, +1, -Kr * 0.035), (2, -1, Kr * 0.03),
    ):
        rv = np.zeros(3)
        rv[axis] = sign * 1.0
        tau = analytic(ctrl, ee_quat=quat_multiply(axis_angle_to_quat(rv), Q0))
        assert tau[3 + axis] == pytest.approx(expected, abs=1e-9)
        others = [i for i in range(3) if i != axis]
        np.testing.assert_allclose(tau[3 + np.array(others)], 0.0, atol=1e-9)


def test_spring_force_never_exceeds_k_clip_for_any_target():
    cfg = ImpedanceConfig(torque_rate_limit=NO_RATE_LIMIT)
    ctrl = CartesianImpedanceController(cfg, Q_NS)
    ctrl.reset(P0, Q0)
    rng = np.random.default_rng(1)
    bound_t = cfg.translational_stiffness * 0.01 + 1e-9
    bound_r = cfg.rotational_stiffness * 0.05 + 1e-9
    for _ in range(300):
        ctrl.set_target(P0 + rng.normal(scale=2.0, size=3), rng.normal(size=4))
        tau = analytic(ctrl, ee_pos=P0 + rng.normal(scale=0.5, size=3))
        assert np.all(np.abs(tau[:3]) <= bound_t)
        assert np.all(np.abs(tau[3:6]) <= bound_r)


# ---------------------------------------------------------------- orientation
def test_rotational_torque_turns_toward_target_and_handles_double_cover():
    ctrl = CartesianImpedanceController(unlimited(), Q_NS)
    target = quat_multiply(axis_angle_to_quat([0.0, 0.0, 0.08]), Q0)  # target: +0.08 rad about z
    ctrl.reset(P0, target)
    tau = analytic(ctrl, ee_quat=Q0)
    # e_rot = -sin(0.04) z (current minus target); torque = -K e pushes +z, toward the target.
    assert tau[5] == pytest.approx(150.0 * np.sin(0.04), rel=1e-9)
    np.testing.assert_allclose(tau[3:5], 0.0, atol=1e-9)
    np.testing.assert_allclose(analytic(ctrl, ee_quat=-Q0), tau, atol=1e-12)
    ctrl.reset(P0, -target)
    np.testing.assert_allclose(analytic(ctrl, ee_quat=Q0), tau, atol=1e-12)


def test_rotating_toward_target_reduces_torque():
    ctrl = CartesianImpedanceController(unlimited(rotational_clip_neg=(1, 1, 1), rotational_clip_pos=(1, 1, 1)), Q_NS)
    ctrl.reset(P0, Q0)
    axis = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    norms = []
    for angle in (2.5, 1.5, 0.8, 0.3, 0.0):
        tau = analytic(ctrl, ee_quat=quat_multiply(axis_angle_to_quat(axis * angle), Q0))
        norms.append(np.linalg.norm(tau[3:6]))
        if angle > 0:  # torque is anti-parallel to the offset axis: it turns back
            assert np.dot(tau[3:6], axis) / norms[-1] == pytest.approx(-1.0, abs=1e-9)
    assert np.all(np.diff(norms) < 0) and norms[-1] < 1e-9


# ---------------------------------------------------------------- damping, nullspace, Coriolis
def test_damping_and_coriolis_terms():
    ctrl = CartesianImpedanceController(unlimited(), Q_NS)
    ctrl.reset(P0, Q0)
    dq = np.array([0.1, -0.2, 0.05, 0.3, -0.1, 0.2, 0.0])  # xdot = J dq = dq[:6]
    tau = analytic(ctrl, dq=dq)
    D = np.array([89.0] * 3 + [7.0] * 3)
    # the nullspace damping -2 sqrt(0.2) dq leaks through the damped pinv; it is tiny here
    np.testing.assert_allclose(tau[:6], -D * dq[:6], atol=0.05)
    coriolis = np.arange(7.0)
    tau_c = ctrl.compute(Q_NS, np.zeros(7), P0, Q0, J_ID, coriolis)
    np.testing.assert_allclose(tau_c, coriolis, atol=1e-9)


def test_nullspace_torque_is_invisible_to_the_task():
    cfg = unlimited(nullspace_stiffness=5.0, nullspace_pinv_damping=0.0)  # exact projector
    ctrl = CartesianImpedanceController(cfg, Q_NS)
    rng = np.random.default_rng(2)
    J = rng.normal(size=(6, 7))
    ctrl.reset(P0, Q0)
    tau = ctrl.compute(Q_NS + 0.3, np.zeros(7), P0, Q0, J, np.zeros(7))
    assert np.linalg.norm(tau) > 0.1  # the nullspace spring acts...
    np.testing.assert_allclose(J @ tau, 0.0, atol=1e-9)  # ...only in J's null space


# ---------------------------------------------------------------- integral term
def test_integral_term_grows_and_is_clamped():
    cfg = unlimited(translational_ki=1000.0, integral_limit=3.0, rotational_ki=0.0)
    ctrl = CartesianImpedanceController(cfg, Q_NS)
    ctrl.reset(P0, Q0)
    off = np.array([0.002, 0.0, 0.0])
    spring = -2000.0 * 0.002
    tau1 = analytic(ctrl, ee_pos=P0 + off)
    assert tau1[0] == pytest.approx(spring - 1000.0 * 0.002 * 0.001, abs=1e-9)
    for _ in range(3000):  # integral wrench would reach 1000 * 0.002 * 3 = 6 N unclamped
        tau = analytic(ctrl, ee_pos=P0 + off)
    assert tau[0] == pytest.approx(spring - 3.0, abs=1e-9)
    # anti-windup: the error reverses and the integral unwinds at once, not after 3 s
    for _ in range(10):
        tau = analytic(ctrl, ee_pos=P0 - off)
    assert tau[0] == pytest.approx(-spring - 3.0 + 1000.0 * 0.002 * 0.010, abs=1e-6)
    ctrl.reset(P0, Q0)  # reset clears it
    assert analytic(ctrl)[0] == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------- torque-rate limit
def test_rate_limit_ramps_a_step_at_exactly_the_limit():
    ctrl = CartesianImpedanceController(ImpedanceConfig(torque_rate_limit=1.0), Q_NS)
    ctrl.reset(P0, Q0)
    outputs = [analytic(ctrl, ee_pos=P0 + [0.05, 0, 0]) for _ in range(25)]
    x = [t[0] for t in outputs]
    np.testing.assert_allclose(x[:20], -np.arange(1, 21, dtype=float), atol=1e-9)  # -20 N spring
    np.testing.assert_allclose(x[20:], -20.0, atol=1e-9)
    ctrl.reset(P0, Q0, tau_prev=np.full(7, 5.0))  # starts from the torque the robot holds
    assert np.all(analytic(ctrl) >= 4.0 - 1e-12)


# ---------------------------------------------------------------- filters
def test_target_filter_moves_by_the_factor_each_tick():
    ctrl = CartesianImpedanceController(ImpedanceConfig(), Q_NS)
    ctrl.reset(P0, Q0)
    p_goal = P0 + [0.1, -0.2, 0.05]
    q_goal = quat_multiply(axis_angle_to_quat([0.0, 0.5, 0.0]), Q0)
    ctrl.set_target(p_goal, q_goal)
    pos, quat = ctrl.filtered_target
    np.testing.assert_allclose(pos, P0)  # set_target alone moves nothing
    for k in range(1, 401):
        analytic(ctrl)
        pos, quat = ctrl.filtered_target
        remaining = 0.995**k
        np.testing.assert_allclose(pos, p_goal - remaining * (p_goal - P0), atol=1e-12)
        assert quat_angle(quat, q_goal) == pytest.approx(0.5 * remaining, abs=1e-7)
    target_pos, target_quat = ctrl.target
    np.testing.assert_allclose(target_pos, p_goal)


def test_gains_change_through_the_filter_and_clips_at_once():
    ctrl = CartesianImpedanceController(unlimited(), Q_NS)
    ctrl.reset(P0, Q0)
    stiff = ImpedanceConfig.precision().replace(translational_stiffness=3000.0, torque_rate_limit=NO_RATE_LIMIT)
    ctrl.set_config(stiff)
    # clips are wider at once (0.1 m), stiffness still 2000 on this tick
    assert analytic(ctrl, ee_pos=P0 + [0.05, 0, 0])[0] == pytest.approx(-2000.0 * 0.05, abs=1e-9)
    k = ctrl.filtered_gains
    assert k["translational_stiffness"] == pytest.approx(2000.0 + 0.005 * 1000.0)
    assert k["rotational_stiffness"] == pytest.approx(150.0 + 0.005 * 100.0)
    for _ in range(2000):
        analytic(ctrl)
    k = ctrl.filtered_gains
    assert k["translational_stiffness"] == pytest.approx(3000.0, abs=0.1)
    assert k["rotational_stiffness"] == pytest.approx(250.0, abs=0.01)
    assert k["rotational_damping"] == pytest.approx(9.0, abs=1e-3)
    # back to compliant: the tight clip binds on the very next tick
    ctrl.set_config(unlimited())
    assert analytic(ctrl, ee_pos=P0 + [0.05, 0, 0])[0] == pytest.approx(-3000.0 * 0.01, abs=0.1)


def test_profiles_and_config_validation():
    c, p = ImpedanceConfig.compliant(), ImpedanceConfig.precision()
    assert (c.translational_stiffness, c.translational_damping, c.rotational_stiffness, c.rotational_damping) == (2000, 89, 150, 7)
    assert c.translational_clip_pos == (0.01,) * 3 and c.rotational_clip_neg == (0.05,) * 3
    assert p.translational_clip_pos == (0.1,) * 3 and p.rotational_stiffness == 250.0
    assert ImpedanceConfig(translational_clip_neg=[0.01, 0.02, 0.03]).translational_clip_neg == (0.01, 0.02, 0.03)
    assert asdict(ImpedanceConfig(**asdict(p))) == asdict(p)
    with pytest.raises(ValueError):
        ImpedanceConfig(translational_stiffness=-1.0)
    with pytest.raises(ValueError):
        ImpedanceConfig(translational_clip_pos=(0.01, 0.01))
    with pytest.raises(ValueError):
        ImpedanceConfig(filter_factor=0.0)
    with pytest.raises(NonFiniteError, match="rotational_clip_pos"):
        ImpedanceConfig(rotational_clip_pos=(0.1, float("nan"), 0.1))
    ctrl = CartesianImpedanceController(ImpedanceConfig(), Q_NS)
    bad = ImpedanceConfig()
    bad.translational_damping = float("inf")  # mutated after construction
    with pytest.raises(NonFiniteError, match="translational_damping"):
        ctrl.set_config(bad)
    assert ctrl.cfg.translational_damping == 89.0



@pytest.mark.parametrize("field, value", [("translational_stiffness", 1e12), ("torque_rate_limit", 1e9),
                                          ("translational_clip_pos", (0.01, 0.01, 10.0)), ("dt", 1.0)])
def test_config_refuses_values_above_the_documented_upper_bounds(field, value):
    with pytest.raises(ValueError, match=f"{field} must be <= {UPPER_BOUNDS[field]:g}"):
        ImpedanceConfig(**{field: value})
    # SERL's and HIL-SERL's configs sit inside every bound.
    for cfg in (ImpedanceConfig.compliant(), ImpedanceConfig.precision()):
        assert all(max(v if isinstance(v, tuple) else (v,)) <= UPPER_BOUNDS[k] for k, v in asdict(cfg).items())

# ---------------------------------------------------------------- safety: non-finite values
@pytest.mark.parametrize("name", ["q", "dq", "ee_pos", "ee_quat", "jacobian", "coriolis"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_raises_names_it_and_holds(name, bad):
    ctrl = CartesianImpedanceController(ImpedanceConfig(), Q_NS)
    ctrl.reset(P0, Q0)
    ctrl.set_target(P0 + [0.03, 0, 0], Q0)
    good = dict(q=Q_NS, dq=np.zeros(7), ee_pos=P0, ee_quat=Q0, jacobian=J_ID, coriolis=np.zeros(7))
    for _ in range(50):
        tau_before = ctrl.compute(**good)
    assert np.abs(tau_before).max() > 1.0
    filtered_before = ctrl.filtered_target
    args = {k: np.array(v, dtype=float) for k, v in good.items()}
    args[name].flat[1] = bad
    with pytest.raises(NonFiniteError, match=name):
        ctrl.compute(**args)
    assert ctrl.last_fault is not None and name in ctrl.last_fault
    hold = ctrl.hold_torque()
    assert hold.shape == (7,) and np.all(hold == 0.0)
    # nothing else moved, and the next command ramps from the zero hold
    np.testing.assert_array_equal(ctrl.filtered_target[0], filtered_before[0])
    tau = ctrl.compute(**good)
    assert np.abs(tau).max() <= 1.0 + 1e-12
    assert ctrl.last_fault is None


def test_non_finite_target_is_rejected_and_the_old_target_kept():
    ctrl = CartesianImpedanceController(ImpedanceConfig(), Q_NS)
    ctrl.reset(P0, Q0)
    good_pos = P0 + [0.01, 0.02, 0.0]
    ctrl.set_target(good_pos, Q0)
    with pytest.raises(NonFiniteError, match="target pos"):
        ctrl.set_target([np.nan, 0.0, 0.3], Q0)
    with pytest.raises(NonFiniteError, match="target quat"):
        ctrl.set_target(P0, [0.0, np.inf, 0.0, 1.0])
    with pytest.raises(ValueError, match="zero norm"):
        ctrl.set_target(P0, [0.0, 0.0, 0.0, 0.0])
    pos, quat = ctrl.target
    np.testing.assert_array_equal(pos, good_pos)
    np.testing.assert_allclose(quat, Q0)
    for _ in range(3):
        assert np.all(np.isfinite(analytic(ctrl)))


def test_non_finite_output_raises():
    ctrl = CartesianImpedanceController(ImpedanceConfig(), Q_NS)
    ctrl.reset(P0, Q0)
    huge = J_ID * 1e300  # finite inputs whose product overflows
    with pytest.raises(NonFiniteError, match="output torque"), np.errstate(over="ignore", invalid="ignore"):
        ctrl.compute(Q_NS + 0.1, np.full(7, 1e10), P0, Q0, huge, np.zeros(7))
    assert np.all(ctrl.hold_torque() == 0.0)
    # An inf (not NaN) torque must not slip through the rate limiter as a finite 1 Nm step:
    # damping -89 * 1e306 N plus Coriolis -1.79e308 Nm overflows to -inf on joint 1 alone
    # (the gains are bounded, so the huge term comes from a finite velocity).
    ctrl = CartesianImpedanceController(ImpedanceConfig(), Q_NS)
    ctrl.reset(P0, Q0)
    coriolis = np.array([-1.79e308, 0, 0, 0, 0, 0, 0])
    dq = np.array([1e306, 0, 0, 0, 0, 0, 0])
    with pytest.raises(NonFiniteError, match="output torque"), np.errstate(over="ignore"):
        ctrl.compute(Q_NS, dq, P0 + [0.02, 0, 0], Q0, J_ID, coriolis)
    assert "output torque" in ctrl.last_fault


def test_wrong_shapes_raise():
    ctrl = CartesianImpedanceController(ImpedanceConfig(), Q_NS)
    ctrl.reset(P0, Q0)
    with pytest.raises(ValueError, match="jacobian"):
        ctrl.compute(Q_NS, np.zeros(7), P0, Q0, J_ID.T, np.zeros(7))
    with pytest.raises(ValueError, match="q"):
        ctrl.compute(Q_NS[:6], np.zeros(7), P0, Q0, J_ID, np.zeros(7))
    with pytest.raises(ValueError, match="q_nullspace"):
        CartesianImpedanceController(ImpedanceConfig(), np.zeros((7, 1)))


def test_first_compute_without_reset_starts_at_the_current_pose():
    ctrl = CartesianImpedanceController(ImpedanceConfig(torque_rate_limit=NO_RATE_LIMIT), Q_NS)
    tau = analytic(ctrl, ee_pos=P0 + [0.2, 0, 0])
    np.testing.assert_allclose(tau, 0.0, atol=1e-12)
    np.testing.assert_allclose(ctrl.filtered_target[0], P0 + [0.2, 0, 0])
    with pytest.raises(RuntimeError):
        CartesianImpedanceController(ImpedanceConfig(), Q_NS).filtered_target


def test_outputs_and_inputs_do_not_alias_the_controller_state():
    ctrl = CartesianImpedanceController(ImpedanceConfig(), Q_NS)
    ctrl.reset(P0, Q0)
    pos = P0 + [0.02, 0.0, 0.0]
    q_in = Q_NS.copy()
    ctrl.set_target(pos, Q0)
    pos[:] = 99.0  # the caller reusing its buffer changes nothing
    np.testing.assert_allclose(ctrl.target[0], P0 + [0.02, 0.0, 0.0])
    tau = ctrl.compute(q_in, np.zeros(7), P0 + [0.005, 0, 0], Q0, J_ID, np.zeros(7))
    np.testing.assert_array_equal(q_in, Q_NS)  # inputs are read, never written
    tau[:] = 1e6  # scribbling on the output does not move the rate limiter's memory
    assert np.abs(analytic(ctrl, ee_pos=P0 + [0.005, 0, 0])).max() <= 2.0 + 1e-12


def test_nullspace_target_can_move():
    cfg = unlimited(nullspace_stiffness=4.0, nullspace_pinv_damping=0.0)
    ctrl = CartesianImpedanceController(cfg, Q_NS)
    ctrl.reset(P0, Q0)
    np.testing.assert_allclose(analytic(ctrl), 0.0, atol=1e-12)  # at the nullspace target
    ctrl.set_nullspace_target(Q_NS + [0, 0, 0, 0, 0, 0, 0.5])
    tau = analytic(ctrl)  # J = [I6 | 0]: joint 7 is the whole null space
    np.testing.assert_allclose(tau, [0, 0, 0, 0, 0, 0, 4.0 * 0.5], atol=1e-12)
    with pytest.raises(NonFiniteError, match="q_nullspace"):
        ctrl.set_nullspace_target([np.nan] * 7)
