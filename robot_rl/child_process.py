"""Stopping a child process this program started (by its Popen, so by its pid): a signal, a grace
period, then SIGKILL. The benchmarks and tests that start nodes and peers all end them this way."""
from __future__ import annotations

import signal
import subprocess


def stop_child(proc: subprocess.Popen, sig: int | None = signal.SIGINT, grace_s: float = 10.0) -> int:
    """Sends `sig` (None: none, for a peer that stops when its stdin closes), waits up to grace_s
    seconds, then SIGKILLs; returns the exit code."""
    if proc.poll() is None and sig is not None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
