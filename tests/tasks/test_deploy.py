"""robot-rl deploy: a run's policy without learning, in the in-process twin and over ROS against
a real twin node in another process; the outputs it writes; clear, fast failures (no graph,
non-finite actions, state runs on hardware)."""
from __future__ import annotations

import json
import signal
import time

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

# The ROS test helpers; importing them also picks this session's own ROS_DOMAIN_ID.
from tests.ros.conftest import start_process, stop_process

from robot_rl import tasks
from robot_rl import checkpoint as ckpt
from robot_rl import config as config_lib
from robot_rl.agents.sac import SACAgent
from robot_rl.cli import main
from robot_rl.export import run_spaces
from robot_rl.train import TrainConfig
from robot_rl.tasks.apps.deploy import NonFiniteActionError, run_episode

torch.set_num_threads(1)

EPISODE_KEYS = {"episode", "seed", "success", "return", "length", "cycle_time_s", "wall_s"}
SUMMARY_KEYS = {"task", "obs", "profile", "backend", "clock", "episodes", "success_rate",
                "mean_cycle_time_s", "median_cycle_time_s", "mean_return", "per_episode", "error"}


def _run_dir(tmp_path, name: str = "run", obs: str = "state", poison: bool = False):
    """A pick_cube run directory holding a freshly initialised agent's checkpoint; `poison`
    puts NaN into the actor's output layer, so the policy's actions are NaN."""
    run = tmp_path / name
    run.mkdir()
    cfg = TrainConfig(task="pick_cube", obs=obs, run_dir=str(run))
    config_lib.save(cfg, run / "config.yaml")
    agent = SACAgent(cfg.agent, *run_spaces(cfg), seed=0)
    if poison:
        with torch.no_grad():
            agent.actor.head.bias.fill_(float("nan"))
    ckpt.save_agent(agent, run / "checkpoint", {"counters": {"env_steps": 42}})
    return run


def _files(folder):
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def _gif_ms(path) -> int:
    """Play time of an animated GIF in ms. (Pillow merges identical consecutive frames into one
    longer frame, so the play time, not the frame count, says how many steps it shows.)"""
    with Image.open(path) as im:
        assert im.format == "GIF" and im.size == (128, 128)
        return sum(frame.info["duration"] for frame in ImageSequence.Iterator(im))


@pytest.mark.slow   # ~10 s idle, up to ~20 s on the loaded 2-core box: two deploys, with video
def test_inprocess_twin_deploy_writes_results_png_and_videos(tmp_path, capsys):
    run = _run_dir(tmp_path)
    before = _files(run)
    out = tmp_path / "out"
    assert main(["deploy", str(run), "--profile", "twin", "--episodes", "2", "--max-steps", "6",
                 "--video", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["episodes"] == 2 and printed["backend"] == "inprocess"

    result = json.loads((out / "deploy.json").read_text())
    assert SUMMARY_KEYS <= set(result)
    assert result["backend"] == "inprocess" and result["clock"] == "env" and result["error"] is None
    assert result["checkpoint_env_steps"] == 42 and result["deterministic"] is True
    assert len(result["per_episode"]) == 2
    for ep in result["per_episode"]:
        assert EPISODE_KEYS <= set(ep)
        # A fresh policy does not pick the cube in 6 steps: a fail, a full-length episode.
        assert ep["success"] is False and ep["length"] == 6 and ep["cycle_time_s"] is None
        assert set(ep["videos"]) == {"wrist", "front"}
        for rel in ep["videos"].values():
            assert _gif_ms(out / rel) == 700     # the reset frame and one per step, 100 ms each
    assert result["success_rate"] == 0.0 and result["mean_cycle_time_s"] is None
    # Distinct seeds place the cube differently: the episodes are not replays of each other.
    assert result["per_episode"][0]["seed"] != result["per_episode"][1]["seed"]
    with Image.open(out / "deploy.png") as png:
        assert png.format == "PNG" and png.size[0] > 300
    # Nothing learned, nothing recorded: the run directory is exactly as it was.
    assert _files(run) == before

    # Deterministic: the same seeds give the same returns and lengths (no video this time).
    assert main(["deploy", str(run), "--episodes", "2", "--max-steps", "6", "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "deploy.json").read_text())
    assert [(e["return"], e["length"]) for e in again["per_episode"]] == \
           [(e["return"], e["length"]) for e in result["per_episode"]]
    assert "videos" not in again["per_episode"][0] and not (tmp_path / "again" / "videos").exists()


def test_cycle_time_is_env_time_to_success_in_process():
    """A policy that succeeds (the scripted expert): cycle time = steps to success / control rate."""
    from robot_rl.tasks.experts import make_expert

    env = tasks.make_env("pick_cube", obs="state")
    try:
        expert = make_expert("pick_cube", env, seed=0)
        record = run_episode(env, lambda obs: expert.act(obs), seed=5, clock="env")
    finally:
        env.close()
    assert record["success"] is True
    assert record["cycle_time_s"] == pytest.approx(record["length"] / env.task.control_hz)
    assert 1.0 < record["cycle_time_s"] < 10.0


def test_without_ground_truth_success_is_unknown_unless_a_success_fn_judges_it():
    """A real robot has no ground truth; the twin plays one here by hiding its task state (the
    hardware drivers behind the ROS backend are tested against their protocol peers elsewhere)."""
    from robot_rl.tasks.apps.deploy import summarize

    spec = tasks.make_spec("pick_cube", max_steps=4)
    robot = tasks.make_twin(spec, obs="pixels")
    robot.task_state = lambda: {}
    env = tasks.make_env("pick_cube", obs="pixels", robot=robot, max_steps=4)
    try:
        still = lambda obs: np.zeros(7, np.float32)  # noqa: E731
        unknown = run_episode(env, still, seed=1)
        assert unknown["success"] is None and unknown["length"] == 4 and unknown["cycle_time_s"] is None
        assert summarize([unknown])["success_rate"] is None
        # A success function (e.g. the reward classifier) decides, and ends the episode.
        steps = []
        judged = run_episode(env, still, seed=2,
                             success_fn=lambda obs, info: steps.append(obs["wrist"].shape) or len(steps) == 2)
        assert judged["success"] is True and judged["length"] == 2
        assert judged["cycle_time_s"] == pytest.approx(0.2)
        assert summarize([unknown, judged])["success_rate"] == 1.0   # over the judged episodes
    finally:
        env.close()


def test_non_finite_action_is_never_sent_and_the_robot_holds(tmp_path, capsys):
    run = _run_dir(tmp_path, poison=True)
    out = tmp_path / "out"
    assert main(["deploy", str(run), "--episodes", "2", "--max-steps", "5", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "non-finite action" in err and "not sent" in err
    result = json.loads((out / "deploy.json").read_text())
    assert result["error"].startswith("NonFiniteActionError") and result["per_episode"] == []

    # Step by step on the twin: the NaN never reaches the controller, which holds the
    # measured pose (inside the safety box) instead.
    env = tasks.make_env("pick_cube", obs="state")
    try:
        with pytest.raises(NonFiniteActionError, match="not sent"):
            run_episode(env, lambda obs: np.full(7, np.nan, np.float32), seed=1)
        pos, quat = env.robot.controller.target
        assert np.all(np.isfinite(pos)) and np.all(np.isfinite(quat))
        np.testing.assert_allclose(pos, np.clip(env.last_state.tcp_pos, env.task.box_low, env.task.box_high),
                                   atol=1e-9)
        assert env.steps == 0
    finally:
        env.close()


def test_deploy_with_no_graph_up_fails_fast_naming_the_topics(tmp_path, capsys):
    run = _run_dir(tmp_path)
    started = time.monotonic()
    rc = main(["deploy", str(run), "--profile", "twin", "--backend", "ros", "--namespace", "/deploy_nobody",
               "--connect-timeout", "1.5", "--out", str(tmp_path / "out")])
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert rc == 2, err
    assert elapsed < 10.0, f"took {elapsed:.1f} s to give up"
    for missing in ("/deploy_nobody/ee_pose (no publisher)", "/deploy_nobody/task/state (no publisher)",
                    "/deploy_nobody/equilibrium_pose (no subscriber)", "/deploy_nobody/reset (no service)"):
        assert missing in err, err
    assert "robot-rl up twin" in err

    # A state run on a real robot is refused before anything starts: it needs the twin's
    # ground truth of the objects.
    rc = main(["deploy", str(run), "--profile", "franka", "--out", str(tmp_path / "out2")])
    assert rc == 1 and "deploy a pixels run" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.flaky(reruns=2, reruns_delay=1)   # wall-clock deadlines on a shared 2-core machine
def test_ros_backend_deploy_against_a_twin_node_process(tmp_path, capsys):
    import rclpy
    from rclpy.context import Context

    from robot_rl.tasks.apps.deploy import required_graph, wait_for_graph

    run = _run_dir(tmp_path)
    proc = start_process(["-m", "robot_rl.sim.twin_node", "--ros-args", "-r", "__ns:=/franka",
                          "-p", "task:=pick_cube", "-p", "seed:=3"])
    try:
        # Wait (patiently: the twin process starts in seconds, longer on a loaded machine)
        # for the graph deploy needs, cameras included.
        context = Context()
        rclpy.init(context=context)
        try:
            wait_for_graph(context, required_graph("/franka", ("wrist", "front"), True), 60.0, "twin")
        finally:
            rclpy.shutdown(context=context)
        out = tmp_path / "out"
        rc = main(["deploy", str(run), "--profile", "twin", "--backend", "ros", "--episodes", "1",
                   "--max-steps", "5", "--video", "--out", str(out), "--connect-timeout", "10"])
        assert rc == 0, capsys.readouterr().err
        result = json.loads((out / "deploy.json").read_text())
        assert result["backend"] == "ros" and result["clock"] == "wall" and result["namespace"] == "/franka"
        assert result["success_source"] == "ground_truth" and result["error"] is None
        (ep,) = result["per_episode"]
        assert ep["length"] == 5 and ep["success"] is False
        # Over ROS the env runs at its control rate in wall time: 5 steps of 100 ms.
        assert 0.4 <= ep["wall_s"] <= 5.0
        # The state run's video comes from the twin node's camera topics.
        for cam in ("wrist", "front"):
            assert _gif_ms(out / ep["videos"][cam]) == 600
        assert (out / "deploy.png").is_file()
        output = stop_process(proc, signal.SIGINT)
        assert proc.returncode == 0, output
    finally:
        stop_process(proc, signal.SIGKILL, timeout=5.0)


def test_a_classifier_that_does_not_fit_the_task_stops_deploy_at_start(tmp_path, capsys):
    """On a robot without ground truth deploy judges success with the run's classifier; one whose
    camera the task lacks stops it at start, one line naming the file (before any graph is
    needed)."""
    from robot_rl.reward.classifier import ClassifierConfig, RewardClassifier

    run = _run_dir(tmp_path, obs="pixels")
    clf = RewardClassifier(ClassifierConfig(cameras=("side",), image_size=128)).save(tmp_path / "side_clf")
    cfg = config_lib.load(TrainConfig, run / "config.yaml")
    cfg.reward_classifier = str(clf)
    config_lib.save(cfg, run / "config.yaml")
    rc = main(["deploy", str(run), "--profile", "franka", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert str(clf) in err and "needs camera(s) ['side']" in err and len(err.strip().splitlines()) == 1
