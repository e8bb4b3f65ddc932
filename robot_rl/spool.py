"""The actor's disk spool: every transition is on the actor's disk before it is sent, until the
learner acknowledges it, so a killed actor re-sends what the learner had not stored.

Layout (under the actor's run dir, e.g. RUN_DIR/spool/actor_<id>/):

    <session>/<episode:08d>.seg     one append-only file per episode of one actor session

A segment is a sequence of records:

    u32 little-endian  payload length
    u32 little-endian  CRC-32 of the payload
    u8                 1 if the env reported success at this step, else 0
    payload            one robot_rl.transport "transition" message (count = 1): the same safe,
                       versioned bytes that go on the wire (never pickled)

A record is appended before its transition is sent. A segment is deleted when the learner has
acknowledged its last transition (acks cover whole episodes). A restarted actor reads the
segments of its earlier sessions back (`recover`), stops at a torn or corrupt tail (a power
loss mid-write), re-sends them under their old session and sequence numbers (the learner
drops what it has by actor id, session and seq), and deletes them once acknowledged.

fsync policy (`fsync`): "never" survives a killed actor (the page cache outlives the process);
"episode" (default) also fsyncs a segment when its episode ends, so a power loss loses at most
the running episode; "step" fsyncs every record (a power loss loses nothing acknowledged or
sent; costs one disk flush per control step).
"""
from __future__ import annotations

import logging
import os
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger("robot_rl.spool")

_HEAD = struct.Struct("<IIB")
FSYNC_POLICIES = ("never", "episode", "step")


@dataclass
class SpooledRecord:
    episode: int
    success: bool
    message: bytes          # a transport transition message with one transition


@dataclass
class SpooledSession:
    session: str
    records: list[SpooledRecord]        # oldest first (episode order, then step order)


class Spool:
    """Append-only segments for one actor session (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike, session: str,
                 fsync: Literal["never", "episode", "step"] = "episode"):
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"spool fsync must be one of {FSYNC_POLICIES}, got {fsync!r}")
        self.directory = Path(directory)
        self.session_dir = self.directory / session
        self.session_dir.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._fd: int | None = None
        self._episode: int | None = None
        self._last_seq: dict[int, int] = {}      # episode -> last seq written (finished episodes)
        self._open_last_seq = -1

    def _path(self, episode: int) -> Path:
        return self.session_dir / f"{episode:08d}.seg"

    def append(self, episode: int, seq: int, message: bytes, success: bool, episode_ends: bool) -> None:
        """Appends one transition's message; raises OSError (e.g. a full disk) if it cannot."""
        if episode != self._episode:
            self._close_segment()
            self._fd = os.open(self._path(episode), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._episode = episode
        data = _HEAD.pack(len(message), zlib.crc32(message), int(bool(success))) + bytes(message)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        self._open_last_seq = seq
        if self.fsync == "step":
            os.fsync(self._fd)
        if episode_ends:
            self._close_segment()

    def _close_segment(self) -> None:
        if self._fd is None:
            return
        try:
            if self.fsync in ("episode", "step"):
                os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._last_seq[self._episode] = self._open_last_seq
            self._fd, self._episode = None, None

    def acked(self, seq: int) -> None:
        """Deletes the finished episodes whose every transition the learner acknowledged."""
        for episode, last in list(self._last_seq.items()):
            if last <= seq:
                self._path(episode).unlink(missing_ok=True)
                del self._last_seq[episode]

    def close(self) -> None:
        self._close_segment()
        if not any(self.session_dir.iterdir()):
            self.session_dir.rmdir()

    # ------------------------------------------------------------------ recovery

    @staticmethod
    def recover(directory: str | os.PathLike, exclude: str | None = None) -> list[SpooledSession]:
        """The records of every session spooled under `directory` (but `exclude`), oldest first
        per session. A torn or corrupt tail of a segment ends that segment (logged)."""
        directory = Path(directory)
        if not directory.is_dir():
            return []
        sessions = []
        for session_dir in sorted(p for p in directory.iterdir() if p.is_dir() and p.name != exclude):
            records: list[SpooledRecord] = []
            for seg in sorted(session_dir.glob("*.seg")):
                episode = int(seg.stem)
                data = seg.read_bytes()
                pos = 0
                while pos + _HEAD.size <= len(data):
                    length, crc, success = _HEAD.unpack_from(data, pos)
                    payload = data[pos + _HEAD.size: pos + _HEAD.size + length]
                    if len(payload) != length or zlib.crc32(payload) != crc:
                        break
                    records.append(SpooledRecord(episode, bool(success), payload))
                    pos += _HEAD.size + length
                if pos != len(data):
                    log.warning("%s: ignoring a torn or corrupt tail of %d bytes", seg, len(data) - pos)
            if records:
                sessions.append(SpooledSession(session_dir.name, records))
            else:
                shutil.rmtree(session_dir, ignore_errors=True)
        return sessions

    @staticmethod
    def forget(directory: str | os.PathLike, session: str) -> None:
        """Deletes a recovered session's segments (after the learner acknowledged them all)."""
        shutil.rmtree(Path(directory) / session, ignore_errors=True)
