"""The WidowX 250 6-DoF model (controllers/widowx_model.py) and the DLS IK (controllers/ik.py)."""
from __future__ import annotations

import math
import timeit

import numpy as np
import pytest

from robot_rl.controllers.ik import DLSIK, IKConfig, rotation_error
from robot_rl.controllers.widowx_model import EE_TO_TCP, WIDOWX_250S

MODEL = WIDOWX_250S
DOWN = np.array([1.0, 0.0, 0.0, 0.0])   # TCP z down, x = base x


def _rot(axis: str, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def urdf_chain_fk(q: np.ndarray) -> np.ndarray:
    """Independent FK: the wx250s URDF's joint origins and axes multiplied out link by link."""
    chain = [((0, 0, 0.072), "z"), ((0, 0, 0.03865), "y"), ((0.04975, 0, 0.25), "y"),
             ((0.175, 0, 0), "x"), ((0.075, 0, 0), "y"), ((0.065, 0, 0), "x")]
    t = np.eye(4)
    for (offset, axis), angle in zip(chain, q):
        link = np.eye(4)
        link[:3, :3] = _rot(axis, angle)
        link[:3, 3] = offset
        t = t @ link
    ee = np.eye(4)   # gripper_link -> ee_gripper_link (fingers' centre), then the TCP axes
    ee[:3, 3] = (0.458325 - 0.36475, 0.0, 0.0)
    ee[:3, :3] = EE_TO_TCP
    return t @ ee


def quat_to_matrix(q) -> np.ndarray:
    x, y, z, w = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def random_q(rng, around=None, spread=None) -> np.ndarray:
    if around is None:
        return rng.uniform(MODEL.lower, MODEL.upper)
    return np.clip(around + rng.uniform(-spread, spread, 6), MODEL.lower, MODEL.upper)


def test_model_data_is_the_published_wx250s():
    assert MODEL.joint_names == ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle",
                                 "wrist_rotate")
    np.testing.assert_allclose(np.degrees(MODEL.lower), [-180, -108, -123, -180, -100, -180])
    np.testing.assert_allclose(np.degrees(MODEL.upper), [180, 114, 92, 180, 123, 180])
    np.testing.assert_allclose(MODEL.max_velocity, math.pi)
    for name in ("home", "sleep", "ready"):
        q = MODEL.postures[name]
        assert np.all(q >= MODEL.lower) and np.all(q <= MODEL.upper)
    # Home: the arm stretched forward, the TCP 0.458 m out at shoulder + upper-arm height.
    pos, quat = MODEL.fk(MODEL.home)
    np.testing.assert_allclose(pos, [0.458325, 0.0, 0.36065], atol=1e-9)
    # Ready: TCP pointing straight down (the tasks' nominal orientation).
    pos, quat = MODEL.fk(MODEL.postures["ready"])
    assert abs(abs(quat[0]) - 1.0) < 1e-3 and 0.2 < pos[0] < 0.3 and 0.08 < pos[2] < 0.2


def test_fk_matches_the_urdf_chain():
    rng = np.random.default_rng(0)
    for _ in range(50):
        q = random_q(rng)
        expected = urdf_chain_fk(q)
        pos, quat = MODEL.fk(q)
        np.testing.assert_allclose(pos, expected[:3, 3], atol=1e-9)
        np.testing.assert_allclose(quat_to_matrix(quat), expected[:3, :3], atol=1e-9)
        np.testing.assert_allclose(MODEL.fk_matrix(q), expected, atol=1e-9)
        assert abs(np.linalg.norm(quat) - 1.0) < 1e-12 and quat[3] >= 0.0


def test_jacobian_matches_finite_differences():
    rng = np.random.default_rng(1)
    eps = 1e-6
    for _ in range(20):
        q = random_q(rng)
        jac = MODEL.jacobian(q)
        assert jac.shape == (6, 6)
        t0 = MODEL.fk_matrix(q)
        for i in range(6):
            dq = np.zeros(6)
            dq[i] = eps
            tp, tm = MODEL.fk_matrix(q + dq), MODEL.fk_matrix(q - dq)
            lin = (tp[:3, 3] - tm[:3, 3]) / (2 * eps)
            d_rot = (tp[:3, :3] - tm[:3, :3]) / (2 * eps) @ t0[:3, :3].T   # [w]x
            ang = np.array([d_rot[2, 1], d_rot[0, 2], d_rot[1, 0]])
            np.testing.assert_allclose(jac[:3, i], lin, atol=1e-7)
            np.testing.assert_allclose(jac[3:, i], ang, atol=1e-7)


def test_ik_converges_to_reachable_targets():
    """Targets are FK of random postures around the pointing-down ready posture (so reachable);
    the IK, called at 50 Hz with the velocity limit, reaches them within 1 mm / 0.01 rad."""
    ik = DLSIK(MODEL, IKConfig())
    rng = np.random.default_rng(2)
    ready = MODEL.postures["ready"]
    for _ in range(20):
        target_pos, target_quat = MODEL.fk(random_q(rng, ready, 0.5))
        q = ready.copy()
        for _ in range(150):   # 3 s of control at 50 Hz
            q = ik.solve(q, target_pos, target_quat, dt=0.02)
        pos, quat = MODEL.fk(q)
        assert np.linalg.norm(pos - target_pos) < 1e-3
        assert np.linalg.norm(rotation_error(quat_to_matrix(target_quat), quat_to_matrix(quat))) < 0.01
        result = ik.solve_pose(ready, target_pos, target_quat)   # the offline solve agrees
        assert result.converged and result.position_error < 1e-3


def test_ik_table_top_workspace_pointing_down():
    """Every pose the WidowX pick task asks for (TCP down, any yaw within +-1 rad) is solved."""
    ik = DLSIK(MODEL)
    rng = np.random.default_rng(3)
    for _ in range(30):
        pos = np.array([rng.uniform(0.2, 0.4), rng.uniform(-0.15, 0.15), rng.uniform(0.01, 0.25)])
        yaw = rng.uniform(-1.0, 1.0)
        quat = np.array([math.cos(yaw / 2), math.sin(yaw / 2), 0.0, 0.0])   # Rz(yaw) Rx(pi)
        result = ik.solve_pose(MODEL.postures["ready"], pos, quat)
        assert result.converged, (pos, yaw, result)
        assert np.all(result.q >= MODEL.lower) and np.all(result.q <= MODEL.upper)


def test_velocity_limit_clips_the_step_as_a_whole():
    ik = DLSIK(MODEL, IKConfig(iterations=3))
    q0 = MODEL.postures["ready"]
    far_pos, far_quat = MODEL.fk(q0 + np.array([0.8, 0.3, -0.4, 0.5, 0.3, -0.9]))
    dt = 0.02
    q = ik.solve(q0, far_pos, far_quat, dt=dt)
    step = q - q0
    bound = MODEL.max_velocity * dt
    assert np.all(np.abs(step) <= bound + 1e-12)
    assert np.max(np.abs(step) / bound) > 0.999   # it used the whole budget on some joint
    # The same target with a long period is not clipped: a bigger step on the same joints.
    free = ik.solve(q0, far_pos, far_quat, dt=10.0) - q0
    assert np.max(np.abs(free)) > 2 * np.max(np.abs(step))
    # velocity_scale halves the budget.
    half = DLSIK(MODEL, IKConfig(velocity_scale=0.5)).solve(q0, far_pos, far_quat, dt=dt) - q0
    assert np.all(np.abs(half) <= 0.5 * bound + 1e-12)


def test_joint_limits_hold_and_other_joints_take_over():
    """A target whose direct path drives the elbow past its limit: the goal stays within the
    limits at every call, and the joint at its limit is left out while the others keep moving."""
    ik = DLSIK(MODEL)
    q = MODEL.postures["ready"].copy()
    q[2] = MODEL.upper[2] - 0.01
    start_pos, _ = MODEL.fk(q)
    for _ in range(200):
        q = ik.solve(q, np.array([0.05, 0.0, 0.05]), DOWN, dt=0.02)   # too close to the base
        assert np.all(q >= MODEL.lower) and np.all(q <= MODEL.upper)
    assert q[2] == pytest.approx(MODEL.upper[2]) or q[2] < MODEL.upper[2]
    pos, _ = MODEL.fk(q)
    assert np.linalg.norm(pos - [0.05, 0.0, 0.05]) < np.linalg.norm(start_pos - [0.05, 0.0, 0.05])


def test_unreachable_target_approaches_the_closest_point():
    """Far out in front at shoulder height, pointing forward: the arm stretches towards it. The
    closest reachable point is at full reach, 0.664 m from the shoulder axis."""
    ik = DLSIK(MODEL)
    shoulder = np.array([0.0, 0.0, 0.11065])
    target = shoulder + np.array([1.5, 0.0, 0.0])
    forward = MODEL.fk(MODEL.home)[1]            # TCP z along base x
    q = MODEL.postures["ready"].copy()
    errors = []
    for _ in range(400):
        q = ik.solve(q, target, forward, dt=0.02)
        assert np.all(q >= MODEL.lower) and np.all(q <= MODEL.upper) and np.all(np.isfinite(q))
        errors.append(np.linalg.norm(MODEL.fk(q)[0] - target))
    full_reach = np.hypot(0.04975, 0.25) + 0.25 + (0.458325 - 0.29975)
    assert errors[-1] < errors[0]
    assert errors[-1] == pytest.approx(1.5 - full_reach, abs=0.02)
    assert max(np.diff(errors[-50:])) < 1e-4    # settled, not oscillating away


@pytest.mark.parametrize("bad", [
    dict(target_pos=[np.nan, 0.0, 0.1]),
    dict(target_pos=[0.3, np.inf, 0.1]),
    dict(target_quat_xyzw=[np.nan, 0.0, 0.0, 1.0]),
    dict(target_quat_xyzw=[0.0, 0.0, 0.0, 0.0]),
    dict(target_pos=[0.3, 0.0]),
    dict(q_current=np.full(6, np.nan)),
    dict(q_current=np.zeros(7)),
    dict(dt=0.0),
    dict(dt=float("nan")),
])
def test_bad_input_raises(bad):
    ik = DLSIK(MODEL)
    args = dict(q_current=MODEL.postures["ready"], target_pos=[0.3, 0.0, 0.1],
                target_quat_xyzw=DOWN, dt=0.02)
    args.update(bad)
    with pytest.raises(ValueError):
        ik.solve(**args)
    with pytest.raises(ValueError):
        IKConfig(velocity_scale=0.0)
    with pytest.raises(ValueError):
        MODEL.fk([0.0, np.nan, 0, 0, 0, 0])


def test_solve_is_fast():
    """One 50 Hz IK update (2 DLS iterations). Target < 200 us on an idle core; the bound here is
    a regression guard only (10 ms of IK would starve a 50 Hz loop), because on the shared test
    box timings swing 10x with its load. The measured figure is printed (pytest -s)."""
    ik = DLSIK(MODEL)
    q = MODEL.postures["ready"]
    target = (np.array([0.3, 0.05, 0.08]), DOWN)
    n = 200
    per_call = min(timeit.repeat(lambda: ik.solve(q, *target, 0.02), number=n, repeat=5)) / n
    print(f"DLSIK.solve: {per_call * 1e6:.0f} us per call")
    assert per_call < 5e-3
