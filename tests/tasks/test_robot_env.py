"""RobotEnv over the MuJoCo twin: spaces, frames, safety box, seeding, action validation."""
import math

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from robot_rl import tasks
from robot_rl.controllers.rotations import matrix_to_quat, matrix_to_rpy, quat_to_matrix as quat_to_rot, rpy_to_matrix
from robot_rl.tasks.spec import PROPRIO_DIM


@pytest.fixture
def pick_env():
    env = tasks.make_env("pick_cube", obs="state", seed=0)
    yield env
    env.close()


def test_check_env_state_mode(pick_env):
    check_env(pick_env, skip_render_check=True)


def test_check_env_pixels_mode():
    env = tasks.make_env("peg_insert", obs="pixels", seed=0)
    try:
        check_env(env, skip_render_check=True)
        obs, _ = env.reset()
        assert set(obs) == {"state", "wrist", "front"}
        assert obs["state"].shape == (PROPRIO_DIM,)
        assert obs["wrist"].shape == (128, 128, 3) and obs["wrist"].dtype == np.uint8
    finally:
        env.close()


@pytest.mark.parametrize("name,extra", [("pick_cube", 5), ("peg_insert", 3)])
def test_state_mode_includes_object_features(name, extra):
    env = tasks.make_env(name, obs="state", seed=1)
    obs, info = env.reset()
    assert obs["state"].shape == (PROPRIO_DIM + extra,) and obs["state"].dtype == np.float32
    assert env.observation_space.contains(obs)
    assert info["success"] is False
    # At reset the observed pose is the reset frame's origin.
    np.testing.assert_allclose(obs["state"][:3], 0.0, atol=1e-6)
    np.testing.assert_allclose(np.abs(obs["state"][6]), 1.0, atol=1e-6)


def test_actions_are_in_the_end_effector_frame(pick_env):
    """Start yawed by 0.6 rad: a +x action moves along the TCP's x axis, not the base's, and
    the observation (reset frame = the start EE frame) shows it along +x."""
    yaw = 0.6
    start_rot = quat_to_rot((1.0, 0.0, 0.0, 0.0)) @ rpy_to_matrix((0.0, 0.0, yaw))
    for axis in range(3):
        obs, _ = pick_env.reset(seed=3, options={"tcp_quat": matrix_to_quat(start_rot),
                                                 "tcp_pos": np.array([0.5, 0.0, 0.2])})
        p0 = pick_env.last_state.tcp_pos.copy()
        action = np.zeros(7, dtype=np.float32)
        action[axis] = 1.0
        for _ in range(5):
            obs, *_ = pick_env.step(action)
        moved_base = pick_env.last_state.tcp_pos - p0
        expected = start_rot[:, axis]
        assert moved_base @ expected / np.linalg.norm(moved_base) > 0.98
        moved_obs = obs["state"][:3]
        # ~5 mm per step at a = 1 (2 cm asked): the target is the observed pose + delta, which
        # the 0.2 s target filter and joint friction only partly reach each step (as SERL).
        assert moved_obs[axis] > 0.015 and np.abs(np.delete(moved_obs, axis)).max() < 0.25 * moved_obs[axis]


def test_rotation_actions_are_in_the_end_effector_frame(pick_env):
    for axis in range(3):
        pick_env.reset(seed=4)
        r0 = quat_to_rot(pick_env.last_state.tcp_quat)
        action = np.zeros(7, dtype=np.float32)
        action[3 + axis] = 1.0
        for _ in range(5):
            obs, *_ = pick_env.step(action)
        rel = r0.T @ quat_to_rot(pick_env.last_state.tcp_quat)  # rotation in the start EE frame
        rotvec = np.array([rel[2, 1] - rel[1, 2], rel[0, 2] - rel[2, 0], rel[1, 0] - rel[0, 1]]) / 2
        # Slower than the 0.1 rad/step asked: SERL's soft rotational gains against joint friction.
        assert rotvec[axis] > 0.04
        assert np.abs(np.delete(rotvec, axis)).max() < 0.2 * rotvec[axis]
        # The observed relative quaternion says the same.
        np.testing.assert_allclose(obs["state"][3:6], matrix_to_quat(rel)[:3], atol=1e-5)


@pytest.mark.slow  # 1,000 env steps: ~8-14 s on 2 cores
def test_safety_box_holds_under_random_actions():
    env = tasks.make_env("pick_cube", obs="state", seed=7, max_steps=250)
    spec = env.task
    low, high = np.array(spec.box_low), np.array(spec.box_high)
    nominal = quat_to_rot(spec.nominal_quat)
    rng = np.random.default_rng(0)
    env.reset()
    worst = 0.0
    for i in range(1000):
        # Mostly saturated pushes, so the box edges are hit often.
        action = np.clip(rng.normal(0.0, 1.5, 7), -1, 1).astype(np.float32)
        obs, _, terminated, truncated, _ = env.step(action)
        pos, quat = env.last_target
        assert np.all(pos >= low - 1e-9) and np.all(pos <= high + 1e-9), f"target left the box at {i}"
        rpy = matrix_to_rpy(nominal.T @ quat_to_rot(quat))
        assert np.all(rpy >= np.array(spec.rpy_low) - 1e-6) and np.all(rpy <= np.array(spec.rpy_high) + 1e-6)
        tcp = env.last_state.tcp_pos
        worst = max(worst, float(np.max(np.maximum(low - tcp, tcp - high))))
        if terminated or truncated:
            env.reset()
    # The arm itself lags the clipped targets only by the impedance tracking error.
    assert worst < 0.015


def test_seeded_resets_reproduce_exactly():
    def rollout(seed):
        env = tasks.make_env("pick_cube", obs="state", seed=seed)
        obs, _ = env.reset()
        out = [obs["state"]]
        for k in range(5):
            obs, *_ = env.step(np.full(7, 0.3 * (-1) ** k, dtype=np.float32))
            out.append(obs["state"])
        return np.array(out), env.robot.task_state()["cube_pos"]

    a, cube_a = rollout(11)
    b, cube_b = rollout(11)
    c, cube_c = rollout(12)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(cube_a, cube_b)
    assert np.abs(cube_a - cube_c).max() > 1e-3  # another seed places the cube elsewhere


@pytest.mark.parametrize("bad", [
    np.array([np.nan, 0, 0, 0, 0, 0, 0], dtype=np.float32),
    np.array([0, 0, np.inf, 0, 0, 0, 0], dtype=np.float32),
    np.zeros(6, dtype=np.float32),
    np.zeros((1, 7), dtype=np.float32),
])
def test_bad_actions_raise_and_send_nothing(pick_env, bad):
    pick_env.reset()
    pick_env.step(np.array([0.5, 0, 0, 0, 0, 0, 0], dtype=np.float32))
    target_before = [x.copy() for x in pick_env.robot.controller.target]
    steps_before = pick_env.steps
    with pytest.raises(ValueError):
        pick_env.step(bad)
    target_after = pick_env.robot.controller.target
    np.testing.assert_array_equal(target_before[0], target_after[0])
    np.testing.assert_array_equal(target_before[1], target_after[1])
    assert pick_env.steps == steps_before


def test_gripper_semantics_and_grasp_penalty(pick_env):
    pick_env.reset()

    def step(g):
        _, reward, *_, info = pick_env.step(np.array([0, 0, 0, 0, 0, 0, g], dtype=np.float32))
        return pick_env.gripper_command, info["grasp_penalty"], reward

    assert step(0.0) == (0.0, 0.0, 0.0)      # stay (open)
    assert step(1.0) == (1.0, -0.02, 0.0)    # close: a flip, penalised in info only
    assert step(0.6) == (1.0, 0.0, 0.0)      # still closed
    assert step(0.3) == (1.0, 0.0, 0.0)      # dead band: stay
    assert step(-0.7) == (0.0, -0.02, 0.0)   # open
    assert step(-1.0) == (0.0, 0.0, 0.0)


def test_peg_insert_ignores_the_gripper_action():
    env = tasks.make_env("peg_insert", obs="state", seed=0)
    env.reset()
    _, _, _, _, info = env.step(np.array([0, 0, 0, 0, 0, 0, -1], dtype=np.float32))
    assert env.gripper_command == pytest.approx(env.task.gripper_fixed)
    assert info["grasp_penalty"] == 0.0


def test_truncation_at_max_steps():
    env = tasks.make_env("pick_cube", obs="state", seed=0, max_steps=3)
    env.reset()
    results = [env.step(np.zeros(7, dtype=np.float32)) for _ in range(3)]
    assert [r[3] for r in results] == [False, False, True]
    assert all(r[2] is False and r[4]["success"] is False for r in results)


def test_make_env_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown task"):
        tasks.make_env("stack_blocks")
    with pytest.raises(ValueError, match="unknown spec fields"):
        tasks.make_env("pick_cube", max_stepz=3)
    with pytest.raises(ValueError):
        tasks.make_env("pick_cube", obs="depth")


def test_frames_helpers_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        rpy = rng.uniform([-math.pi, -1.5, -math.pi], [math.pi, 1.5, math.pi])
        rot = rpy_to_matrix(rpy)
        np.testing.assert_allclose(quat_to_rot(matrix_to_quat(rot)), rot, atol=1e-9)
        np.testing.assert_allclose(rpy_to_matrix(matrix_to_rpy(rot)), rot, atol=1e-9)


def test_proprio_keys_select_the_state_parts():
    env = tasks.make_env("pick_cube", obs="pixels", seed=0, proprio_keys=("gripper", "tcp_pos"))
    obs, _ = env.reset()
    assert obs["state"].shape == (4,)  # tcp_pos then gripper, the PROPRIO_KEYS order
    np.testing.assert_allclose(obs["state"], [0.0, 0.0, 0.0, env.last_state.gripper], atol=1e-6)
    env.close()
    with pytest.raises(ValueError, match="unknown proprio keys"):
        tasks.make_env("pick_cube", proprio_keys=("joint_pos",))


def test_render_gives_frames_in_state_mode(pick_env):
    pick_env.reset()
    frame = pick_env.render()
    assert frame.shape == (128, 128, 3) and frame.dtype == np.uint8 and frame.std() > 10
