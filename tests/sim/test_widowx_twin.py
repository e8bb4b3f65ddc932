"""The WidowX 250 twin (sim/widowx.py): MuJoCo physics, servo PIDs, the DLS IK in front, and the
widowx_pick_cube task running through the unchanged RobotEnv."""
from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from robot_rl import tasks
from robot_rl.controllers.widowx_model import WIDOWX_250S
from robot_rl.sim.twin import TwinRobot
from robot_rl.sim.widowx import WidowXSceneConfig, WidowXTwin, WidowXTwinConfig
from robot_rl.tasks.experts import make_expert

DOWN = np.array([1.0, 0.0, 0.0, 0.0])


def down_with_yaw(yaw: float) -> np.ndarray:
    return np.array([math.cos(yaw / 2), math.sin(yaw / 2), 0.0, 0.0])   # Rz(yaw) Rx(pi)


def angle_between(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * math.acos(min(1.0, abs(float(np.dot(a, b)))))


@pytest.fixture(scope="module")
def twin():
    robot = WidowXTwin(WidowXTwinConfig(scene=WidowXSceneConfig(objects="cube")))
    yield robot
    robot.close()


def test_twin_kinematics_are_the_model_kinematics(twin):
    """The MJCF built in code puts the TCP site exactly where the IK's model says."""
    m, d = twin.model, mujoco.MjData(twin.model)
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.uniform(WIDOWX_250S.lower, WIDOWX_250S.upper)
        d.qpos[:6] = q
        mujoco.mj_kinematics(m, d)
        pos, quat = WIDOWX_250S.fk(q)
        np.testing.assert_allclose(d.site_xpos[m.site("tcp").id], pos, atol=1e-9)
        wxyz = np.zeros(4)
        mujoco.mju_mat2Quat(wxyz, d.site_xmat[m.site("tcp").id])
        assert angle_between(np.r_[wxyz[1:], wxyz[0]], quat) < 1e-6
    # Published limits and masses went into the model.
    np.testing.assert_allclose(m.jnt_range[:6], np.c_[WIDOWX_250S.lower, WIDOWX_250S.upper])
    assert m.body("upper_arm_link").mass[0] == pytest.approx(0.430811)
    np.testing.assert_allclose(m.actuator_forcerange[:6, 1], WIDOWX_250S.max_effort)


def test_reset_reaches_the_pose_and_holds(twin):
    state = twin.reset(options={"tcp_pos": [0.3, 0.05, 0.1], "tcp_quat": down_with_yaw(0.3),
                                "cube_pos": [0.25, -0.1, 0.02]})
    assert np.linalg.norm(state.tcp_pos - [0.3, 0.05, 0.1]) < 3e-3
    assert angle_between(state.tcp_quat, down_with_yaw(0.3)) < 0.02
    assert state.q.shape == (6,) and state.gripper < 0.05
    for _ in range(5):
        state = twin.wait_step()
    assert np.linalg.norm(state.tcp_vel) < 0.02   # still, under gravity, on the servo PIDs


def test_tracks_ee_targets_through_ik_within_5mm(twin):
    twin.reset(options={"tcp_pos": [0.28, 0.0, 0.14], "tcp_quat": DOWN})
    targets = [([0.22, -0.08, 0.05], 0.0), ([0.38, 0.1, 0.2], 0.5), ([0.2, -0.12, 0.03], -0.7),
               ([0.32, 0.0, 0.12], 0.0)]
    for pos, yaw in targets:
        pos, quat = np.array(pos), down_with_yaw(yaw)
        for _ in range(25):   # 2.5 s
            twin.command(pos, quat, 0.0)
            state = twin.wait_step()
        assert np.linalg.norm(state.tcp_pos - pos) < 5e-3, (pos, state.tcp_pos)
        assert angle_between(state.tcp_quat, quat) < 0.02


def _follow_goals(twin, n_updates: int) -> np.ndarray:
    """Runs n IK updates; checks each goal against the limits; returns the max joint speeds."""
    bound = WIDOWX_250S.max_velocity * twin.physics_per_ik * twin.model.opt.timestep
    previous = twin.q_goal
    max_speed = np.zeros(6)
    for _ in range(n_updates):
        twin._run_physics(twin.physics_per_ik)   # one IK update per call
        goal = twin.q_goal
        assert np.all(np.abs(goal - previous) <= bound + 1e-9)
        assert np.all(goal >= WIDOWX_250S.lower) and np.all(goal <= WIDOWX_250S.upper)
        q = twin.data.qpos[:6]
        assert np.all(q >= WIDOWX_250S.lower - 0.02) and np.all(q <= WIDOWX_250S.upper + 0.02)
        max_speed = np.maximum(max_speed, np.abs(twin.data.qvel[:6]))
        previous = goal
    return max_speed


def test_joint_goals_respect_velocity_and_position_limits(twin):
    """Every IK goal stays within the joint limits and within max_velocity / ik_hz of the
    previous goal. A big reachable move (across the workspace, 1.3 rad of waist) runs at the
    goal's speed limit; the measured joints follow below the servos' no-load speed. A target far
    out of reach (behind and under the table) keeps goals and joints within their limits."""
    twin.reset(options={"tcp_pos": [0.28, -0.1, 0.14], "tcp_quat": DOWN})
    twin.command(np.array([0.05, 0.3, 0.25]), down_with_yaw(1.0), 0.0)
    max_speed = _follow_goals(twin, 100)
    assert np.linalg.norm(twin.wait_step().tcp_pos - [0.05, 0.3, 0.25]) < 5e-3
    assert max_speed[0] > 0.8 * WIDOWX_250S.max_velocity[0]       # the waist ran near its limit
    assert np.all(max_speed < 1.1 * np.array(twin.config.scene.servo.no_load_speed))
    twin.command(np.array([-0.6, 0.3, -0.3]), down_with_yaw(2.5), 0.0)
    _follow_goals(twin, 60)
    assert np.any(np.abs(twin.q_goal - WIDOWX_250S.postures["ready"]) > 0.5)   # it did move


def test_gripper_opens_and_closes(twin):
    twin.reset(options={"tcp_pos": [0.28, 0.0, 0.14], "tcp_quat": DOWN})
    for _ in range(5):
        twin.command(np.array([0.28, 0.0, 0.14]), DOWN, 1.0)
        state = twin.wait_step()
    assert state.gripper > 0.95
    for _ in range(5):
        twin.command(np.array([0.28, 0.0, 0.14]), DOWN, 0.0)
        state = twin.wait_step()
    assert state.gripper < 0.05


@pytest.mark.parametrize("pos, quat, gripper", [
    ([np.nan, 0.0, 0.1], DOWN, 0.0), ([0.3, 0.0, 0.1], [0.0, 0.0, 0.0, 0.0], 0.0),
    ([0.3, 0.0, 0.1], DOWN, float("nan")), ([0.3, 0.0], DOWN, 0.0),
])
def test_bad_commands_raise_and_keep_the_target(twin, pos, quat, gripper):
    twin.reset(options={"tcp_pos": [0.28, 0.0, 0.14], "tcp_quat": DOWN})
    with pytest.raises(ValueError):
        twin.command(np.array(pos), np.array(quat), gripper)
    state = twin.wait_step()
    assert np.linalg.norm(state.tcp_pos - [0.28, 0.0, 0.14]) < 3e-3


def test_unreachable_reset_is_refused(twin):
    with pytest.raises(ValueError, match="reach"):
        twin.reset(options={"tcp_pos": [0.9, 0.0, 0.1], "tcp_quat": DOWN})


def test_pick_cube_env_passes_the_gymnasium_checker():
    env = tasks.make_env("widowx_pick_cube", seed=0)
    try:
        assert isinstance(env.unwrapped.robot, WidowXTwin)
        check_env(env, skip_render_check=True)
        obs, _ = env.reset(seed=1)
        assert obs["state"].shape == (20 + 5,)
    finally:
        env.close()


def test_pixels_mode_renders_both_cameras():
    env = tasks.make_env("widowx_pick_cube", obs="pixels", seed=0)
    try:
        obs, _ = env.reset(seed=0)
        for cam in ("wrist", "front"):
            assert obs[cam].shape == (128, 128, 3) and obs[cam].dtype == np.uint8
            assert obs[cam].std() > 5.0   # a scene, not a blank frame
        obs, *_ = env.step(np.zeros(7, np.float32))
        assert env.observation_space.contains(obs)
    finally:
        env.close()


def test_robot_model_selects_the_task_variant():
    assert tasks.task_name_for("pick_cube", "widowx") == "widowx_pick_cube"
    assert tasks.task_name_for("widowx_pick_cube", "franka") == "pick_cube"
    assert tasks.task_name_for("pick_cube", None) == "pick_cube"
    with pytest.raises(ValueError, match="no widowx variant"):
        tasks.task_name_for("peg_insert", "widowx")
    with pytest.raises(ValueError, match="unknown robot_model"):
        tasks.task_name_for("pick_cube", "ur5")
    env = tasks.make_env("pick_cube", robot_model="widowx", max_steps=5)
    try:
        assert env.unwrapped.task.name == "widowx_pick_cube" and env.unwrapped.task.max_steps == 5
        assert isinstance(env.unwrapped.robot, WidowXTwin)
    finally:
        env.close()
    franka = tasks.make_env("pick_cube")   # the Franka default is untouched
    try:
        assert isinstance(franka.unwrapped.robot, TwinRobot)
    finally:
        franka.close()


def test_scripted_expert_picks_the_cube():
    """The pick_cube expert, unchanged, in the WidowX twin: >= 90% over 20 seeded episodes
    (measured 100/100 over 100 episodes, 18 steps on average)."""
    env = tasks.make_env("widowx_pick_cube", seed=0)
    expert = make_expert("widowx_pick_cube", env, seed=0)
    successes = 0
    try:
        for episode in range(20):
            obs, info = env.reset(seed=episode)
            for _ in range(env.unwrapped.task.max_steps):
                obs, reward, terminated, truncated, info = env.step(expert.act(obs, info))
                if terminated or truncated:
                    break
            successes += info["success"]
    finally:
        env.close()
    assert successes >= 18


def test_twin_node_runs_the_widowx_under_its_namespace():
    """robot_rl.sim.twin_node with robot_model=widowx, in a real rclpy graph (private Context, executor
    thread with a stop path): the WidowX joints on joint_states, and an equilibrium_pose sent on
    /widowx moves the TCP there through the IK (ee_pose within 5 mm)."""
    import os
    import time

    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    from geometry_msgs.msg import PoseStamped
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import JointState

    from robot_rl.controllers.node import COMMAND_QOS, pose_from_msg, pose_msg
    from robot_rl.sim.twin_node import TwinNode
    from robot_rl.tasks.ros.node_thread import NodeThread

    # A SingleThreadedExecutor: Jazzy's MultiThreadedExecutor busy-loops holding the GIL
    # (ros2/rclpy#1452) and slowed this twin's physics thread to ~0.05x real time.
    spin = NodeThread("probe", start=False)
    try:
        params = {"robot_model": "widowx", "base_frame": "wx250s/base_link", "cameras": [""],
                  "watchdog_timeout": 0.0}
        twin = spin.add(TwinNode(context=spin.context, namespace="/widowx",
                                 parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]))
        probe = spin.node
        latest: dict = {}
        probe.create_subscription(JointState, "/widowx/joint_states",
                                  lambda m: latest.__setitem__("js", m), 10)
        probe.create_subscription(PoseStamped, "/widowx/ee_pose", lambda m: latest.__setitem__("pose", m), 10)
        pub = probe.create_publisher(PoseStamped, "/widowx/equilibrium_pose", COMMAND_QOS)
        spin.start()

        assert twin.spec.name == "widowx_pick_cube"
        deadline = time.monotonic() + 20.0
        while "js" not in latest or "pose" not in latest:
            assert time.monotonic() < deadline, "no state from the WidowX twin node"
            time.sleep(0.02)
        js = latest["js"]
        assert tuple(js.name) == WIDOWX_250S.joint_names and len(js.effort) == 6
        assert latest["pose"].header.frame_id == "wx250s/base_link"

        target = np.array([0.25, 0.06, 0.1])
        sim_start = twin.twin.data.time
        while twin.twin.data.time - sim_start < 3.0:   # sim time: the box may run slower
            pub.publish(pose_msg(target, DOWN, "wx250s/base_link", probe.get_clock().now().to_msg()))
            assert time.monotonic() < deadline + 60.0, "the twin node's physics stalled"
            time.sleep(0.05)
        time.sleep(0.1)
        pos, quat = pose_from_msg(latest["pose"])
        assert np.linalg.norm(pos - target) < 5e-3 and angle_between(quat, DOWN) < 0.02
        assert twin.rejected == 0
    finally:
        spin.close()
