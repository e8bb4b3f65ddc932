"""Suite-wide settings that must hold however pytest is started (make test or plain pytest).

MuJoCo picks its GL backend at import; on a headless machine GLFW aborts the process (exit
134), so offscreen EGL is the default here, as the Makefile sets it. A value set by the
caller wins (tests/sim/test_twin_render.py runs other backends in subprocesses).
Fixtures shared by several folders live here too.
"""
import os
import random
import subprocess
import time

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


@pytest.fixture
def kill_rng() -> random.Random:
    """A random.Random seeded afresh each run, for the moments a kill test strikes at (they should
    vary run to run); `.seed_value` is its seed, for the failure messages that replay a run."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    rng.seed_value = seed
    return rng


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 1 MiB tmpfs: writes there hit a real full disk (ENOSPC)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    cmd = ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)]
    if os.geteuid() != 0 or subprocess.run(cmd, capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a tmpfs (run as root, or under `unshare -rm`)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def wait_future(future, timeout: float, failure: str):
    """The result of an rclpy future completed by a node spun on another thread; fails with
    `failure` when it is not done within timeout s."""
    deadline = time.monotonic() + timeout
    while not future.done():
        assert time.monotonic() < deadline, failure
        time.sleep(0.005)
    return future.result()


def call_trigger(node, service: str, timeout: float = 10.0):
    """Calls a std_srvs/Trigger service from `node` (spun on another thread) and returns the
    response; fails naming the service when it is missing or does not answer within timeout s."""
    from std_srvs.srv import Trigger

    client = node.create_client(Trigger, service)
    try:
        assert client.wait_for_service(timeout_sec=min(timeout, 10.0)), f"no service {service}"
        future = client.call_async(Trigger.Request())
        wait_future(future, timeout, f"{service} did not answer in {timeout} s")
        return future.result()
    finally:
        node.destroy_client(client)
