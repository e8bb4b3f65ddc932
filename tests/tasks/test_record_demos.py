"""robot-rl record-demos as an operator uses it: the scripted expert through the operator path,
a keyboard on a real pseudo-terminal marking re-record / failure / success / stop, a recorder
killed with SIGKILL mid-episode, and no SpaceMouse attached."""
from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from robot_rl import cli
from robot_rl.buffers import ReplayBuffer
from robot_rl.datasets import EpisodeDataset, load_into_buffer

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("MUJOCO_GL", "egl")


def test_expert_demos_into_a_dataset_then_a_replay_buffer(tmp_path, capsys):
    out = tmp_path / "demos"
    args = ["record-demos", "--task", "pick_cube", "--episodes", "1", "--input", "expert",
            "--out", str(out)]
    assert cli.main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["recorded"] == summary["written"] == 1 and summary["pending"] == 0
    assert [e["success_source"] for e in summary["episodes"]] == ["env"]
    # A second run appends, starting after the seeds already recorded.
    assert cli.main(args) == 0
    capsys.readouterr()
    ds = EpisodeDataset.open(out)
    assert len(ds) == 2 and [m["seed"] for m in ds.episodes] == [0, 1]
    for ep in ds:
        assert ep.metadata["source"] == "expert" and ep.metadata["success"]
        assert ep.metadata["control_hz"] == 10.0 and ep.intervention.all() and ep.terminated[-1]
    from robot_rl import tasks
    env = tasks.make_env("pick_cube", obs="state")
    buf = ReplayBuffer.create(None, env.observation_space, 7, capacity=1000)
    stats = load_into_buffer(out, buf)
    assert stats["episodes"] == 2 and stats["transitions"] == sum(m["length"] for m in ds.episodes) == len(buf)
    env.close()
    # Another observation mode cannot go into the same dataset.
    assert cli.main(args + ["--obs", "pixels"]) == 2
    assert "another env" in capsys.readouterr().err


class Recorder:
    """robot-rl record-demos in a subprocess; its stderr lines collected on a thread."""

    def __init__(self, args: list[str]):
        env = {**os.environ, "MUJOCO_GL": "egl", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "robot_rl.cli", "record-demos", *args],
                                     cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines: list[str] = []
        self._q: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self._q.put(line.rstrip("\r\n"))

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._q.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None and self._q.empty():
                    break
                continue
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} from the recorder; got:\n" + "\n".join(self.lines))

    def stop_with_ctrl_c(self, master: int) -> dict:
        """Ctrl-C on the recorder's keyboard pty (raw mode: a stop mark); returns its summary."""
        os.write(master, b"\x03")
        self.wait_for("stopped by the operator")
        stdout, _ = self.proc.communicate(timeout=30)
        return json.loads(stdout.strip().splitlines()[-1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._thread.join(timeout=5)


@contextlib.contextmanager
def keyboard_recorder(args: list[str]):
    """record-demos with --input keyboard on a fresh pty; yields (recorder, the pty's master fd),
    and stops the recorder and closes the pty however the test ends."""
    master, slave = os.openpty()
    rec = Recorder(args + ["--input", "keyboard", "--keyboard-device", os.ttyname(slave)])
    try:
        yield rec, master
    finally:
        rec.stop()
        os.close(master)
        os.close(slave)


def test_keyboard_marks_rerecord_failure_success_and_stop_through_a_pty(tmp_path):
    out = tmp_path / "demos"
    with keyboard_recorder(["--task", "pick_cube", "--episodes", "2", "--out", str(out), "--hz", "20",
                            "--max-steps", "400"]) as (rec, master):
        rec.wait_for("attempt 1")   # printed once the env is reset: keys act from here on
        os.write(master, b"r")
        assert "after" in rec.wait_for("re-record asked")
        rec.wait_for("attempt 2")
        os.write(master, b"f")
        rec.wait_for("failure mark")
        rec.wait_for("attempt 3")
        for _ in range(5):          # move: i = +x in the base frame, held by repeated presses
            os.write(master, b"i")
            time.sleep(0.1)
        os.write(master, b"c")      # close the gripper
        time.sleep(0.5)
        os.write(master, b"s")
        assert "saved as episode 0" in rec.wait_for("success (operator)")
        rec.wait_for("episode 2/2 (attempt 4")
        summary = rec.stop_with_ctrl_c(master)
    assert rec.proc.returncode == 0
    assert summary["input"] == "keyboard" and summary["stopped"]
    assert (summary["recorded"], summary["failures"], summary["rerecords"]) == (1, 1, 1)
    ds = EpisodeDataset.open(out)
    assert len(ds) == 1
    ep = ds.read_episode(0)
    assert ep.metadata["source"] == "keyboard" and ep.metadata["success_source"] == "operator"
    assert ep.intervention.all()
    # The key's base-frame twist reached the env as an EE-frame action of the same size.
    moving = np.linalg.norm(ep.actions[:, :3], axis=1)
    assert np.isclose(moving.max(), 0.5, atol=1e-5) and (moving == 0).any()
    assert (ep.actions[:, 6] == 1.0).any()
    # In the twin the env has ground truth: the operator's mark does not invent a terminal reward.
    assert not ep.terminated[-1]


def test_a_killed_recorder_leaves_its_saved_episodes_intact(tmp_path):
    out = tmp_path / "demos"
    rec = Recorder(["--task", "pick_cube", "--episodes", "50", "--input", "expert", "--out", str(out)])
    try:
        rec.wait_for("saved as episode 1", timeout=120)
        rec.wait_for("attempt")     # killed while the next episode runs (or is being saved)
        time.sleep(float(np.random.default_rng().uniform(0.0, 0.4)))
        rec.proc.send_signal(signal.SIGKILL)
        rec.proc.wait(timeout=10)
    finally:
        rec.stop()
    assert rec.proc.returncode == -signal.SIGKILL
    reader = EpisodeDataset.open(out)
    assert len(reader) >= 2
    for ep in reader:
        assert ep.metadata["success"] and len(ep) == ep.metadata["length"]
    with EpisodeDataset.open(out, writable=True) as ds:   # the next run repairs leftovers
        assert len(ds) >= len(reader)
        n = len(ds)
    assert not list((out / "episodes").glob(".tmp-*"))
    from robot_rl import tasks
    env = tasks.make_env("pick_cube", obs="state")
    buf = ReplayBuffer.create(None, env.observation_space, 7, capacity=5000)
    assert load_into_buffer(out, buf)["episodes"] == n
    env.close()



def test_a_full_disk_keeps_demos_in_memory_until_space_is_freed(tiny_disk):
    from robot_rl import tasks
    from robot_rl.tasks.experts import make_expert
    from robot_rl.tasks.apps.record_demos import ExpertOperator, record_demos

    env = tasks.make_env("pick_cube", obs="state")
    dataset = EpisodeDataset.create(tiny_disk / "demos", env.observation_space, 7)
    filler = tiny_disk / "filler"
    filler.write_bytes(b"\0" * (os.statvfs(tiny_disk).f_bavail * os.statvfs(tiny_disk).f_frsize - 20_000))
    lines = []

    def operator_reads(line: str) -> None:
        lines.append(line)
        if "NOT SAVED YET" in line and filler.exists():
            assert "bytes needed" in line and str(tiny_disk / "demos") in line
            filler.unlink()   # the operator frees space; the next save retries first

    try:
        summary = record_demos(env, ExpertOperator(make_expert("pick_cube", env, seed=0)), dataset,
                               episodes=2, task="pick_cube", say=operator_reads)
    finally:
        dataset.close()
        env.close()
    assert any("NOT SAVED YET" in line for line in lines)
    assert summary["recorded"] == summary["written"] == 2 and summary["pending"] == 0
    assert summary["write_error"] is None
    assert [m["seed"] for m in EpisodeDataset.open(tiny_disk / "demos").episodes] == [0, 1]


def test_spacemouse_reports_drive_the_twin_through_the_takeover_path():
    """Recorded HID reports through the driver's decoder (the SpaceMouse's test peer): a push
    to the right (+y in the robot base frame, SERL's mapping) and the left button."""
    import struct

    from robot_rl import tasks
    from robot_rl.drivers.spacemouse import FULL_SCALE, ReplayReportSource
    from robot_rl.actor import tcp_rotation
    from robot_rl.tasks.apps.record_demos import SpaceMouseSource, TeleopOperator

    env = tasks.make_env("pick_cube", obs="state")
    obs, info = env.reset(seed=0)
    motion = bytes([1]) + struct.pack("<6h", int(FULL_SCALE), 0, 0, 0, 0, 0)   # device x: right
    left_button = bytes([3, 1])
    operator = TeleopOperator("spacemouse", [SpaceMouseSource(reports=ReplayReportSource(
        [(0.0, motion), (0.01, left_button)]))], env)
    try:
        deadline = time.monotonic() + 5
        while operator.devices[0].snapshot()[1][:1] != [1] and time.monotonic() < deadline:
            time.sleep(0.01)
        start = env.unwrapped.last_state.tcp_pos.copy()
        for _ in range(8):
            action = operator.act(obs, info)
            # The base-frame twist, rotated into the current end-effector frame.
            np.testing.assert_allclose(tcp_rotation(env) @ action[:3], [0, 1, 0], atol=1e-6)
            assert action[6] == 1.0   # left button: close
            obs, _, _, _, info = env.step(action)
        moved = env.unwrapped.last_state.tcp_pos - start
        assert moved[1] > 0.01 and abs(moved[0]) < 0.3 * moved[1]
        assert operator.poll_marks() == set()
    finally:
        operator.close()
        env.close()


def test_spacemouse_without_a_device_fails_clearly(tmp_path, capsys):
    from robot_rl.drivers.spacemouse import find_devices
    if find_devices():
        pytest.skip("a SpaceMouse is attached here")
    code = cli.main(["record-demos", "--task", "pick_cube", "--episodes", "1", "--input", "spacemouse",
                     "--out", str(tmp_path / "demos")])
    assert code == 2
    err = capsys.readouterr().err
    assert "no spacemouse input" in err and "SpaceMouse found" in err
    assert len(EpisodeDataset.open(tmp_path / "demos")) == 0


def test_a_scene_pause_before_each_attempt_ends_on_a_key_or_its_timeout(tmp_path):
    """--scene-reset-timeout: the tool says so before each attempt and waits; the key that ends
    the pause marks nothing, and a pause nobody ends times out."""
    out = tmp_path / "demos"
    with keyboard_recorder(["--task", "pick_cube", "--episodes", "1", "--out", str(out), "--hz", "20",
                            "--max-steps", "400", "--scene-reset-timeout", "4"]) as (rec, master):
        assert "episode 1/1: reset the scene, then press a key" in rec.wait_for("reset the scene")
        os.write(master, b"r")      # the re-record key ends the pause ...
        rec.wait_for("scene reset: ended by button")
        rec.wait_for("attempt 1")
        time.sleep(1.0)
        os.write(master, b"f")      # ... and did not mark the attempt: this failure mark ends it
        rec.wait_for("failure mark")
        rec.wait_for("reset the scene")
        rec.wait_for("scene reset: timed out", timeout=30)
        rec.wait_for("attempt 2")
        summary = rec.stop_with_ctrl_c(master)
    assert rec.proc.returncode == 0
    assert (summary["failures"], summary["rerecords"], summary["attempts"]) == (1, 0, 2)
    assert not any("re-record asked" in line for line in rec.lines)


def test_a_scene_pause_needs_a_human_input(capsys):
    from robot_rl import cli
    assert cli.main(["record-demos", "--task", "pick_cube", "--episodes", "1", "--input", "expert",
                     "--out", "/nonexistent", "--scene-reset-timeout", "5"]) == 2
    assert "--input expert has none" in capsys.readouterr().err
