"""Shared memory between the Franka node and its worker processes: a seqlock-versioned struct.

One writer, any number of readers, no locks: the writer bumps a sequence counter to an odd
value, writes the fields in place, bumps it to even; a reader copies the fields and retries if
the counter was odd or moved meanwhile. The writer never waits, so the 1 kHz loop never blocks
on the ROS node. Fields are float64 arrays laid out once from a {name: size} spec.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from multiprocessing import shared_memory

import numpy as np

_HEADER = 8  # bytes: the int64 sequence counter


class SharedStruct:
    """Named float64 fields in one shared-memory block, guarded by a seqlock.

    create=True makes the block (the owner unlinks it in close()); create=False attaches.
    untrack: an attaching process that is NOT a multiprocessing child of the creator (its own
    resource tracker would unlink the block when it exits) sets this.
    """

    def __init__(self, spec: dict[str, int], name: str | None = None, create: bool = False,
                 untrack: bool = False):
        self.spec = dict(spec)
        self._offsets: dict[str, slice] = {}
        offset = 0
        for field, size in self.spec.items():
            if size < 1:
                raise ValueError(f"field {field!r} needs size >= 1, got {size}")
            self._offsets[field] = slice(offset, offset + size)
            offset += size
        self.size = offset
        nbytes = _HEADER + 8 * self.size
        self._owner = create
        self.shm = shared_memory.SharedMemory(name=name, create=create, size=nbytes if create else 0)
        if untrack:
            # Python 3.11 registers attached blocks too; the creator owns this one.
            try:
                from multiprocessing import resource_tracker
                resource_tracker.unregister(self.shm._name, "shared_memory")  # type: ignore[attr-defined]
            except Exception:  # pragma: no cover - tracker internals differ per version
                pass
        self._seq = np.ndarray((1,), dtype=np.int64, buffer=self.shm.buf, offset=0)
        self._data = np.ndarray((self.size,), dtype=np.float64, buffer=self.shm.buf, offset=_HEADER)
        if create:
            self._seq[0] = 0
            self._data[:] = 0.0
        # Views the writer fills in place between begin_write()/end_write().
        self.fields = {f: self._data[s] for f, s in self._offsets.items()}
        self._snapshot = np.empty(self.size)

    @property
    def name(self) -> str:
        return self.shm.name

    # ---- writer (one process only) ---------------------------------------------------------
    def begin_write(self) -> dict[str, np.ndarray]:
        self._seq[0] += 1  # odd: a write is in progress
        return self.fields

    def end_write(self) -> None:
        self._seq[0] += 1  # even: consistent again

    def write(self, **values) -> None:
        f = self.begin_write()
        try:
            for k, v in values.items():
                f[k][:] = v
        finally:
            self.end_write()

    # ---- readers ---------------------------------------------------------------------------
    @property
    def version(self) -> int:
        return int(self._seq[0])

    def read(self, timeout: float = 0.1) -> dict[str, np.ndarray]:
        """A consistent copy of every field (each its own array), plus 'version'."""
        deadline = time.monotonic() + timeout
        while True:
            s1 = int(self._seq[0])
            if s1 % 2 == 0:
                self._snapshot[:] = self._data
                if int(self._seq[0]) == s1:
                    out = {f: self._snapshot[s].copy() for f, s in self._offsets.items()}
                    out["version"] = s1
                    return out
            if time.monotonic() > deadline:
                raise TimeoutError("shared struct stayed mid-write (writer died while writing?)")

    def close(self) -> None:
        # Views must go before the buffer can be released.
        self.fields = {}
        self._seq = self._data = self._snapshot = None  # type: ignore[assignment]
        try:
            self.shm.close()
        except BufferError:  # pragma: no cover - a caller still holds a view
            pass
        if self._owner:
            try:
                self.shm.unlink()
            except FileNotFoundError:
                pass


def spawn_process(target, args: tuple, name: str) -> mp.Process:
    """Starts target(*args) in a fresh interpreter ('spawn': no forked rclpy threads or locks)."""
    proc = mp.get_context("spawn").Process(target=target, args=args, name=name, daemon=True)
    proc.start()
    return proc


def stop_process(proc: mp.Process | None, grace: float = 3.0) -> None:
    """Waits for a child that was asked to stop; then SIGTERM, then SIGKILL, by its pid."""
    if proc is None:
        return
    proc.join(grace)
    if proc.is_alive() and proc.pid is not None:
        os.kill(proc.pid, signal.SIGTERM)
        proc.join(1.0)
    if proc.is_alive() and proc.pid is not None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(1.0)
