"""The actor node as it runs on a real arm, with the twin node standing in for the robot: the
ROS backend without task/state, a Cartesian reset, the reward classifier run inside the actor,
the operator's keys over the real /spacemouse/joy topic, keys during a reset ignored, and a
stale camera aborting the episode.

The classifier is a real RewardClassifier saved to a file, whose last layer is set by hand
(zero weights, chosen biases) so that its verdict is known (as tests/tasks/test_classifier_reward.py).
No learner runs: transitions stay unacknowledged, which the actor allows."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
import yaml
from rclpy.parameter import Parameter
from sensor_msgs.msg import Joy

from robot_rl.drivers.teleop import joy_buttons
from robot_rl.auth import ensure_key
from robot_rl.reward.classifier import ClassifierConfig, RewardClassifier


def save_classifier(path, p_success: float, cameras=("front",), image_size=128):
    torch.set_num_threads(1)
    model = RewardClassifier(ClassifierConfig(cameras=cameras, image_size=image_size, threshold=0.5))
    with torch.no_grad():
        model.head[-1].weight.zero_()
        model.head[-1].bias.copy_(torch.log(torch.tensor([1 - p_success, p_success])))
    return model.save(path)


def write_config(tmp_path, classifier, **changes):
    cfg = {"task": "pick_cube", "obs": "pixels", "run_dir": str(tmp_path / "run"), "progress": False,
           "threads": 1, "device": "cpu", "reward_classifier": str(classifier),
           "agent": {"hidden_dims": [32, 32], "critic_ensemble_size": 2, "critic_subsample_size": None},
           "task_overrides": {"max_steps": 40, "cameras": ["front"]}, "random_steps": 1000}
    cfg.update(changes)
    ensure_key(cfg["run_dir"])             # the run's auth key, as the learner creates it
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def actor_params(cfg, **params):
    base = {"config_file": str(cfg), "backend": "ros", "spool_dir": "none", "flush_timeout_s": 0.1}
    base.update(params)
    return [Parameter(k, value=v) for k, v in base.items()]


@pytest.fixture
def actor(twin_graph, tmp_path):
    from robot_rl.tasks.ros.actor_node import ActorNode

    clf = save_classifier(tmp_path / "clf", p_success=0.1)       # says "not yet"
    node = ActorNode(context=twin_graph.context, parameter_overrides=actor_params(write_config(tmp_path, clf)))
    twin_graph.add(node)
    node.joy = twin_graph.probe.create_publisher(Joy, "/spacemouse/joy", 10)
    twin_graph.wait_matched(node.joy)
    try:
        yield node
    finally:
        twin_graph.remove(node)
        node.close()
        node.destroy_node()
        twin_graph.probe.destroy_publisher(node.joy)


def press(node, *names):
    """One press and release of operator buttons over /spacemouse/joy."""
    for active in (set(names), set()):
        node.joy.publish(Joy(axes=[0.0] * 6, buttons=joy_buttons(active)))
        time.sleep(0.15)


def run_in_thread(node):
    out: dict = {}
    thread = threading.Thread(target=lambda: out.update(node.actor.run_episode(seed=1)), daemon=True)
    thread.start()
    return thread, out


def wait_for(cond, timeout=20.0, what=""):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_actor_env_has_no_ground_truth_and_a_cartesian_reset(actor):
    env = actor.actor.env
    robot = env.unwrapped.robot
    assert "task/state" not in robot._history and robot.config.reset_mode == "cartesian"
    assert robot.config.cameras == ("front",)
    obs, _ = env.reset(seed=2)
    assert set(obs) == {"state", "front"}
    assert abs(env.unwrapped.last_state.tcp_pos[2] - env.unwrapped.task.tcp_start[2]) < 0.005


def test_classifier_positive_ends_the_episode(actor):
    actor.actor.env.threshold = 0.05        # the same classifier, now past its threshold: success
    r = actor.actor.run_episode(seed=0)
    assert r["success"] and r["success_source"] == "classifier" and r["length"] == 1
    assert r["classifier_success"] and r["classifier_prob_max"] == pytest.approx(0.1, abs=1e-4)
    last = actor.actor.unacked[next(reversed(actor.actor.unacked))]
    assert last.reward == 1.0 and last.terminated


@pytest.mark.parametrize("button, key", [("success", "success"), ("failure", "failure"), ("reset", "rerecord")])
def test_operator_keys_end_and_mark_the_episode(actor, button, key):
    thread, out = run_in_thread(actor)
    wait_for(lambda: actor.actor.env_steps >= 2, what="two steps")
    press(actor, button)
    thread.join(timeout=20.0)
    assert not thread.is_alive()
    assert out["operator_key"] == key and out["length"] < 40
    assert out["success"] is (key == "success") and out["classifier_success"] is False
    last = actor.actor.unacked[next(reversed(actor.actor.unacked))]
    if key == "success":
        assert out["success_source"] == "operator" and last.reward == 1.0 and last.terminated
    elif key == "failure":
        assert last.terminated and last.reward == 0.0
    else:
        assert last.truncated and not last.terminated


def test_a_key_during_the_reset_is_ignored_and_logged(actor):
    keys = actor.actor.keys
    thread, out = run_in_thread(actor)
    wait_for(lambda: keys._resetting, what="the reset")
    press(actor, "success")
    wait_for(lambda: actor.actor.env_steps >= 3, what="steps after the reset")
    assert keys.ignored and keys.ignored[0]["key"] == "success"
    press(actor, "failure")
    thread.join(timeout=20.0)
    assert out["operator_key"] == "failure" and not out["success"] and out["length"] >= 3


def test_state_obs_without_ground_truth_is_refused_at_start(twin_graph, tmp_path):
    from robot_rl.tasks.ros.actor_node import ActorNode

    clf = save_classifier(tmp_path / "clf", p_success=0.1)
    cfg = write_config(tmp_path, clf, obs="state")
    with pytest.raises(ValueError, match="obs=state for pick_cube needs the twin's ground truth"):
        ActorNode(context=twin_graph.context, parameter_overrides=actor_params(cfg))


def test_classifier_that_does_not_match_the_task_is_refused_at_start(twin_graph, tmp_path):
    from robot_rl.tasks.ros.actor_node import ActorNode

    for clf, match in ((save_classifier(tmp_path / "side", 0.1, cameras=("side",)), r"needs camera\(s\) \['side'\]"),
                       (save_classifier(tmp_path / "small", 0.1, image_size=64), "takes 64 px images"),
                       (tmp_path / "missing.safetensors", "does not exist")):
        with pytest.raises(ValueError, match=match) as e:
            ActorNode(context=twin_graph.context, parameter_overrides=actor_params(write_config(tmp_path, clf)))
        assert str(clf) in str(e.value)


def test_stale_camera_aborts_and_marks_the_episode(actor, twin_graph):
    robot = actor.actor.env.unwrapped.robot
    holds = twin_graph.twin.holds
    thread, out = run_in_thread(actor)
    wait_for(lambda: actor.actor.env_steps >= 2, what="two steps")
    sent = actor.actor.stats["resent"]
    robot.config.data_timeout = 0.3
    robot.config.image_max_age = 1e-6        # no camera frame is fresh enough from now on
    thread.join(timeout=20.0)
    assert "/cameras/front/image_raw" in out["aborted"] and not out["success"]
    last = actor.actor.unacked[next(reversed(actor.actor.unacked))]
    assert last.truncated and last.step == out["length"] - 1
    assert actor.actor.stats["resent"] - sent == out["length"]      # re-sent, closed, from its start
    # Nothing more is commanded after the abort: the robot's watchdog holds the arm where it is.
    wait_for(lambda: twin_graph.twin.holds > holds, timeout=5.0, what="the twin's watchdog hold")


def test_bad_input_stops_the_node_processes_with_one_line(tmp_path):
    """The real entry points: the learner refusing scripted demos for a real robot, the actor a
    missing classifier - one line each on stderr, no traceback, a failing exit code."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    cfg = write_config(tmp_path, tmp_path / "missing.safetensors")
    for module, params, expected in (
            ("robot_rl.tasks.ros.learner_node", ["backend:=ros"], "robot-rl-learner: cannot start: robot_backend=ros with "
                                                     "demos=20 scripted twin demos"),
            ("robot_rl.tasks.ros.actor_node", ["backend:=ros"], "robot-rl-actor: cannot start: reward classifier")):
        args = [sys.executable, "-m", module, "--ros-args", "-p", f"config_file:={cfg}"]
        for p in params:
            args += ["-p", p]
        done = subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        assert expected in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_demo_dataset_of_other_cameras_stops_the_learner_with_one_line(tmp_path):
    """A recorded dataset whose observations are not the run's (here: the front camera only, for
    a run observing wrist and front): the learner node exits at start with one line naming the
    dataset and both sets of observations."""
    import subprocess
    import sys
    from pathlib import Path

    import gymnasium as gym

    from robot_rl.datasets import EpisodeDataset

    space = gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (20,), np.float32),
                             "front": gym.spaces.Box(0, 255, (128, 128, 3), np.uint8)})
    EpisodeDataset.create(tmp_path / "front_only", space, 7).close()
    cfg = write_config(tmp_path, save_classifier(tmp_path / "clf", 0.1), demo_dataset=str(tmp_path / "front_only"),
                       task_overrides={"max_steps": 40},
                       buffer={"capacity": 1000, "demo_capacity": 1000})
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "robot_rl.tasks.ros.learner_node", "--ros-args", "-p", f"config_file:={cfg}",
                           "-p", "backend:=ros"], cwd=root, capture_output=True, text=True, timeout=90)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if "cannot start" in line]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert str(tmp_path / "front_only") in lines[0] and "do not match" in lines[0] and "wrist" in lines[0]


def test_the_task_files_reward_section_is_the_reward_when_the_run_names_none(twin_graph, tmp_path):
    """reward.classifier and reward.threshold of the task (here as task_overrides, as a task file
    sets them) reward the actor when the run config has no reward_classifier."""
    from robot_rl.tasks.ros.actor_node import ActorNode

    clf = save_classifier(tmp_path / "clf", p_success=0.1)
    cfg = write_config(tmp_path, "", task_overrides={"max_steps": 40, "cameras": ["front"],
                                                     "reward_classifier": str(clf), "reward_threshold": 0.05})
    node = ActorNode(context=twin_graph.context, parameter_overrides=actor_params(cfg))
    twin_graph.add(node)
    try:
        assert node.actor.env.threshold == pytest.approx(0.05)       # the task's, not the file's 0.5
        r = node.actor.run_episode(seed=0)
        assert r["success"] and r["success_source"] == "classifier" and r["length"] == 1
    finally:
        twin_graph.remove(node)
        node.close()
        node.destroy_node()
