"""Across processes: the twin node as its own process behind the env's ROS backend, and
`robot-rl up` (tasks.ros.bringup) starting and stopping the twin graph, composed and as processes.
Every process started here is stopped by its pid in a finally block."""
from __future__ import annotations

import signal
import time

import numpy as np
import yaml
from geometry_msgs.msg import PoseStamped

from robot_rl.tasks.experts import make_expert
from robot_rl.tasks.ros.backend import make_ros_env
from tests.ros.conftest import ROOT, alive, children_of, start_process, stop_process


def _wait_for_pose(graph, timeout: float = 40.0):
    inbox = graph.inbox(PoseStamped, "/franka/ee_pose")
    inbox.wait_count(5, timeout=timeout)
    return inbox


def test_expert_episode_through_the_ros_backend_with_the_twin_in_another_process(graph):
    proc = start_process(["-m", "robot_rl.sim.twin_node", "--ros-args", "-r", "__ns:=/franka",
                          "-p", "task:=pick_cube", "-p", "seed:=3"])
    try:
        inbox = _wait_for_pose(graph)
        rate = inbox.rate(1.0)
        # Real-time rate: bench/ros_graph.py (100 Hz idle); here it must keep streaming.
        assert rate >= 2.0, f"ee_pose at {rate:.0f} Hz across processes"
        env = make_ros_env("pick_cube", obs="pixels", seed=1)
        try:
            obs, info = env.reset()
            assert obs["state"].shape == (20,) and obs["wrist"].shape == (128, 128, 3)
            assert np.abs(obs["state"][:3]).max() < 0.005            # relative to the reset pose
            # The scripted expert (it reads the twin's ground truth, here from task/state)
            # picks the cube through the graph: ~55 steps of 100 ms.
            expert = make_expert("pick_cube", env, seed=0)
            steps, done, reward = 0, False, 0.0
            while not done:
                obs, reward, terminated, truncated, info = env.step(expert.act(obs, info))
                steps += 1
                done = terminated or truncated
            assert info["success"] and terminated and reward == 1.0, f"no success in {steps} steps"
        finally:
            env.close()
        out = stop_process(proc, signal.SIGINT)
        assert proc.returncode == 0, out
        assert "Traceback" not in out, out
    finally:
        stop_process(proc, signal.SIGKILL, timeout=5.0)


def _up_and_down(graph, args: list[str], sig, tmp_path) -> str:
    # The profile's rig file with one change we can see, as a user's own rig: it must reach the node.
    rig = yaml.safe_load((ROOT / "launch" / "twin.yaml").read_text())
    rig["nodes"][0]["parameters"]["base_frame"] = "up_test_base"
    path = tmp_path / "twin.yaml"
    path.write_text(yaml.safe_dump(rig))
    proc = start_process(["-m", "robot_rl.tasks.ros.bringup", str(path), *args])
    try:
        inbox = _wait_for_pose(graph)
        assert inbox.msgs[-1].header.frame_id == "up_test_base"
        # The twin streams as soon as it exists; wait until the whole profile is up (the
        # SpaceMouse probe comes after it) before stopping, or the stop races the bring-up.
        early = _read_until(proc, "rig twin up", timeout=60.0)
        kids = children_of(proc.pid)
        out = early + stop_process(proc, sig, timeout=20.0)
        assert proc.returncode == 0, out
        time.sleep(0.2)
        assert not [k for k in kids if alive(k)], f"children left behind: {kids}\n{out}"
        assert "Traceback" not in out, out
        return out
    finally:
        stop_process(proc, signal.SIGKILL, timeout=5.0)


def _read_until(proc, marker: str, timeout: float) -> str:
    """Reads the process's output line by line until `marker` shows (or it exits / times out)."""
    import select
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if marker in line:
                break
    return "".join(lines)


def test_up_twin_composed_starts_and_stops_cleanly_on_sigint(graph, tmp_path):
    out = _up_and_down(graph, [], signal.SIGINT, tmp_path)
    assert "started /franka/twin" in out and "composed in one process" in out
    assert "spacemouse: skipped, no device" in out           # optional teleop, none attached
    assert "rig twin stopped" in out


def test_up_twin_as_processes_stops_every_child_on_sigint_and_sigterm(graph, tmp_path):
    for sig in (signal.SIGINT, signal.SIGTERM):
        out = _up_and_down(graph, ["--processes"], sig, tmp_path)
        assert "started robot-rl-twin as pid" in out and "every child reaped" in out


def test_up_profile_without_its_hardware_fails_naming_the_device():
    # The widowx profile on a machine with no U2D2: a clear message and exit 2, nothing left running.
    proc = start_process(["-m", "robot_rl.tasks.ros.bringup", "widowx"])
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        stop_process(proc, signal.SIGKILL, timeout=5.0)
    assert proc.returncode == 2, out
    assert "serial port /dev/ttyDXL does not exist" in out and "docs/widowx.md" in out, out
