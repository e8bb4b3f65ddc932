"""Checksums and range checks for the replay buffer's data files: corruption is found when a
buffer is opened (or at the latest when a value enters a batch), never served to training.

The unit of checking is one committed slot row of one field file: `rows.crc32` holds, for every
slot, the CRC-32 of each field's row (frames, episode id, flags, action, reward, ...), in the
order of `spec["checksum"]["fields"]`. A mismatch therefore names the exact file and frames.

CRC-32 (stdlib zlib, 4-5 GB/s here) rather than SHA-256: it runs on every commit's new rows,
and a two-camera row is ~96 KiB; it is for flipped bits and torn or swapped files, not for an
adversary who can also rewrite the checksum file.

Why a row's transition fields are checksummed only when `has_transition` is 1: the last frame
of a committed buffer is rewritten by the next add() of its episode (action, reward, flags),
and that add may never be committed (a crash). Reopening clears the row's has_transition,
so its checksummed content is exactly what was committed; if the crash came inside the next
commit(), after its checksum update and before its header, that frame's CRCs already describe
the transition, and reopening reseals them (`reseal_last_frame`) once its frame data checks.
"""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.buffers.storage import ReplayFormatError

ALGORITHM = "crc32"
CHECKSUM_FILE = "rows.crc32"      # a .npy file of uint32 (capacity, n_fields)
TRANSITION_FIELDS = ("action", "reward", "terminated", "truncated", "grasp_penalty", "intervention")
FLAG_FIELDS = ("has_transition", "terminated", "truncated", "intervention")
FLOAT_TRANSITION_FIELDS = ("action", "reward", "grasp_penalty")


def checksum_spec(field_names: list[str]) -> dict[str, Any]:
    """The header's description of the checksum file: algorithm, file, field order."""
    return {"algorithm": ALGORITHM, "file": CHECKSUM_FILE, "fields": sorted(field_names)}


def validate_checksum_spec(spec: dict[str, Any], field_names: list[str]) -> None:
    c = spec["checksum"]
    assert c["algorithm"] == ALGORITHM, f"checksum algorithm {c['algorithm']!r}"
    assert c["file"] == CHECKSUM_FILE, f"checksum file {c['file']!r}"
    assert c["fields"] == sorted(field_names), "checksum fields do not match the data fields"


class RowChecksums:
    """The per-slot, per-field CRCs of a buffer's rows, kept in a (capacity, F) uint32 array."""

    def __init__(self, arrays: dict[str, np.ndarray], fields: list[str], crcs: np.ndarray):
        self._arrays = arrays
        self._fields = list(fields)
        self._transition_cols = [i for i, f in enumerate(self._fields) if f in TRANSITION_FIELDS]
        self._always = [(i, f) for i, f in enumerate(self._fields) if f not in TRANSITION_FIELDS]
        self._crcs = crcs
        self.capacity = crcs.shape[0]

    def _row(self, s: int) -> np.ndarray:
        """The CRCs of slot s as stored now (0 for transition fields of a frame without one)."""
        out = np.zeros(len(self._fields), np.uint32)
        a = self._arrays
        for i, name in self._always:
            out[i] = zlib.crc32(a[name][s:s + 1])
        if a["has_transition"][s] == 1:
            for i in self._transition_cols:
                out[i] = zlib.crc32(a[self._fields[i]][s:s + 1])
        return out

    def update(self, start: int, stop: int) -> None:
        """Records the CRCs of frames [start, stop) (absolute frame numbers)."""
        for g in range(start, stop):
            s = g % self.capacity
            self._crcs[s] = self._row(s)

    def reseal_last_frame(self, g: int) -> None:
        """After a reopen cleared frame g's has_transition (the committed buffer's last frame):
        its CRCs may already hold the transition an uncommitted add() wrote there (a kill between
        commit()'s checksum update and its header replacement). Its frame data and episode id
        are committed data: when they match their CRCs, the row's CRCs are set to what the frame
        holds now (no transition); when they do not, nothing changes and verify() reports it."""
        s = g % self.capacity
        row, stored = self._row(s), self._crcs[s]
        data = [i for i, name in self._always if name != "has_transition"]
        if np.array_equal(row[data], stored[data]):
            self._crcs[s] = row

    def verify(self, start: int, stop: int, directory: Path, files: dict[str, str]) -> None:
        """Raises ReplayFormatError naming each field file whose rows in [start, stop) do not
        match their CRC, with the first and last bad frame."""
        bad: dict[tuple[str, str], list[int]] = {}
        for g in range(start, stop):
            s = g % self.capacity
            row = self._row(s)
            stored = self._crcs[s]
            if np.array_equal(row, stored):
                continue
            for i in np.flatnonzero(row != stored):
                bad.setdefault((self._fields[i], "fail their checksum"), []).append(g)
        if bad:
            raise ReplayFormatError(corruption_message(directory, bad, files))


def corruption_message(directory: Path, bad: dict[tuple[str, str], list[int]],
                       files: dict[str, str]) -> str:
    """One line: for each (field, problem), the field's file and its first and last bad frame."""
    parts = [f"{directory / files[name]}: {len(frames)} row(s) in frames {frames[0]}..{frames[-1]} {what}"
             for (name, what), frames in sorted(bad.items())]
    return ("; ".join(parts) + "; the buffer is corrupt: restore it from a copy, or move it away "
            "and start a fresh one")


def check_ranges(arrays: dict[str, np.ndarray], low: int, high: int, next_episode: int,
                 directory: Path, files: dict[str, str]) -> None:
    """Cheap vectorised checks of the live frames [low, high): flags are 0/1, episode ids run
    forward and below the header's counter, a transition's floats are finite. Catches what a
    checksum cannot (a buffer of format 1 has none) and what it would only name as 'changed'."""
    if high <= low:
        return
    frames = np.arange(low, high, dtype=np.int64)
    slots = frames % arrays["has_transition"].shape[0]
    bad: dict[tuple[str, str], list[int]] = {}

    def mark(name: str, mask: np.ndarray, what: str) -> None:
        if mask.any():
            bad[(name, what)] = frames[mask].tolist()

    has = arrays["has_transition"][slots]
    for name in FLAG_FIELDS:
        values = has if name == "has_transition" else arrays[name][slots]
        mark(name, (values > 1) & ((has == 1) | (name == "has_transition")), "are not 0/1")
    ids = arrays["episode"][slots]
    mark("episode", (ids < 0) | (ids >= next_episode), f"hold an episode id outside 0..{next_episode - 1}")
    mark("episode", np.r_[False, ids[1:] < ids[:-1]], "go back to an older episode")
    live = has == 1
    for name in FLOAT_TRANSITION_FIELDS:
        values = arrays[name][slots]
        finite = np.isfinite(values) if values.ndim == 1 else np.isfinite(values).all(axis=1)
        mark(name, live & ~finite, "are not finite")
    if bad:
        raise ReplayFormatError(corruption_message(directory, bad, files))


def check_batch(batch: dict[str, Any], flag_values: dict[str, np.ndarray], where: str) -> None:
    """The last line of defence, where values enter a batch: flags 0/1, floats finite.
    `flag_values` are the raw stored flag bytes of the batch rows (before the float cast)."""
    for name, raw in flag_values.items():
        if raw.size and raw.max() > 1:
            raise ReplayFormatError(f"{where}: a batch row has {name} = {int(raw.max())} (flags are "
                                    f"0/1); the buffer is corrupt")
    checks = [("action", batch["action"]), ("reward", batch["reward"]),
              ("grasp_penalty", batch["grasp_penalty"])]
    checks += [(f"obs[{k!r}]", v) for k, v in batch["obs"].items() if v.dtype.kind == "f"]
    checks += [(f"next_obs[{k!r}]", v) for k, v in batch["next_obs"].items() if v.dtype.kind == "f"]
    for name, values in checks:
        if not all_finite(values):
            raise ReplayFormatError(f"{where}: a batch row has a non-finite {name}; the buffer "
                                    f"is corrupt")


_HALF_MAGNITUDE, _HALF_INF = np.uint16(0x7FFF), np.uint16(0x7C00)  # a float16 >= inf is inf or NaN
_CHUNK = 1 << 17


def all_finite(values: np.ndarray) -> bool:
    """np.isfinite(values).all(), fast for float16 (cached features: millions per batch), where
    numpy's isfinite converts element by element (~20x slower): the magnitude bits of each
    value are compared with inf's, a cache-sized chunk at a time."""
    if values.dtype != np.float16:
        return bool(np.isfinite(values).all())
    bits = values.reshape(-1).view(np.uint16)
    scratch = np.empty(min(bits.size, _CHUNK), np.uint16)
    for start in range(0, bits.size, _CHUNK):
        part = bits[start:start + _CHUNK]
        magnitude = np.bitwise_and(part, _HALF_MAGNITUDE, out=scratch[:part.size])
        if magnitude.max() >= _HALF_INF:
            return False
    return True
