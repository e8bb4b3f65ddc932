"""Small files replaced atomically: a reader (or a restarted process) sees the old content or
the new one, never a mix, and a failed write (a full disk) leaves the old file untouched.

    write_json_atomic(run_dir / "learner_state.json", state)         # fsync'd by default
    if is_disk_full(err): ...                                        # ENOSPC / EDQUOT

How: write `<name>.tmp` beside the file, optionally fsync it, `os.replace` it over the file,
optionally fsync the directory (so the rename itself survives a power loss). On any error the
temporary file is removed and the error re-raised; the old file is never opened for writing.
Used by the replay buffer header (buffers/storage.py), checkpoints (checkpoint.py), the run's
progress.json (train.py) and the learner's ack table (learner.py).
"""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def is_disk_full(error: BaseException) -> bool:
    """True for the OSErrors a full disk (or quota) raises."""
    return isinstance(error, OSError) and error.errno in _DISK_FULL


def fsync_directory(directory: str | os.PathLike) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_tmp(path: str | os.PathLike, data: bytes, fsync: bool = True) -> Path:
    """Writes `data` to `<path>.tmp` (fsync'd if asked) and returns that path; removes it on error."""
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_bytes_atomic(path: str | os.PathLike, data: bytes, fsync: bool = True) -> None:
    """Replaces `path` with `data` atomically (see the module docstring)."""
    path = Path(path)
    tmp = write_tmp(path, data, fsync)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_directory(path.parent)


def write_json_atomic(path: str | os.PathLike, obj: Any, fsync: bool = True, **dumps_kwargs: Any) -> None:
    write_bytes_atomic(path, json.dumps(obj, **dumps_kwargs).encode(), fsync)
