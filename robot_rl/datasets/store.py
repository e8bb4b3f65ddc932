"""The episode dataset on disk: appendable across runs, crash-safe, versioned (docs/datasets.md).

    DATASET/dataset.json              header: format, version, spec, the committed episodes' metadata, checksum
    DATASET/episodes/episode_000000.npz  one episode (NumPy .npz: arrays + its metadata as JSON)
    DATASET/lock                      flock'd by the one writer

Writing an episode: serialise it in memory, write it to a temporary name in episodes/, fsync,
rename to its final name, fsync the directory, then replace dataset.json the same way. The
header is the commit: readers see exactly the episodes it lists, so a killed writer never leaves
a half episode visible. A writer that opens the dataset repairs leftovers: temporary files are
removed; a complete episode file that the header does not list yet (killed between the rename
and the header) is adopted; anything unreadable is moved aside as *.orphan, never deleted.

A write that fails (full disk, I/O error) raises DatasetWriteError naming the path and the bytes
needed, and the episode stays in memory in `pending` until retry() writes it.

Integrity (version 2): each header entry holds the CRC-32 of its episode file's bytes, checked on
every read and by verify() (which load_into_buffer runs before it adds anything), so a flipped
byte or an episode swapped in from another dataset is refused with the file named. An entry's
`file` must be exactly episode_NNNNNN.npz for its index: no path can point outside episodes/.
A version-1 dataset (no checksums) opens read-only with a warning; opening it writable checks
that every episode decodes, checksums the files as they are and upgrades the header.
"""
from __future__ import annotations

import errno
import io
import json
import logging
import os
import shutil
import time
import uuid
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from robot_rl.atomic_io import fsync_directory
from robot_rl.datasets.episode import STEP_FIELDS, Episode, check_spec, spec_from_space
from robot_rl.closing import ClosedWhenCollected, closed_on_error
from robot_rl.file_format import (check_version, crc32_hex, is_crc32_hex, json_crc32, lock_one_writer,
                                  read_json_header, unlock)

log = logging.getLogger("robot_rl.datasets")

FORMAT = "robot_rl.episodes"
VERSION = 2                # 2: every episode entry carries the CRC-32 of its file ("crc32")
READABLE_VERSIONS = (1, 2)
HEADER_FILE = "dataset.json"
EPISODE_DIR = "episodes"
LOCK_FILE = "lock"
TEMP_PREFIX = ".tmp-"
HEADER_SLACK = 64 * 1024   # room for the header rewrite, counted in the bytes an episode needs


class DatasetFormatError(ValueError):
    """The directory is not a readable dataset of this format and version; names file and problem."""


class DatasetWriteError(RuntimeError):
    """An episode could not be written (e.g. the disk is full). It stays in the writer's pending."""

    def __init__(self, path: Path, bytes_needed: int, bytes_free: int | None, reason: str, pending: int):
        self.path, self.bytes_needed, self.bytes_free, self.reason = Path(path), bytes_needed, bytes_free, reason
        free = "unknown" if bytes_free is None else f"{bytes_free}"
        super().__init__(
            f"cannot write {path}: {reason}; {bytes_needed} bytes needed, {free} bytes free there. "
            f"{pending} episode(s) are kept in memory (dataset.pending): free some space and call "
            f"retry(), or they are lost when the process ends")


def _write_file(path: Path, data: bytes, fsync: bool) -> None:
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        if fsync:
            os.fsync(f.fileno())


def episode_file_name(index: int) -> str:
    return f"episode_{index:06d}.npz"


def encode_episode(episode: Episode, metadata: Mapping[str, Any], compress: bool) -> bytes:
    """The .npz bytes of an episode: obs/<key>, actions, the step fields, metadata (JSON, uint8)."""
    arrays = {f"obs/{k}": a for k, a in episode.observations.items()}
    arrays["actions"] = episode.actions
    arrays.update({name: getattr(episode, name) for name in STEP_FIELDS})
    arrays["metadata"] = np.frombuffer(json.dumps(dict(metadata), allow_nan=False).encode(), np.uint8)
    out = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(out, **arrays)
    return out.getvalue()


def decode_episode(path: Path, data: bytes | None = None) -> Episode:
    """Reads an episode file; DatasetFormatError if it is truncated, garbled or incomplete."""
    try:
        with np.load(io.BytesIO(data) if data is not None else path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}   # zip CRCs are checked on read
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DatasetFormatError(f"{path}: not a readable episode file ({e})") from None
    need = {"actions", "metadata", *STEP_FIELDS}
    if not need <= set(arrays):
        raise DatasetFormatError(f"{path}: episode file lacks {sorted(need - set(arrays))}")
    try:
        metadata = json.loads(arrays.pop("metadata").tobytes().decode())
    except (ValueError, UnicodeDecodeError) as e:
        raise DatasetFormatError(f"{path}: garbled episode metadata ({e})") from None
    ep = Episode(observations={k[4:]: a for k, a in arrays.items() if k.startswith("obs/")},
                 actions=arrays["actions"], metadata=metadata,
                 **{name: arrays[name] for name in STEP_FIELDS})
    try:
        ep.validate()
    except ValueError as e:
        raise DatasetFormatError(f"{path}: invalid episode: {e}") from None
    return ep


class EpisodeDataset(ClosedWhenCollected):
    """A directory of episodes. Build with create(), open() (read-only or writable) or
    open_or_create(). A writable dataset holds an exclusive flock: one writer at a time."""

    def __init__(self, directory: Path, header: dict[str, Any], lock_fd: int | None):
        self.directory = directory
        self._header = header
        self._lock_fd = lock_fd
        self._pending: list[Episode] = []
        self.repaired: dict[str, list[str]] = {"removed_temp": [], "adopted": [], "quarantined": []}

    # ------------------------------------------------------------------ construction

    @classmethod
    def create(cls, path: str | os.PathLike, observation_space: Any = None, action_dim: int | None = None,
               spec: Mapping[str, Any] | None = None, compress: bool = True,
               fsync: bool = True) -> "EpisodeDataset":
        """A new, empty, writable dataset at `path` (from an env's spaces, or a spec dict).

        compress: zlib-compress episode files (images shrink a lot; costs CPU when saving).
        fsync: flush every episode and header to the disk before it counts (power-loss safe).
        """
        if spec is None:
            if observation_space is None or action_dim is None:
                raise ValueError("give observation_space and action_dim, or spec")
            spec = spec_from_space(observation_space, action_dim)
        spec = check_spec(json.loads(json.dumps(spec)), "spec")
        directory = Path(path)
        if (directory / HEADER_FILE).exists():
            raise FileExistsError(f"{directory} already holds a dataset; use EpisodeDataset.open")
        (directory / EPISODE_DIR).mkdir(parents=True, exist_ok=True)
        lock_fd = lock_one_writer(directory, LOCK_FILE, "dataset is open for writing")
        header = {"format": FORMAT, "version": VERSION, "spec": spec,
                  "settings": {"compress": bool(compress), "fsync": bool(fsync)},
                  "created_at": time.time(), "episodes": []}
        ds = cls(directory, header, lock_fd)
        with closed_on_error(ds):
            ds._write_header(header)
        return ds

    @classmethod
    def open(cls, path: str | os.PathLike, writable: bool = False) -> "EpisodeDataset":
        """Opens a dataset. Read-only: sees the committed episodes, ignores leftovers. Writable:
        takes the lock and repairs leftovers of a killed writer (see the module docstring)."""
        directory = Path(path)
        header = _read_header(directory)
        if not writable:
            if header["version"] < VERSION:
                log.warning("%s: dataset format version %d has no episode checksums; corruption "
                            "is found only where the episode files' own zip CRCs catch it (open "
                            "it writable once to upgrade)", directory, header["version"])
            return cls(directory, header, None)
        lock_fd = lock_one_writer(directory, LOCK_FILE, "dataset is open for writing")
        ds = cls(directory, _read_header(directory), lock_fd)  # re-read under the lock
        with closed_on_error(ds):
            if ds._header["version"] < VERSION:
                ds._upgrade_from_version_1()
            ds._repair()
        return ds

    def _upgrade_from_version_1(self) -> None:
        """Checksums a version-1 dataset's episode files as they are now (each must decode and
        fit the spec first) and rewrites the header as version 2."""
        episodes = []
        for meta in self._header["episodes"]:
            path = self.directory / EPISODE_DIR / meta["file"]
            if not path.is_file():
                raise DatasetFormatError(f"{path}: episode file listed in {HEADER_FILE} is missing")
            data = path.read_bytes()
            try:
                decode_episode(path, data).validate(self._header["spec"])
            except ValueError as e:
                raise DatasetFormatError(f"{path}: {e}; not upgrading {self.directory}") from None
            episodes.append({**meta, "crc32": crc32_hex(data)})
        self._write_header({**self._header, "version": VERSION, "episodes": episodes})
        log.warning("%s: dataset format version 1 had no episode checksums; its %d episode files "
                    "were checked and checksummed now and the header upgraded to version %d",
                    self.directory, len(episodes), VERSION)

    @classmethod
    def open_or_create(cls, path: str | os.PathLike, observation_space: Any, action_dim: int,
                       **create_kwargs: Any) -> "EpisodeDataset":
        """The writable dataset at `path`, created if absent; its spec must match the env's."""
        directory = Path(path)
        if not (directory / HEADER_FILE).exists():
            return cls.create(directory, observation_space, action_dim, **create_kwargs)
        ds = cls.open(directory, writable=True)
        want = spec_from_space(observation_space, action_dim)
        if ds.spec != want:
            ds.close()
            raise ValueError(f"{directory} holds episodes of another env: its spec is {ds.spec}, "
                             f"this env's is {want}; use another --out")
        return ds

    # ------------------------------------------------------------------ reading

    @property
    def spec(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._header["spec"]))

    @property
    def writable(self) -> bool:
        return self._lock_fd is not None

    def __len__(self) -> int:
        return len(self._header["episodes"])

    @property
    def episodes(self) -> list[dict[str, Any]]:
        """The committed episodes' metadata, in order (copies)."""
        return json.loads(json.dumps(self._header["episodes"]))

    def read_episode(self, index: int) -> Episode:
        metas = self._header["episodes"]
        if not 0 <= index < len(metas):
            raise IndexError(f"episode {index} of a dataset of {len(metas)}")
        path = self.directory / EPISODE_DIR / metas[index]["file"]
        if not path.exists():
            raise DatasetFormatError(f"{path}: episode file listed in {HEADER_FILE} is missing")
        data = path.read_bytes()
        self._check_crc(path, data, metas[index])
        ep = decode_episode(path, data)
        try:
            ep.validate(self._header["spec"])
        except ValueError as e:
            raise DatasetFormatError(f"{path}: {e}") from None
        if ep.metadata.get("index") != index:
            raise DatasetFormatError(f"{path}: holds episode {ep.metadata.get('index')}, the header "
                                     f"says {index}")
        return ep

    def _check_crc(self, path: Path, data: bytes, meta: Mapping[str, Any]) -> None:
        if "crc32" not in meta:
            return          # a version-1 dataset: nothing to check against (warned on open)
        actual = crc32_hex(data)
        if actual != meta["crc32"]:
            raise DatasetFormatError(f"{path}: contents do not match the CRC-32 in {HEADER_FILE} "
                                     f"(file {actual}, header {meta['crc32']}): the file is corrupt "
                                     f"or an episode of another dataset")

    def verify(self) -> int:
        """Checks every listed episode file against its CRC-32 (reads each once, no decoding);
        returns how many were checked. DatasetFormatError names the first bad file."""
        checked = 0
        for meta in self._header["episodes"]:
            path = self.directory / EPISODE_DIR / meta["file"]
            if not path.is_file():
                raise DatasetFormatError(f"{path}: episode file listed in {HEADER_FILE} is missing")
            if "crc32" in meta:
                self._check_crc(path, path.read_bytes(), meta)
                checked += 1
        return checked

    def __iter__(self) -> Iterator[Episode]:
        for i in range(len(self)):
            yield self.read_episode(i)

    # ------------------------------------------------------------------ writing

    @property
    def pending(self) -> list[Episode]:
        """Episodes accepted by append() but not on disk yet (a write failed), oldest first."""
        return list(self._pending)

    def append(self, episode: Episode) -> dict[str, Any]:
        """Validates and writes one episode; returns its committed metadata.

        Pending episodes (earlier failed writes) are written first, so order is kept. On a write
        failure raises DatasetWriteError; the episode then stays in `pending`.
        """
        self._check_writable()
        episode.validate(self._header["spec"])   # bad input: ValueError, nothing is kept
        self._pending.append(episode)
        return self.retry()[-1]

    def retry(self) -> list[dict[str, Any]]:
        """Writes the pending episodes in order; returns their metadata. Raises
        DatasetWriteError (the rest stay pending) if a write fails again."""
        self._check_writable()
        written = []
        while self._pending:
            written.append(self._write_episode(self._pending[0]))
            self._pending.pop(0)
        return written

    def _write_episode(self, episode: Episode) -> dict[str, Any]:
        index = len(self._header["episodes"])
        name = episode_file_name(index)
        meta = {**episode.metadata, "index": index, "length": len(episode), "file": name,
                "written_at": time.time()}
        settings = self._header["settings"]
        data = encode_episode(episode, meta, settings["compress"])
        meta["bytes"] = len(data)
        meta["crc32"] = crc32_hex(data)
        header = {**self._header, "episodes": self._header["episodes"] + [meta]}
        needed = len(data) + len(json.dumps(header)) + HEADER_SLACK
        ep_dir = self.directory / EPISODE_DIR
        final = ep_dir / name
        free = _free_bytes(ep_dir)
        if free is not None and free < needed:
            raise DatasetWriteError(final, needed, free, "not enough free space", len(self._pending))
        tmp = ep_dir / f"{TEMP_PREFIX}{name}.{uuid.uuid4().hex[:8]}"
        renamed = False
        try:
            _write_file(tmp, data, settings["fsync"])
            os.rename(tmp, final)
            renamed = True
            if settings["fsync"]:
                fsync_directory(ep_dir)
            self._write_header(header)
        except OSError as e:
            for leftover in (tmp, final if renamed else None):
                if leftover is not None:
                    try:
                        leftover.unlink()
                    except FileNotFoundError:
                        pass
            reason = "the disk is full" if e.errno == errno.ENOSPC else f"{e.strerror or e}"
            where = self.directory / HEADER_FILE if renamed else final   # what could not be written
            raise DatasetWriteError(where, needed, _free_bytes(ep_dir), reason,
                                    len(self._pending)) from e
        return meta

    def _write_header(self, header: dict[str, Any]) -> None:
        """Atomically replaces dataset.json (temp file, fsync, rename, fsync dir)."""
        body = {k: v for k, v in header.items() if k != "checksum"}
        text = json.dumps({**body, "checksum": json_crc32(body)}, indent=1, allow_nan=False)
        tmp = self.directory / f"{TEMP_PREFIX}{HEADER_FILE}.{uuid.uuid4().hex[:8]}"
        try:
            _write_file(tmp, text.encode(), header["settings"]["fsync"])
            os.replace(tmp, self.directory / HEADER_FILE)
        except BaseException:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
            raise
        self._header = body
        if header["settings"]["fsync"]:
            try:
                fsync_directory(self.directory)
            except OSError:
                pass  # the rename is done and visible; only its durability waits for the kernel

    def _repair(self) -> None:
        """Cleans up after a killed writer (called with the lock held)."""
        for d in (self.directory, self.directory / EPISODE_DIR):
            for p in sorted(d.glob(TEMP_PREFIX + "*")):
                p.unlink()
                self.repaired["removed_temp"].append(p.name)
        listed = {m["file"] for m in self._header["episodes"]}
        for path in sorted((self.directory / EPISODE_DIR).glob("episode_*.npz")):
            if path.name in listed:
                continue
            index = len(self._header["episodes"])
            try:
                ep = decode_episode(path)
                ep.validate(self._header["spec"])
                ok = path.name == episode_file_name(index) and ep.metadata.get("index") == index
            except ValueError:
                ok = False
            if ok:  # complete (it was renamed only after being written): count it
                data = path.read_bytes()
                meta = {**ep.metadata, "bytes": len(data), "crc32": crc32_hex(data)}
                self._write_header({**self._header, "episodes": self._header["episodes"] + [meta]})
                self.repaired["adopted"].append(path.name)
            else:
                path.rename(path.with_name(path.name + ".orphan"))
                self.repaired["quarantined"].append(path.name)

    def _check_writable(self) -> None:
        if self._lock_fd is None:
            raise RuntimeError(f"{self.directory} is open read-only; open(path, writable=True) to append")

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Releases the lock. Pending episodes are NOT written: check `pending` first."""
        if self._lock_fd is not None:
            unlock(self._lock_fd)
            self._lock_fd = None

    def __repr__(self) -> str:
        return (f"EpisodeDataset({str(self.directory)!r}, episodes={len(self)}, "
                f"pending={len(self._pending)}, writable={self.writable})")


def _free_bytes(directory: Path) -> int | None:
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


def _read_header(directory: Path) -> dict[str, Any]:
    path = directory / HEADER_FILE
    header = read_json_header(directory, HEADER_FILE, "an episode dataset", DatasetFormatError)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise DatasetFormatError(f"{path}: format {header.get('format') if isinstance(header, dict) else None!r}, "
                                 f"expected {FORMAT!r}")
    check_version(header.get("version"), READABLE_VERSIONS, path, DatasetFormatError)
    missing = [k for k in ("spec", "settings", "episodes", "checksum") if k not in header]
    if missing:
        raise DatasetFormatError(f"{path}: header lacks {missing}")
    body = {k: v for k, v in header.items() if k != "checksum"}
    if json_crc32(body) != header["checksum"]:
        raise DatasetFormatError(f"{path}: checksum mismatch (garbled or hand-edited header)")
    try:
        check_spec(body["spec"], str(path))
    except ValueError as e:
        raise DatasetFormatError(str(e)) from None
    if not isinstance(body["episodes"], list):
        raise DatasetFormatError(f"{path}: 'episodes' must be a list")
    for i, m in enumerate(body["episodes"]):
        if not isinstance(m, dict) or m.get("index") != i or not isinstance(m.get("file"), str):
            raise DatasetFormatError(f"{path}: episode entry {i} is inconsistent: {m!r}")
        if m["file"] != episode_file_name(i):
            # Never follow a name from the header: it could point outside episodes/.
            raise DatasetFormatError(f"{path}: episode entry {i} names file {m['file']!r}; it must "
                                     f"be {episode_file_name(i)!r} inside {EPISODE_DIR}/")
        crc = m.get("crc32")
        if body["version"] >= 2 and not is_crc32_hex(crc):
            raise DatasetFormatError(f"{path}: episode entry {i} lacks a valid crc32 (8 hex digits), "
                                     f"got {crc!r}")
    return body
