"""Ctrl-C (SIGINT) or SIGTERM stops `robot-rl train` cleanly: after the current env step, with a
checkpoint of everything done so far, exit code 130 and a line saying the same command
resumes; the same command then continues from there. A second signal quits at once.

Real processes (`python -m robot_rl.cli train`), real signals by pid, cleaned up in a finally.
point_reach (no physics), tiny networks: ~20-30 s on 2 busy cores.
"""
from __future__ import annotations

import json
import signal

import pytest

from robot_rl.buffers import ReplayBuffer
from test_resume_kill import start_train, wait_for_frames, write_config


def _stop_when(proc, online_dir, frames: int, log, sig) -> None:
    wait_for_frames(proc, online_dir, frames, log)
    proc.send_signal(sig)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_run_with_a_checkpoint_and_the_same_command_resumes(tmp_path, sig):
    run_dir = tmp_path / "run"
    # No periodic checkpoint: the only one is the stop's.
    cfg = write_config(run_dir, steps=400, checkpoint_every=0)
    online_dir = run_dir / "buffers" / "online"
    log = tmp_path / "train.log"
    proc = None
    try:
        proc = start_train(cfg, log)
        _stop_when(proc, online_dir, 150, log, sig)
        assert proc.wait(timeout=60) == 130, log.read_text()[-3000:]
        out = log.read_text()
        assert "stopping after this env step" in out and "the same command resumes" in out
        stopped = json.loads([line for line in out.splitlines() if line.startswith('{"stopped"')][-1])
        # The checkpoint holds every update done; its step count is what the buffer committed
        # (the unfinished episode was dropped, never committed).
        counters = json.loads((run_dir / "checkpoint.json").read_text())["metadata"]["counters"]
        assert counters == {"updates": stopped["updates"], "env_steps": stopped["env_steps"]}
        with ReplayBuffer.open(online_dir) as online:
            assert online.transitions_added == stopped["env_steps"] >= 150
        assert stopped["updates"] > 0
        assert not (run_dir / "eval.json").exists()       # no final evaluation on a stop

        proc = start_train(cfg, log)
        assert proc.wait(timeout=240) == 0, log.read_text()[-4000:]
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
    resumed = log.read_text().split('{"stopped"')[-1]
    assert f"resumed at env step {stopped['env_steps']}, episode" in resumed
    assert f"update {stopped['updates']}" in resumed        # the agent is the stop's checkpoint
    ev = json.loads((run_dir / "eval.json").read_text())
    assert ev["env_steps"] >= 400


def test_a_second_signal_quits_at_once(tmp_path):
    run_dir = tmp_path / "run"
    cfg = write_config(run_dir, steps=100_000, checkpoint_every=0)
    log = tmp_path / "train.log"
    proc = None
    try:
        proc = start_train(cfg, log)
        _stop_when(proc, run_dir / "buffers" / "online", 100, log, signal.SIGINT)
        proc.send_signal(signal.SIGINT)        # at once, before the loop gets to stop
        assert proc.wait(timeout=60) != 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
