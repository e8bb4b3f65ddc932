"""The operator tools over ROS against the twin node standing in for the robot: a scripted
operator publishes the teleop contract on /spacemouse/twist and /spacemouse/joy; record-demos
--ros saves the episodes it marks successful, record-labels --input ros the frames it labels."""
from __future__ import annotations

import contextlib
import json
import threading
import time

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from sensor_msgs.msg import JointState, Joy

from robot_rl.drivers.teleop import joy_buttons
from robot_rl.datasets import EpisodeDataset
from tests.conftest import call_trigger


class ScriptedOperator:
    """Pushes the TCP down and presses success every `period` s (held 0.2 s), at 50 Hz."""

    def __init__(self, graph, period: float = 1.2):
        self.twist = graph.probe.create_publisher(TwistStamped, "/spacemouse/twist", 10)
        self.joy = graph.probe.create_publisher(Joy, "/spacemouse/joy", 10)
        self.period, self.stop = period, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self.stop.is_set():
            t = (time.monotonic() - t0) % self.period
            msg = TwistStamped()
            msg.twist.linear.z = -0.5
            self.twist.publish(msg)
            held = {"success"} if t > self.period - 0.2 else set()
            self.joy.publish(Joy(axes=[0.0, 0.0, -0.5, 0.0, 0.0, 0.0], buttons=joy_buttons(held)))
            time.sleep(0.02)


@contextlib.contextmanager
def labelling_operator(graph, period_s: float = 1.5):
    """Holds success for the 0.4-0.73 third of every period, then the reset button in its last
    eighth, at 50 Hz, while the `with` runs. A longer period leaves an episode more steps
    between the press that starts it and the reset that ends it, whatever env.reset costs."""
    twist = graph.probe.create_publisher(TwistStamped, "/spacemouse/twist", 10)
    joy = graph.probe.create_publisher(Joy, "/spacemouse/joy", 10)
    stop = threading.Event()

    def operate():
        t0 = time.monotonic()
        while not stop.is_set():
            t = ((time.monotonic() - t0) % period_s) / period_s
            twist.publish(TwistStamped())
            held = {"success"} if 0.4 < t < 0.73 else {"reset"} if t > 0.87 else set()
            joy.publish(Joy(axes=[0.0] * 6, buttons=joy_buttons(held)))
            time.sleep(0.02)

    thread = threading.Thread(target=operate, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2.0)


def test_record_demos_from_the_live_graph(twin_graph, tmp_path, capsys):
    from robot_rl.cli import main

    op = ScriptedOperator(twin_graph)
    op.thread.start()
    try:
        rc = main(["record-demos", "--ros", "--task", "pick_cube", "--obs", "pixels", "--episodes", "2",
                   "--out", str(tmp_path / "demos"), "--max-steps", "40", "--seed", "0"])
    finally:
        op.stop.set()
        op.thread.join(timeout=2.0)
    out = capsys.readouterr()
    assert rc == 0, out.err
    summary = json.loads(out.out.strip().splitlines()[-1])
    assert summary["recorded"] == 2 and summary["input"] == "ros_teleop"
    ds = EpisodeDataset.open(tmp_path / "demos")
    assert len(ds) == 2
    for i, meta in enumerate(ds.episodes):
        assert meta["success"] and meta["success_source"] == "operator" and meta["source"] == "ros_teleop"
        ep = ds.read_episode(i)
        assert 2 <= len(ep) < 40
        # No ground truth: the operator's mark is the sparse success reward.
        assert ep.rewards[-1] == 1.0 and ep.terminated[-1] and ep.rewards[:-1].sum() == 0.0
        assert set(ep.observations) == {"state", "wrist", "front"}
        # The executed actions are the operator's: down in the base frame (the EE z points down).
        assert np.mean(ep.actions[:, 2]) > 0.2
    ds.close()


def test_state_obs_over_ros_is_refused_with_one_line(twin_graph, tmp_path, capsys):
    from robot_rl.cli import main

    rc = main(["record-demos", "--ros", "--task", "pick_cube", "--obs", "state", "--episodes", "1",
               "--out", str(tmp_path / "demos")])
    err = capsys.readouterr().err
    assert rc == 2 and "obs=state for pick_cube needs the twin's ground truth" in err
    assert "Traceback" not in err


def test_record_labels_from_the_live_graph(twin_graph, tmp_path, capsys):
    """Success held 0.5 s of every 1.5 s, then the reset button ends the episode."""
    from robot_rl.cli import main
    from robot_rl.reward.labels import load_labels

    with labelling_operator(twin_graph):
        rc = main(["record-labels", "--ros", "--input", "ros", "--task", "pick_cube", "--out",
                   str(tmp_path / "labels"), "--positives", "3", "--max-episodes", "3", "--cameras", "front"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    stats = json.loads(out.out.strip().splitlines()[-1])
    assert stats["positives"] >= 3 and stats["negatives"] >= 3 and stats["episodes"] <= 3
    # Each episode ended by the reset button (about 1.5 s at 10 Hz), not the 100-step limit.
    assert stats["frames_this_session"] < 40 * stats["episodes"]
    assert len(load_labels(tmp_path / "labels")) == stats["frames_this_session"]


def test_record_labels_resets_the_arm_through_the_controller_and_leaves_the_scene(twin_graph, tmp_path, capsys):
    """record-labels --ros resets as the actor does: a Cartesian move to the task's reset pose
    (here a moved one, via --override), not the driver's reset service - which in the twin would
    also have put the cube somewhere new. The scene is the operator's: the cube stays put."""
    from robot_rl.cli import main
    from robot_rl.tasks.ros.backend import _decode_task_state

    # A fresh scene first (the twin's own reset: arm up, cube on the table), away from what the
    # earlier tests left.
    call_trigger(twin_graph.probe, "/franka/reset")
    time.sleep(0.5)                 # the cube settles
    states = twin_graph.inbox(JointState, "/franka/task/state", qos=5)
    poses = twin_graph.inbox(PoseStamped, "/franka/ee_pose", qos=5)
    states.wait_count(1)
    cube_before = _decode_task_state(states.msgs[-1])["cube_pos"]
    joy = twin_graph.probe.create_publisher(Joy, "/spacemouse/joy", 10)
    stop = threading.Event()

    def operate():      # idle, then the reset button ends the episode
        t0 = time.monotonic()
        while not stop.is_set():
            held = {"success"} if 0.3 < time.monotonic() - t0 < 0.6 else {"reset"} if time.monotonic() - t0 > 1.0 else set()
            joy.publish(Joy(axes=[0.0] * 6, buttons=joy_buttons(held)))
            time.sleep(0.02)

    thread = threading.Thread(target=operate, daemon=True)
    thread.start()
    try:
        rc = main(["record-labels", "--ros", "--input", "ros", "--task", "pick_cube", "--out", str(tmp_path / "l"),
                   "--positives", "1", "--max-episodes", "1", "--cameras", "front",
                   "--override", "tcp_start=[0.45, 0.05, 0.25]", "--override", "tcp_start_xy_range=0"])
    finally:
        stop.set()
        thread.join(timeout=2.0)
    assert rc == 0, capsys.readouterr().err
    pos = poses.msgs[-1].pose.position
    np.testing.assert_allclose([pos.x, pos.y, pos.z], [0.45, 0.05, 0.25], atol=0.01)
    np.testing.assert_allclose(_decode_task_state(states.msgs[-1])["cube_pos"], cube_before, atol=0.002)


def test_scene_pause_ends_on_a_new_press_not_a_held_button(twin_graph):
    """robot_rl.tasks.apps.scene_pause over the real teleop topic: a button held from before the pause does not
    end it; a new press does; no press times out."""
    from robot_rl.tasks.ros.teleop import RosTeleopSource
    from robot_rl.tasks.apps.scene_pause import PROMPT, wait_for_scene_reset

    joy = twin_graph.probe.create_publisher(Joy, "/spacemouse/joy", 10)
    held = {"buttons": {"success"}}
    stop = threading.Event()

    def publish():
        while not stop.is_set():
            joy.publish(Joy(axes=[0.0] * 6, buttons=joy_buttons(held["buttons"])))
            time.sleep(0.02)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    source = RosTeleopSource(context=twin_graph.context)
    said: list[str] = []
    try:
        time.sleep(0.2)
        t0 = time.monotonic()
        assert wait_for_scene_reset(source, 0.5, said.append) is None          # success held throughout
        assert time.monotonic() - t0 >= 0.5 and said[0].startswith(PROMPT) and "timed out" in said[-1]
        threading.Timer(0.3, lambda: held.update(buttons={"success", "reset"})).start()
        assert wait_for_scene_reset(source, 10.0, said.append) == joy_buttons({"reset"}).index(1)
    finally:
        stop.set()
        thread.join(timeout=2.0)
        source.close()


def test_record_labels_pauses_for_the_scene_before_each_episode(twin_graph, tmp_path, capsys):
    """--scene-reset-timeout: each episode waits for a button press first; the reset button
    that ends the pause does not also end the episode it starts."""
    from robot_rl.cli import main

    # A 4 s period: the pause ends on the success press (or on the reset press, held on into
    # the episode), and the next reset comes >= 2 s later, so on a loaded CI machine (an
    # env.reset over ROS of up to ~1 s) an episode still runs many steps.
    with labelling_operator(twin_graph, period_s=4.0):
        rc = main(["record-labels", "--ros", "--input", "ros", "--task", "pick_cube", "--out",
                   str(tmp_path / "labels"), "--positives", "2", "--max-episodes", "2", "--cameras", "front",
                   "--scene-reset-timeout", "30"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    stats = json.loads(out.out.strip().splitlines()[-1])
    ended = [line for line in out.err.splitlines() if "scene reset: ended by button" in line]
    assert len(ended) == stats["episodes"] >= 1
    assert "reset the scene, then press a key" in out.err
    # The episodes recorded frames (a pause-ending press did not end them at their first step).
    assert stats["frames_this_session"] > 3 * stats["episodes"]
