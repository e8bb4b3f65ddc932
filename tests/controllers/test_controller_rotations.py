"""Quaternion helpers (x, y, z, w), checked against rotation matrices and MuJoCo."""
import mujoco
import numpy as np
import pytest

from robot_rl.controllers.rotations import (
    axis_angle_to_quat,
    exp_so3,
    matrix_to_quat,
    matrix_to_rpy,
    orientation_error,
    quat_angle,
    quat_conjugate,
    quat_multiply,
    quat_normalize,
    quat_rotate,
    quat_slerp,
    quat_to_axis_angle,
    quat_to_matrix,
    rpy_to_matrix,
    slerp_scalar,
)

rng = np.random.default_rng(0)


def random_quats(n):
    return quat_normalize(rng.normal(size=(n, 4)))


def test_matrix_matches_mujoco():
    for q in random_quats(20):
        expected = np.zeros(9)
        mujoco.mju_quat2Mat(expected, np.r_[q[3], q[:3]])  # MuJoCo is wxyz
        np.testing.assert_allclose(quat_to_matrix(q), expected.reshape(3, 3), atol=1e-12)


def test_multiply_composes_rotations_and_batches():
    a, b = random_quats(50), random_quats(50)
    np.testing.assert_allclose(
        quat_to_matrix(quat_multiply(a, b)), quat_to_matrix(a) @ quat_to_matrix(b), atol=1e-12
    )
    v = rng.normal(size=(50, 3))
    np.testing.assert_allclose(quat_rotate(a, v), np.einsum("nij,nj->ni", quat_to_matrix(a), v), atol=1e-12)
    np.testing.assert_allclose(quat_multiply(a, quat_conjugate(a)), np.tile([0, 0, 0, 1.0], (50, 1)), atol=1e-12)


def test_axis_angle_round_trip_and_identity():
    rv = rng.normal(size=(30, 3))
    rv *= (rng.uniform(0, np.pi - 1e-3, size=(30, 1)) / np.linalg.norm(rv, axis=1, keepdims=True))
    np.testing.assert_allclose(quat_to_axis_angle(axis_angle_to_quat(rv)), rv, atol=1e-10)
    np.testing.assert_allclose(axis_angle_to_quat(np.zeros(3)), [0, 0, 0, 1.0])
    np.testing.assert_allclose(quat_to_axis_angle([0, 0, 0, -1.0]), np.zeros(3), atol=1e-12)
    # 90 degrees about z turns x into y.
    np.testing.assert_allclose(quat_rotate(axis_angle_to_quat([0, 0, np.pi / 2]), [1, 0, 0]), [0, 1, 0], atol=1e-12)


def test_orientation_error_points_from_target_to_current():
    target = random_quats(1)[0]
    for axis in np.eye(3):
        for angle in (0.05, 0.4, -0.7):
            # current = target rotated by `angle` about a base-frame axis
            current = quat_multiply(axis_angle_to_quat(axis * angle), target)
            e = orientation_error(current, target)
            np.testing.assert_allclose(e, axis * np.sin(angle / 2), atol=1e-12)


def test_orientation_error_double_cover():
    q, t = random_quats(2)
    e = orientation_error(q, t)
    for qq, tt in ((-q, t), (q, -t), (-q, -t)):
        np.testing.assert_allclose(orientation_error(qq, tt), e, atol=1e-12)
    # The short way round: an error near 180 degrees never reports more than sin(90 deg).
    assert np.linalg.norm(orientation_error(q, t)) <= 1.0 + 1e-12


def test_error_shrinks_as_current_rotates_toward_target():
    current, target = random_quats(2)
    norms = [np.linalg.norm(orientation_error(quat_slerp(current, target, s), target)) for s in np.linspace(0, 1, 11)]
    assert np.all(np.diff(norms) < 0)
    assert norms[-1] < 1e-9


def test_slerp_is_exact_in_angle():
    a = random_quats(1)[0]
    b = quat_multiply(axis_angle_to_quat([0.0, 1.2, 0.0]), a)
    for t in (0.0, 0.005, 0.25, 1.0):
        assert quat_angle(quat_slerp(a, b, t), a) == pytest.approx(1.2 * t, abs=1e-9)
    assert quat_angle(quat_slerp(a, -b, 0.5), a) == pytest.approx(0.6, abs=1e-9)  # short way


def test_normalize_rejects_zero_and_nan():
    with pytest.raises(ValueError):
        quat_normalize([0, 0, 0, 0])
    with pytest.raises(ValueError):
        quat_normalize([np.nan, 0, 0, 1])


def test_one_quaternion_matrix_is_the_batch_matrix_bit_for_bit():
    """quat_to_matrix's plain-float path for one quaternion (the IK's) computes what the batch does."""
    q = random_quats(50)
    np.testing.assert_array_equal(np.array([quat_to_matrix(x) for x in q]), quat_to_matrix(q))


def test_matrix_rpy_and_rotation_vector_conversions_agree_with_the_quaternions():
    for q in random_quats(20):
        m = quat_to_matrix(q)
        back = matrix_to_quat(m)
        assert back[3] >= 0.0 and quat_angle(back, q) < 1e-9          # w >= 0, same rotation
        np.testing.assert_allclose(rpy_to_matrix(matrix_to_rpy(m)), m, atol=1e-12)
        np.testing.assert_allclose(exp_so3(quat_to_axis_angle(q)), m, atol=1e-12)
    np.testing.assert_allclose(slerp_scalar(tuple(q), tuple(q), 0.3), q, atol=1e-12)
    a, b = random_quats(2)
    np.testing.assert_allclose(slerp_scalar(tuple(a), tuple(b), 0.4), quat_slerp(a, b, 0.4), atol=1e-12)
