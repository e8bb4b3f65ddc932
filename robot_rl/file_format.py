"""What robot_rl's on-disk formats share: reading a JSON header, its checksum and version check, one writer.

The replay buffer (buffers/storage.py), the episode dataset (datasets/store.py), checkpoints
(checkpoint.py) and the reward labels (reward/labels.py) each keep their own layout; these are
the pieces they used to write four times. Nothing here changes a byte on disk.
"""
from __future__ import annotations

import fcntl
import json
import os
import zlib
from pathlib import Path
from typing import Any, Mapping


def crc32_hex(data: bytes) -> str:
    """CRC-32 of some bytes as 8 lowercase hex digits (how every format stores it)."""
    return f"{zlib.crc32(data):08x}"


def is_crc32_hex(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 8 and all(c in "0123456789abcdef" for c in value)


def json_crc32(body: Mapping[str, Any]) -> str:
    """CRC-32 of a header's canonical JSON (sorted keys, no spaces): the same for any key order."""
    return crc32_hex(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def read_json_header(directory: str | os.PathLike, file_name: str, kind: str, error: type[Exception]) -> Any:
    """The parsed JSON of DIRECTORY/file_name; `error` with one line naming the directory or file
    when either is missing or the file is not JSON. kind: what the directory should be, with its
    article ("a replay buffer")."""
    directory = Path(directory)
    path = directory / file_name
    if not directory.is_dir():
        raise error(f"{directory}: no such directory (not {kind})")
    if not path.is_file():
        raise error(f"{directory}: not {kind} ({file_name} is missing)")
    try:
        return json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as e:   # JSONDecodeError is a ValueError
        raise error(f"{path}: not JSON ({e}); the file is corrupt") from None


def check_version(version: Any, readable: tuple[int, ...], path: str | os.PathLike,
                  error: type[Exception]) -> int:
    """The header's format version if this code reads it; else `error` naming file and versions.
    A bool is refused although True == 1: a header is written by code, never with a bool."""
    if isinstance(version, bool) or version not in readable:
        raise error(f"{path}: format version {version!r}; this robot_rl reads versions {readable}")
    return version


def lock_one_writer(directory: Path, lock_file: str, what: str) -> int:
    # what: e.g. "buffer is open" -> "DIR: the buffer is open in another process ..."
    """Takes an exclusive flock on DIRECTORY/lock_file and returns its fd; the kernel drops it when
    the process dies, so a killed writer never leaves a stale lock. A second writer gets one
    RuntimeError line naming the directory."""
    fd = os.open(Path(directory) / lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RuntimeError(f"{directory}: the {what} in another process (or twice in this one); "
                           f"one writer at a time") from None
    return fd


def unlock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
