"""Waiting out a full disk instead of crashing or dropping data.

    online = WaitWhenDiskFull(ReplayBuffer.open(path), stop=stop_event.is_set)
    online.add(...); online.commit()      # on ENOSPC: log, wait, retry until written or stopped

A replay buffer raises OSError(ENOSPC) from add() before it changes anything (its disk blocks
are reserved before a slot is written, buffers/storage.reserve) and from commit() before the
new header replaces the old one. So an add or a commit can simply be tried again: the caller
keeps the transition in memory (it is not acknowledged: nothing was committed), the error is
logged and shown in `status`, and the write is retried every `retry_s` until it succeeds or
`stop()` says the operator gave up (then `DiskFullError` is raised; still nothing acked).
Any other error passes through at once.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from robot_rl.atomic_io import is_disk_full

log = logging.getLogger("robot_rl.buffers")


class DiskFullError(OSError):
    """The disk stayed full until the operator stopped the run; the data was not acknowledged."""


def wait_when_disk_full(fn: Callable[[], Any], what: str, status: dict[str, Any] | None = None,
                        stop: Callable[[], bool] = lambda: False, retry_s: float = 1.0,
                        log_every_s: float = 30.0, sleep: Callable[[float], None] = time.sleep) -> Any:
    """Calls fn() until it does not fail for a full disk; see the module docstring.

    status (optional, updated in place): {"disk_full": bool, "error": str, "since": float,
    "retries": int} so a progress bar or a stats file can show it."""
    first, last_log, retries = None, -float("inf"), 0
    while True:
        try:
            result = fn()
        except OSError as e:
            if not is_disk_full(e):
                raise
            now = time.monotonic()
            if first is None:
                first = now
            if now - last_log >= log_every_s:
                log.error("disk full while %s: %s - nothing is acknowledged; retrying every %.0f s "
                          "until there is room (free some disk space) or the run is stopped",
                          what, e, retry_s)
                last_log = now
            if status is not None:
                status.update(disk_full=True, error=f"{what}: {e}", since=first, retries=retries)
            if stop():
                raise DiskFullError(e.errno, f"stopped while the disk was full ({what}): {e}") from e
            retries += 1
            sleep(retry_s)
            continue
        if first is not None:
            log.warning("disk writable again: %s succeeded after %d retries (%.0f s)",
                        what, retries, time.monotonic() - first)
            if status is not None:
                status.update(disk_full=False, error="", retries=retries)
        return result


class WaitWhenDiskFull:
    """A ReplayBuffer whose add() and commit() wait out a full disk (everything else delegates)."""

    def __init__(self, buffer: Any, status: dict[str, Any] | None = None,
                 stop: Callable[[], bool] = lambda: False, retry_s: float = 1.0):
        self.buffer = buffer
        self.status = status if status is not None else {"disk_full": False, "error": ""}
        self._stop, self._retry_s = stop, retry_s

    def add(self, *args: Any, **kwargs: Any) -> None:
        wait_when_disk_full(lambda: self.buffer.add(*args, **kwargs), f"writing {self.buffer.directory}",
                            self.status, self._stop, self._retry_s)

    def commit(self) -> None:
        wait_when_disk_full(self.buffer.commit, f"committing {self.buffer.directory}",
                            self.status, self._stop, self._retry_s)

    def __len__(self) -> int:
        return len(self.buffer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.buffer, name)
