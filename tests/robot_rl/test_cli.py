"""The `robot-rl` commands a user types, run as subprocesses on the built-in point_reach task."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).parent / "robot-rl")


def _run(*args, timeout=300):
    out = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-2000:]
    return out


def test_train_then_eval_then_demos(tmp_path):
    run = tmp_path / "run"
    # plain_rlpd: the shipped 2-critic, no-BC preset keeps this end-to-end check fast.
    _run("train", "--config", "plain_rlpd", "--task", "point_reach", "--steps", "200", "--run-dir", str(run),
         "--set", "demos=3", "--set", "final_eval_episodes=3", "--set", "progress=false",
         "--set", "threads=1", "--set", "learning_starts=64")
    ev = json.loads((run / "eval.json").read_text())
    assert set(ev) >= {"success_rate", "episodes", "mean_episode_length"} and ev["episodes"] == 3
    assert 0.0 <= ev["success_rate"] <= 1.0

    out = _run("eval", str(run), "--episodes", "4")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["episodes"] == 4 and result["env_steps"] >= 200
    assert (run / "eval_4.json").is_file()

    out = _run("demos", "--task", "point_reach", "--episodes", "2", "--out", str(tmp_path / "demos"))
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    assert stats["demos"] == 2 and stats["transitions"] > 0
    from robot_rl.buffers import ReplayBuffer
    with ReplayBuffer.open(tmp_path / "demos") as buf:
        assert len(buf) == stats["transitions"]


@pytest.mark.parametrize("args, message", [
    (["train", "--set", "agent.discoun=0.9"], "unknown config key"),
    (["train", "--task", "no_such_task", "--steps", "1"], "unknown task"),
])
def test_bad_config_and_task_fail_clearly(tmp_path, args, message):
    out = subprocess.run([EXE, *args, "--run-dir", str(tmp_path / "r")], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode != 0 and message in out.stderr


def test_bench_passes_its_own_options_through():
    # `robot-rl bench WHAT [OPTIONS]`: each benchmark parses its own options (they once got
    # only --quick, and `bench impedance` crashed on the call); the impedance one is quick.
    out = _run("bench", "impedance", "--calls", "300", timeout=120)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["bench"] == "impedance_compute" and result["calls"] == 300
    assert 0 < result["us_p50"] <= result["us_p99"] <= result["us_max"]
    bad = subprocess.run([EXE, "bench", "impedance", "--no-such-option"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode != 0 and "--no-such-option" in bad.stderr
