"""The on-disk format of a replay buffer directory: `.npy` arrays, one header, one lock.

Layout (docs/replay_format.md says the same, with the reasons):

    DIR/header.json        format name, version, the spec (shapes, dtypes, file names) and the
                           committed cursor; replaced atomically on every commit
    DIR/lock               flock'd by the one process that has the buffer open
    DIR/<name>.npy         one fixed-size array per stored field, memory-mapped

The data arrays are written first and the header last, so the header never points at data that
is not there. Everything here is plain numpy + json: nothing is ever unpickled.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl import atomic_io
from robot_rl.file_format import check_version, json_crc32, lock_one_writer, read_json_header, unlock

FORMAT_NAME = "robot_rl.replay"
FORMAT_VERSION = 2                 # 2: per-row checksums (rows.crc32); 1 is read and upgraded
READABLE_VERSIONS = (1, 2)
HEADER_FILE = "header.json"
LOCK_FILE = "lock"


class ReplayFormatError(ValueError):
    """A buffer directory that cannot be trusted: missing, truncated, garbled or mismatched."""


def write_header(directory: Path, spec: dict[str, Any], cursor: dict[str, Any], fsync: bool) -> None:
    """Replaces DIR/header.json atomically: write a temp file, (fsync,) rename over the old one.

    A reader sees either the old header or the new one, never a mix, even after a SIGKILL;
    with fsync=True also after a power loss (the directory entry is fsync'd too). A full disk
    raises OSError(ENOSPC) and leaves the old header in place.
    """
    body = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "spec": spec, "cursor": cursor}
    body["checksum"] = json_crc32({k: body[k] for k in ("format", "version", "spec", "cursor")})
    atomic_io.write_bytes_atomic(directory / HEADER_FILE, json.dumps(body, sort_keys=True, indent=1).encode(),
                                 fsync=fsync)


def fsync_directory(directory: Path) -> None:
    atomic_io.fsync_directory(directory)


def reserve(array: np.memmap, start_row: int, stop_row: int) -> None:
    """Allocates disk blocks for rows [start_row, stop_row) of a memory-mapped .npy file.

    The files are created sparse; a store into a hole of a mapped file on a full disk kills the
    process with SIGBUS. Reserving the blocks first turns a full disk into a clean
    OSError(ENOSPC) raised before anything is written.
    """
    if stop_row <= start_row:
        return
    row = int(np.prod(array.shape[1:], dtype=np.int64)) * array.dtype.itemsize
    fd = os.open(array.filename, os.O_RDWR)
    try:
        os.posix_fallocate(fd, array.offset + start_row * row, (stop_row - start_row) * row)
    except OSError as e:
        raise OSError(e.errno, f"cannot reserve {(stop_row - start_row) * row} bytes in {array.filename} "
                               f"({os.strerror(e.errno)}): the disk is full") from None
    finally:
        os.close(fd)


def read_header(directory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Returns (spec, cursor) from DIR/header.json, or raises ReplayFormatError saying what is wrong.

    A version-1 header has no "checksum" entry in its spec (ReplayBuffer.open upgrades it)."""
    path = directory / HEADER_FILE
    body = read_json_header(directory, HEADER_FILE, "a replay buffer", ReplayFormatError)
    if not isinstance(body, dict) or body.get("format") != FORMAT_NAME:
        raise ReplayFormatError(f"{path}: not a {FORMAT_NAME} header")
    check_version(body.get("version"), READABLE_VERSIONS, path, ReplayFormatError)
    missing = {"spec", "cursor", "checksum"} - body.keys()
    if missing:
        raise ReplayFormatError(f"{path}: header lacks {sorted(missing)}")
    expected = json_crc32({k: body[k] for k in ("format", "version", "spec", "cursor")})
    if body["checksum"] != expected:
        raise ReplayFormatError(f"{path}: header checksum mismatch (stored {body['checksum']!r}, "
                                f"computed {expected!r}); the file is garbled")
    if not isinstance(body["spec"], dict):
        raise ReplayFormatError(f"{path}: the header's spec is not a mapping")
    if ("checksum" in body["spec"]) != (body["version"] >= 2):
        raise ReplayFormatError(f"{path}: a version {body['version']} header "
                                f"{'with' if body['version'] < 2 else 'without'} row checksums")
    return body["spec"], body["cursor"]


def create_array(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A new zero-filled (sparse) .npy file of `shape`, memory-mapped read-write."""
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    return arr


def open_array(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Maps an existing .npy read-write after checking its shape, dtype and length on disk."""
    if not path.is_file():
        raise ReplayFormatError(f"{path}: data file is missing")
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                file_shape, fortran, file_dtype = np.lib.format.read_array_header_1_0(f)
            else:
                file_shape, fortran, file_dtype = np.lib.format.read_array_header_2_0(f)
        except (ValueError, OSError) as e:
            raise ReplayFormatError(f"{path}: not a readable .npy file ({e})") from e
        data_offset = f.tell()
    if tuple(file_shape) != tuple(shape) or np.dtype(file_dtype) != np.dtype(dtype) or fortran:
        raise ReplayFormatError(f"{path}: holds {np.dtype(file_dtype)}{tuple(file_shape)}, the header "
                                f"says {np.dtype(dtype)}{tuple(shape)}")
    expected = data_offset + int(np.prod(shape)) * np.dtype(dtype).itemsize
    actual = path.stat().st_size
    if actual != expected:
        raise ReplayFormatError(f"{path}: {actual} bytes on disk, {expected} expected; "
                                f"the file is truncated or padded")
    return np.lib.format.open_memmap(path, mode="r+")


def lock_directory(directory: Path) -> int:
    """Takes an exclusive flock on DIR/lock; the kernel drops it when the process dies."""
    return lock_one_writer(directory, LOCK_FILE, "buffer is open")


unlock_directory = unlock
