"""The rehearsal, reduced: a whole HIL-SERL session over ROS against `robot-rl up twin`, every
step the real command in its own process (bench/rehearsal.py), the scripted operator
(bench/rehearsal_operator.py) the person. It asserts the chain, not a success rate:
demos recorded over ROS land in the dataset; the classifier trains and is the actor's reward;
interventions reach both buffers; deploy reports a success rate from the classifier.
No mocks: every peer is the real one."""
from __future__ import annotations

import json
import os

import pytest

from robot_rl.bench.rehearsal import parse_args, read_jsonl, rehearse
from robot_rl.datasets import EpisodeDataset


@pytest.mark.slow   # 11 processes, ~250 control steps: 95-110 s at load 7 on the 2 cores, 5 min at load 14
def test_a_session_over_ros_from_demos_to_deploy(tmp_path):
    out = tmp_path / "rehearsal"
    args = parse_args(["--out", str(out), "--demos", "1", "--positives", "4", "--epochs", "1",
                       "--shift-variants", "1", "--steps", "60", "--max-steps", "60", "--learning-starts", "10000",
                       "--sync", "0", "--deploy-episodes", "1", "--stall-steps", "3", "--phase-timeout", "240",
                       "--domain", os.environ["ROS_DOMAIN_ID"]])   # tests/ros/conftest.py's own domain
    report = rehearse(args)     # stops every process it started, also on failure
    assert report.get("error") is None, report.get("error")
    phases = report["phases"]

    # 1. The demos recorded over ROS are in the dataset: the operator's, marked by its key.
    ds = EpisodeDataset.open(out / "demos")
    try:
        assert len(ds) == 1
        (meta,) = ds.episodes
        assert meta["source"] == "ros_teleop" and meta["success_source"] == "operator" and meta["success"]
        assert set(ds.read_episode(0).observations) == {"state"}      # proprio only: cameras=[]
    finally:
        ds.close()
    demos = json.loads((out / "run" / "demos.json").read_text())
    assert demos["loaded"]["episodes"] == 1 and demos["loaded"]["sources"] == {"ros_teleop": 1}

    # 2. The classifier trained on the labels recorded over ROS, and it is the actor's reward:
    # every episode carries its verdict, and a success can only be the classifier's.
    assert phases["labels"]["positives"] >= 4 and phases["labels"]["negatives"] > 0
    assert (out / "clf" / "classifier.safetensors").is_file()
    episodes = read_jsonl(out / "run" / "actor_actor0_episodes.jsonl")
    env_steps = sum(e["length"] for e in episodes)
    assert env_steps >= 60          # the actor finishes the episode in which it reaches its steps
    for e in episodes:
        assert 0.0 <= e["classifier_prob_max"] <= 1.0
        assert e["success_source"] in (None, "classifier") and e["operator_key"] is None
        assert e["success"] == (e["success_source"] == "classifier") == (e["return"] >= 1.0)

    # 3. The operator took over, and its steps reached both buffers: the whole episodes to the
    # online buffer, the intervention segments to the demo buffer beside the recorded demos.
    stats = json.loads((out / "run" / "learner_stats.json").read_text())
    interventions = sum(e["interventions"] for e in episodes)
    assert interventions > 0 and stats["counters"]["interventions"] == interventions
    assert stats["online"] == stats["counters"]["env_steps"] == env_steps
    assert stats["demo"] == demos["demo_transitions"] + interventions
    operator = read_jsonl(out / "operator_train.jsonl")
    assert sum(o["takeover_steps"] for o in operator) > 0

    # 4. Deploy on the hardware profile reports a success rate, judged by the classifier.
    result = json.loads((out / "deploy" / "deploy.json").read_text())
    assert result["profile"] == "franka" and result["backend"] == "ros" and result["reset_mode"] == "cartesian"
    assert result["success_source"] == "classifier" and result["success_rate"] in (0.0, 1.0)
    assert result["ground_truth"] is False and result["error"] is None
    # The bench's report: the truth from the operator's eyes, set against the classifier.
    assert phases["deploy"]["classifier_vs_truth"]["episodes"] == 1
    assert (out / "rehearsal.md").read_text().count("|") > 10
