"""An episode-aware, memory-mapped, crash-safe replay buffer.

Storage is a ring of `capacity` slots, addressed by an absolute frame number g (slot = g %
capacity). Each slot holds one observation frame (every obs key, uint8 images stored once) and,
if a transition starts at that frame, the transition's action, reward, flags and grasp penalty.
An episode of T steps occupies T + 1 consecutive frames: o_0 .. o_T. The transition at frame g
is (o_g, a_g, r_g, o_{g+1}): next_obs is rebuilt from the next frame and never stored twice.
The last frame of an episode carries no transition, so a next_obs never crosses an episode.

The live window is the frames [low, high). When the writer needs a slot that is still live it
evicts the oldest whole episode first (low jumps to the next episode's first frame; only an
episode longer than the whole ring is evicted in chunks from its start) and records the new low
in the header BEFORE overwriting, so a reopened buffer never reads a frame that was overwritten.

Crash safety: add() writes the data arrays; commit() then replaces the header (cursor: low,
high, episode counters) atomically. After a SIGKILL, open() restores exactly the committed
state; whatever was added after the last commit is ignored and later overwritten. With
fsync=True, commit() also msyncs the data before the header, for power-loss safety.

An episode that was still open at the last commit is kept on reopen: its acknowledged
transitions are sampled (each stored its next frame), and the episode is closed there, without
a terminal flag (it bootstraps, like a truncation). The next add() starts a new episode.

Integrity (buffers/integrity.py): every committed row of every field file has a CRC-32 in
rows.crc32. open() checks the live rows against them and range-checks the flags, episode ids
and transition floats, so a corrupt buffer is refused with the file and frames named before
training starts; gather() range-checks what enters a batch (flags 0/1, finite floats).

One writer: the directory is flock'd while open. Not thread-safe.
"""
from __future__ import annotations

import logging
import math
import os
import zlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from robot_rl.buffers import integrity, storage
from robot_rl.buffers.storage import ReplayFormatError
from robot_rl.closing import ClosedWhenCollected, closed_on_error

log = logging.getLogger("robot_rl.buffers")

# Per-slot fields, besides the frames. action is added with its width at creation.
_SLOT_FIELDS: dict[str, tuple[tuple[int, ...], str]] = {
    "episode": ((), "int64"),         # episode id of the frame in this slot
    "has_transition": ((), "uint8"),  # 1: a transition starts at this frame (not an episode's last)
    "reward": ((), "float32"),
    "terminated": ((), "uint8"),      # true end: no bootstrap
    "truncated": ((), "uint8"),       # timeout: bootstraps from next_obs
    "grasp_penalty": ((), "float32"),
    "intervention": ((), "uint8"),    # 1: the action came from a human
}
_SCALAR_BATCH_KEYS = ("reward", "terminated", "truncated", "grasp_penalty", "intervention")


def _file_name(kind: str, key: str) -> str:
    """A safe, unique file name for any key ("feat/wrist" -> frame.feat_wrist.<crc>.npy)."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in key)
    return f"{kind}.{safe}.{zlib.crc32(key.encode()):08x}.npy"


def space_specs(observation_space: Any) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{key: (shape, dtype)} from a gymnasium.spaces.Dict (or any mapping of shaped spaces); the
    replay buffer and the episode dataset both lay out their observations from it."""
    spaces = getattr(observation_space, "spaces", observation_space)
    if not isinstance(spaces, Mapping) or not spaces:
        raise ValueError(f"observation_space must be a non-empty gymnasium.spaces.Dict, got "
                         f"{observation_space!r}")
    specs = {}
    for key, space in spaces.items():
        if not isinstance(key, str) or getattr(space, "shape", None) is None or space.dtype is None:
            raise ValueError(f"observation key {key!r}: need a str key and a space with shape and "
                             f"dtype, got {space!r}")
        specs[key] = (tuple(int(s) for s in space.shape), np.dtype(space.dtype))
    return specs


def _check_dtype(dtype: np.dtype, where: str) -> None:
    if dtype.kind not in "biuf" or dtype.byteorder == ">":
        raise ValueError(f"{where}: dtype {dtype} cannot be stored (bool/int/uint/float only)")


class ReplayBuffer(ClosedWhenCollected):
    """See the module docstring. Build with ReplayBuffer.create(...) or ReplayBuffer.open(path)."""

    def __init__(self, directory: Path | None, spec: dict[str, Any], arrays: dict[str, np.ndarray],
                 cursor: dict[str, Any], fsync: bool, check_continuity: bool, lock_fd: int | None,
                 crcs: np.ndarray | None = None):
        self.directory = directory
        self._spec = spec
        self.capacity: int = spec["capacity"]
        self.action_dim: int = spec["action_dim"]
        self.fsync = fsync
        self.check_continuity = check_continuity
        self._lock_fd = lock_fd
        # Plain ndarray views of the memmaps: faster fancy indexing than the memmap subclass.
        self._memmaps = arrays
        self._arrays = {name: a.view(np.ndarray) for name, a in arrays.items()}
        # Row checksums, on disk only (a RAM buffer has no file to get corrupted).
        self._checksums = (None if crcs is None else
                           integrity.RowChecksums(self._arrays, spec["checksum"]["fields"],
                                                  crcs.view(np.ndarray)))
        if crcs is not None:
            self._memmaps = dict(arrays, **{integrity.CHECKSUM_FILE: crcs})
        self._frame_keys = list(spec["frames"])
        self._obs_keys = [k for k, f in spec["frames"].items() if f["kind"] == "obs"]
        self._extra_keys = [k for k, f in spec["frames"].items() if f["kind"] == "extra"]
        self._frame_specs = {k: (tuple(f["shape"]), np.dtype(f["dtype"]))
                             for k, f in spec["frames"].items()}
        self._low: int = cursor["low"]
        self._high: int = cursor["high"]
        self._next_episode: int = cursor["next_episode"]
        self._open_episode: int | None = cursor["open_episode"]
        self._commits: int = cursor["commits"]
        self._committed = dict(cursor)
        self._n = self._count_transitions(self._low, self._high)
        self._reserved = 0           # leading slots whose disk blocks this process has allocated
        self._closed = False

    # ------------------------------------------------------------------ construction

    @classmethod
    def create(cls, path: str | os.PathLike | None, observation_space: Any, action_dim: int,
               capacity: int, extra_specs: Mapping[str, tuple[tuple[int, ...], Any]] | None = None,
               fsync: bool = False, check_continuity: bool = True) -> "ReplayBuffer":
        """A new, empty buffer in directory `path` (created; must not hold a buffer already).

        path=None keeps everything in RAM (tests, small runs): same behaviour, nothing survives.
        extra_specs: extra per-frame arrays, e.g. {"feat/wrist": ((K, 512, 4, 4), np.float16)};
        they appear as extra obs keys in a batch.
        """
        if int(capacity) != capacity or capacity < 2:
            raise ValueError(f"capacity must be an int >= 2, got {capacity!r}")
        if int(action_dim) != action_dim or action_dim < 1:
            raise ValueError(f"action_dim must be a positive int, got {action_dim!r}")
        capacity, action_dim = int(capacity), int(action_dim)
        frames: dict[str, dict[str, Any]] = {}
        for key, (shape, dtype) in space_specs(observation_space).items():
            _check_dtype(dtype, f"observation {key!r}")
            frames[key] = {"kind": "obs", "shape": list(shape), "dtype": dtype.str,
                           "file": _file_name("frame", key)}
        for key, (shape, dtype) in (extra_specs or {}).items():
            if key in frames:
                raise ValueError(f"extra key {key!r} collides with an observation key")
            dtype = np.dtype(dtype)
            _check_dtype(dtype, f"extra {key!r}")
            frames[key] = {"kind": "extra", "shape": [int(s) for s in shape], "dtype": dtype.str,
                           "file": _file_name("frame", key)}
        slots = {name: {"shape": list(shape), "dtype": np.dtype(dt).str, "file": f"slot.{name}.npy"}
                 for name, (shape, dt) in _SLOT_FIELDS.items()}
        slots["action"] = {"shape": [action_dim], "dtype": np.dtype("float32").str,
                           "file": "slot.action.npy"}
        spec = {"capacity": capacity, "action_dim": action_dim, "frames": frames, "slots": slots,
                "fsync": bool(fsync)}
        spec["checksum"] = integrity.checksum_spec(list(_all_fields(spec)))
        cursor = {"low": 0, "high": 0, "next_episode": 0, "open_episode": None, "commits": 0}

        if path is None:
            arrays = {name: np.zeros((capacity, *f["shape"]), np.dtype(f["dtype"]))
                      for name, f in _all_fields(spec).items()}
            return cls(None, spec, arrays, cursor, fsync, check_continuity, lock_fd=None)

        directory = Path(path)
        if (directory / storage.HEADER_FILE).exists():
            raise FileExistsError(f"{directory} already holds a replay buffer; use ReplayBuffer.open")
        directory.mkdir(parents=True, exist_ok=True)
        lock_fd = storage.lock_directory(directory)
        try:
            arrays = {name: storage.create_array(directory / f["file"], (capacity, *f["shape"]),
                                                 np.dtype(f["dtype"]))
                      for name, f in _all_fields(spec).items()}
            crcs = _create_checksum_file(directory, spec)
            if fsync:
                for a in (*arrays.values(), crcs):
                    a.flush()
                storage.fsync_directory(directory)
            # The header goes last: a directory without one is not a buffer.
            storage.write_header(directory, spec, cursor, fsync=fsync)
        except BaseException:
            storage.unlock_directory(lock_fd)
            raise
        return cls(directory, spec, arrays, cursor, fsync, check_continuity, lock_fd, crcs)

    @classmethod
    def open(cls, path: str | os.PathLike, fsync: bool | None = None,
             check_continuity: bool = True, verify: bool = True) -> "ReplayBuffer":
        """Reopens a buffer as it was at its last commit (after a crash, or to resume).

        Raises ReplayFormatError for a missing/garbled header, another format version, a data
        file that is missing, truncated, or of another shape or dtype than the header says, and
        (verify=True, the default) for live rows that fail their checksum or hold out-of-range
        flags, episode ids or non-finite transition values: the message names file and frames.
        verify reads every live row once (~4 GB/s of CRC here; a full 200k-slot two-camera
        buffer is ~20 GB). A buffer of format version 1 (no checksums) is range-checked, then
        upgraded in place: its rows are checksummed as they are now, and a warning says so.
        """
        directory = Path(path)
        spec, cursor = storage.read_header(directory)
        legacy = "checksum" not in spec
        _validate_spec(spec, directory)
        _validate_cursor(cursor, spec["capacity"], directory)
        lock_fd = storage.lock_directory(directory)
        try:
            arrays = {name: storage.open_array(directory / f["file"], (spec["capacity"], *f["shape"]),
                                               np.dtype(f["dtype"]))
                      for name, f in _all_fields(spec).items()}
            if legacy:
                spec = dict(spec, checksum=integrity.checksum_spec(list(_all_fields(spec))))
                crcs = _create_checksum_file(directory, spec)
            else:
                crcs = storage.open_array(directory / integrity.CHECKSUM_FILE,
                                          (spec["capacity"], len(spec["checksum"]["fields"])),
                                          np.dtype(np.uint32))
        except BaseException:
            storage.unlock_directory(lock_fd)
            raise
        buf = cls(directory, spec, arrays, cursor, spec["fsync"] if fsync is None else fsync,
                  check_continuity, lock_fd, crcs)
        with closed_on_error(buf):
            buf._recover_after_reopen()
            if verify or legacy:
                buf._verify(checksums=not legacy)
            if legacy:
                buf._upgrade_from_version_1()
        return buf

    def verify(self) -> int:
        """Runs open()'s checks again on the committed live frames (range checks, then every row
        against its checksum); returns the number of frames checked. ReplayFormatError names the
        damaged file and frames. A RAM buffer has no checksums: only the range checks run."""
        self._check_usable()
        high = self._committed["high"] if self.directory is not None else self._high
        low = max(self._low, self._committed["low"]) if self.directory is not None else self._low
        files = {name: f["file"] for name, f in _all_fields(self._spec).items()}
        integrity.check_ranges(self._arrays, low, high, self._next_episode, self.directory or Path("memory"), files)
        if self._checksums is not None:
            # The open episode's last committed frame may have gained its transition since.
            self._checksums.verify(low, max(low, high - 1), self.directory, files)
        return high - low

    def _verify(self, checksums: bool) -> None:
        """Range checks, then the row checksums of the live frames [low, high)."""
        files = {name: f["file"] for name, f in _all_fields(self._spec).items()}
        integrity.check_ranges(self._arrays, self._low, self._high, self._next_episode,
                               self.directory, files)
        if checksums:
            self._checksums.verify(self._low, self._high, self.directory, files)

    def _upgrade_from_version_1(self) -> None:
        """Checksums a format-1 buffer's live rows as they are now and rewrites its header as
        format 2: corruption from before this moment cannot be found, later corruption is."""
        self._checksums.update(self._low, self._high)
        self._crc_memmap().flush()
        storage.write_header(self.directory, self._spec, self._committed, fsync=True)
        log.warning("%s: replay format version 1 has no checksums; its %d live frames were "
                    "range-checked and checksummed now and the header upgraded to version %d "
                    "(corruption from before this open cannot be detected)", self.directory,
                    self._high - self._low, storage.FORMAT_VERSION)

    def _crc_memmap(self) -> np.ndarray:
        return self._memmaps[integrity.CHECKSUM_FILE]

    def _recover_after_reopen(self) -> None:
        """Closes the episode left open by the last process at its last committed frame.

        An add() after the last commit may have marked that frame as a transition start (it
        continued the episode, then died before committing); that mark is undone here so no
        transition ever pairs the frame with whatever gets written next.
        """
        if self._high > self._low:
            last = (self._high - 1) % self.capacity
            self._arrays["has_transition"][last] = 0
            if self._checksums is not None:
                self._checksums.reseal_last_frame(self._high - 1)
        self._open_episode = None
        self._n = self._count_transitions(self._low, self._high)

    # ------------------------------------------------------------------ writing

    def add(self, obs: Mapping[str, np.ndarray], action: Any, reward: float,
            next_obs: Mapping[str, np.ndarray], terminated: bool, truncated: bool,
            grasp_penalty: float = 0.0, intervention: bool = False,
            extras: Mapping[str, np.ndarray] | None = None,
            next_extras: Mapping[str, np.ndarray] | None = None) -> None:
        """Appends one transition; commit() acknowledges it.

        Within an episode `obs` must equal the previous step's `next_obs`: only next_obs is
        stored after the first step. With check_continuity (default) this is verified against
        the stored frame and a mismatch raises ValueError. The episode ends at terminated or
        truncated; the next add() starts a new one. extras: needed for the first step of an
        episode (later steps reuse the previous next_extras); next_extras: always, when the
        buffer declares extra arrays. Nothing is written if any input is invalid.
        """
        self._check_usable()
        new_episode = self._open_episode is None
        next_frame = self._validate_frame(next_obs, next_extras, "next_obs", "next_extras")
        if new_episode or extras is not None or self.check_continuity:
            frame = self._validate_frame(obs, extras, "obs", "extras", extras_optional=not new_episode)
        action = np.asarray(action)
        if action.shape != (self.action_dim,) or action.dtype.kind not in "fiu":
            raise ValueError(f"action: expected a real array of shape ({self.action_dim},), got "
                             f"{action.dtype}{action.shape}")
        action = action.astype(np.float32)
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action is not finite: {action}")
        reward = _finite_scalar(reward, "reward")
        grasp_penalty = _finite_scalar(grasp_penalty, "grasp_penalty")
        terminated, truncated = _flag(terminated, "terminated"), _flag(truncated, "truncated")
        intervention = _flag(intervention, "intervention")

        self._reserve(self._high + 1)       # a full disk raises here, before anything changes
        if new_episode:
            g = self._high
            self._make_room(g + 1)
            episode = self._next_episode
            self._next_episode += 1
            self._write_frame(g, frame, episode)
        else:
            g = self._high - 1
            if self.check_continuity:
                self._check_continuity(g, frame)
            self._make_room(g + 1)
            episode = self._open_episode
        self._write_frame(g + 1, next_frame, episode)
        s, a = g % self.capacity, self._arrays
        a["action"][s] = action
        a["reward"][s] = reward
        a["terminated"][s] = terminated
        a["truncated"][s] = truncated
        a["grasp_penalty"][s] = grasp_penalty
        a["intervention"][s] = intervention
        a["has_transition"][s] = 1          # last: the transition exists once all of it is written
        self._high = g + 2
        self._n += 1
        self._open_episode = None if (terminated or truncated) else episode

    def commit(self) -> None:
        """Acknowledges everything added so far: after this returns it survives a SIGKILL
        (with fsync=True, a power loss too)."""
        self._check_usable()
        if self.directory is None:
            return
        if self.fsync:
            for a in self._memmaps.values():
                a.flush()                    # msync: the data is on disk before the header
        # The previous last frame may have gained its transition since: it is checksummed again.
        self._checksums.update(max(self._low, self._committed["high"] - 1), self._high)
        if self.fsync:
            self._crc_memmap().flush()
        cursor = {"low": self._low, "high": self._high, "next_episode": self._next_episode,
                  "open_episode": self._open_episode, "commits": self._commits + 1}
        storage.write_header(self.directory, self._spec, cursor, fsync=self.fsync)  # ENOSPC: retry later
        self._commits += 1
        self._committed = cursor

    def _write_frame(self, g: int, frame: dict[str, np.ndarray], episode: int) -> None:
        s = g % self.capacity
        self._arrays["has_transition"][s] = 0   # a fresh frame starts no transition until add() says so
        for key, value in frame.items():
            self._arrays[key][s] = value
        self._arrays["episode"][s] = episode

    def _reserve(self, g: int) -> None:
        """Makes sure the slots up to frame g have disk blocks (see storage.reserve)."""
        if self.directory is None:
            return
        need = min(self.capacity, g + 1)
        if need <= self._reserved:
            return
        slot_bytes = max(1, self.bytes_per_transition(include_extras=True))
        stop = min(self.capacity, max(need, self._reserved + max(64, (8 << 20) // slot_bytes)))
        for array in self._memmaps.values():
            storage.reserve(array, self._reserved, stop)
        self._reserved = stop

    @property
    def transitions_added(self) -> int:
        """Transitions ever added (evicted ones included): each episode of T steps uses T + 1
        frames, so this is frames minus episodes. After open() it counts what was committed."""
        return self._high - self._next_episode

    @property
    def episodes_started(self) -> int:
        """Episodes ever started (evicted and aborted ones included)."""
        return self._next_episode

    def _make_room(self, g: int) -> None:
        """Evicts oldest episodes until frame g has a slot that holds no live frame."""
        while g >= self._low + self.capacity:
            self._evict_oldest()

    def _evict_oldest(self) -> None:
        low, high = self._low, self._high
        first_episode = self._arrays["episode"][low % self.capacity]
        if first_episode == self._open_episode:
            # The episode being written is longer than the ring: drop a chunk of its start.
            new_low = min(low + max(1, self.capacity // 64), high - 1)
        else:
            new_low = self._episode_end(low, high)
        if self.directory is not None:
            # Publish the eviction before its slots are overwritten, so a reopened buffer never
            # trusts an overwritten frame. The committed high stays: no new data is acknowledged.
            # (Header first: if it cannot be written - a full disk - nothing has changed.)
            committed = dict(self._committed, low=min(new_low, self._committed["high"]))
            if committed["low"] > self._committed["low"]:
                if self.fsync:
                    for a in self._memmaps.values():
                        a.flush()
                storage.write_header(self.directory, self._spec, committed, fsync=self.fsync)
                self._committed = committed
        self._n -= self._count_transitions(low, new_low)
        self._low = new_low

    def _episode_end(self, start: int, stop: int) -> int:
        """The first frame in (start, stop) of another episode than frame `start`'s, else stop."""
        episode = self._arrays["episode"][start % self.capacity]
        pos, step = start + 1, 256
        while pos < stop:
            end = min(pos + step, stop)
            ids = self._arrays["episode"][np.arange(pos, end) % self.capacity]
            other = np.flatnonzero(ids != episode)
            if other.size:
                return pos + int(other[0])
            pos, step = end, step * 16
        return stop

    def _count_transitions(self, start: int, stop: int) -> int:
        if stop <= start:
            return 0
        return int(self._arrays["has_transition"][np.arange(start, stop) % self.capacity].sum(dtype=np.int64))

    # ------------------------------------------------------------------ validation

    def _validate_frame(self, obs: Mapping[str, np.ndarray], extras: Mapping[str, np.ndarray] | None,
                        obs_name: str, extras_name: str, extras_optional: bool = False
                        ) -> dict[str, np.ndarray]:
        if not isinstance(obs, Mapping):
            raise ValueError(f"{obs_name} must be a dict of arrays, got {type(obs).__name__}")
        if set(obs) != set(self._obs_keys):
            raise ValueError(f"{obs_name} keys {sorted(obs)} != the buffer's {sorted(self._obs_keys)}")
        frame = {key: self._validate_array(obs[key], key, f"{obs_name}[{key!r}]") for key in self._obs_keys}
        if self._extra_keys:
            if extras is None:
                if not extras_optional:
                    raise ValueError(f"{extras_name} is required: the buffer stores {self._extra_keys}")
            else:
                if set(extras) != set(self._extra_keys):
                    raise ValueError(f"{extras_name} keys {sorted(extras)} != {sorted(self._extra_keys)}")
                for key in self._extra_keys:
                    frame[key] = self._validate_array(extras[key], key, f"{extras_name}[{key!r}]")
        elif extras:
            raise ValueError(f"{extras_name} given, but the buffer declares no extra arrays")
        return frame

    def _validate_array(self, value: Any, key: str, where: str) -> np.ndarray:
        shape, dtype = self._frame_specs[key]
        if not isinstance(value, np.ndarray):
            raise ValueError(f"{where}: expected a numpy array {dtype}{shape}, got {type(value).__name__}")
        if value.shape != shape or value.dtype != dtype:
            raise ValueError(f"{where}: expected {dtype}{shape}, got {value.dtype}{value.shape}")
        if dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise ValueError(f"{where} has non-finite values")
        return value

    def _check_continuity(self, g: int, frame: dict[str, np.ndarray]) -> None:
        s = g % self.capacity
        for key, value in frame.items():
            if not np.array_equal(self._arrays[key][s], value):
                raise ValueError(f"obs[{key!r}] differs from the previous step's next_obs: within an "
                                 f"episode obs must be the last next_obs (did an episode end without "
                                 f"terminated/truncated?)")

    def _check_usable(self) -> None:
        if self._closed:
            raise RuntimeError("the replay buffer is closed")

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        """Number of sampleable transitions."""
        return self._n

    @property
    def observation_keys(self) -> list[str]:
        return list(self._obs_keys)

    @property
    def extra_keys(self) -> list[str]:
        return list(self._extra_keys)

    @property
    def frame_specs(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """{key: (shape, dtype)} of every per-frame array: observations, then extras."""
        return dict(self._frame_specs)

    def sample_indices(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """`batch_size` transition ids (absolute frame numbers), uniform with replacement.

        Vectorised rejection sampling over the live frames: a frame is kept if a transition
        starts there (all but an episode's last frame), so the acceptance rate is >= 1/2.
        """
        self._check_usable()
        if self._n == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        lo, hi = self._low, self._high - 1          # a transition's obs frame is in [lo, hi)
        out = np.empty(batch_size, dtype=np.int64)
        filled = 0
        oversample = (hi - lo) / self._n * 1.1
        for _ in range(1000):
            need = batch_size - filled
            if need == 0:
                return out
            candidates = rng.integers(lo, hi, size=int(need * oversample) + 16)
            keep = candidates[self._arrays["has_transition"][candidates % self.capacity] == 1][:need]
            out[filled:filled + keep.size] = keep
            filled += keep.size
        raise RuntimeError("rejection sampling did not fill the batch; the buffer is inconsistent")

    def transition_indices(self) -> np.ndarray:
        """Every sampleable transition id, oldest first (for inspection and export)."""
        frames = np.arange(self._low, max(self._high - 1, self._low), dtype=np.int64)
        return frames[self._arrays["has_transition"][frames % self.capacity] == 1]

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, Any]:
        """A batch: {"obs": {key: (B, ...)}, "next_obs": {...}, "action": float32 (B, A),
        "reward", "terminated", "truncated", "grasp_penalty", "intervention": float32 (B,)}."""
        return self.gather(self.sample_indices(batch_size, rng))

    def gather(self, indices: np.ndarray, out: dict[str, Any] | None = None,
               variants: Mapping[str, np.ndarray] | None = None) -> dict[str, Any]:
        """The batch for the given B transition ids; writes into `out` (same layout) if given.

        `out` may hold a subset of the frame keys (a training batch leaves out what its learner
        never reads, e.g. the pixels of a camera whose features are cached): only those are
        read. `variants` {key: int (2B,)} picks, for a key stored with a leading variant axis
        (K, ...), variant variants[key][i] of row i's obs (i < B) and variants[key][B + i] of
        its next_obs: the batch holds (B, ...) for that key, and only those bytes are copied."""
        self._check_usable()
        indices = np.asarray(indices, dtype=np.int64)
        C, a = self.capacity, self._arrays
        valid = (indices >= self._low) & (indices < self._high - 1)
        if not np.all(valid) or not np.all(a["has_transition"][indices[valid] % C] == 1):
            raise ValueError("gather: some indices are not live transitions of this buffer")
        slots = indices % C
        next_slots = (indices + 1) % C
        if not np.array_equal(a["episode"][slots], a["episode"][next_slots]):
            raise RuntimeError("a transition pairs frames of two episodes; the buffer is corrupt")
        batch_size = indices.size
        variants = dict(variants or {})
        if out is None:
            specs = {k: ((shape[1:], dtype) if k in variants else (shape, dtype))
                     for k, (shape, dtype) in self._frame_specs.items()}
            out = empty_batch(specs, self.action_dim, batch_size)
        keys = list(out["obs"])
        unknown = set(keys) - set(self._frame_keys)
        if unknown or set(out["next_obs"]) != set(keys) or not set(variants) <= set(keys):
            raise ValueError(f"gather: batch keys {sorted(keys)} (variants {sorted(variants)}) are "
                             f"not a subset of the buffer's {self._frame_keys}")
        both = np.concatenate([slots, next_slots])
        for key in keys:
            source, rows = a[key], both
            if key in variants:
                # Row slot*K + v of the (C*K, ...) view is variant v of frame `slot`.
                if len(self._frame_specs[key][0]) < 2:
                    raise ValueError(f"gather: {key!r} has no variant axis: frames of shape "
                                     f"{self._frame_specs[key][0]}, not (K, ...)")
                k, picks = source.shape[1], np.asarray(variants[key])
                if picks.shape != (2 * batch_size,) or picks.dtype.kind not in "iu" or (
                        picks.size and (picks.min() < 0 or picks.max() >= k)):
                    raise ValueError(f"gather: variants[{key!r}] must be {2 * batch_size} ints in "
                                     f"[0, {k}), got {picks.dtype}{picks.shape}")
                source, rows = source.reshape(C * k, *source.shape[2:]), both * k + picks
            obs_out, next_out = out["obs"][key], out["next_obs"][key]
            # mode="clip": the indices are checked above; mode="raise" would buffer `out` (a copy).
            if _adjacent(obs_out, next_out):
                np.take(source, rows, axis=0, out=_joined(obs_out, next_out), mode="clip")
            else:
                np.take(source, rows[:batch_size], axis=0, out=obs_out, mode="clip")
                np.take(source, rows[batch_size:], axis=0, out=next_out, mode="clip")
        np.take(a["action"], slots, axis=0, out=out["action"], mode="clip")
        flags = {}
        for name in _SCALAR_BATCH_KEYS:
            values = a[name][slots]
            if name in integrity.FLAG_FIELDS:
                flags[name] = values
            out[name][...] = values
        integrity.check_batch(out, flags, str(self.directory or "the in-memory replay buffer"))
        return out

    def episodes(self) -> list[dict[str, Any]]:
        """The live episodes, oldest first: id, first frame, transitions, how it ended."""
        if self._high <= self._low:
            return []
        frames = np.arange(self._low, self._high, dtype=np.int64)
        ids = self._arrays["episode"][frames % self.capacity]
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        stops = np.r_[starts[1:], ids.size]
        table = []
        for b, e in zip(starts, stops):
            last = frames[e - 1]
            n = self._count_transitions(int(frames[b]), int(last) + 1)
            prev = (last - 1) % self.capacity
            ended = ("open" if int(ids[b]) == self._open_episode
                     else "terminated" if n and self._arrays["terminated"][prev]
                     else "truncated" if n and self._arrays["truncated"][prev]
                     else "aborted")
            table.append({"episode": int(ids[b]), "first_frame": int(frames[b]), "transitions": n,
                          "end": ended})
        return table

    def bytes_per_transition(self, include_extras: bool = False) -> int:
        """Exact bytes on disk per slot: every obs frame (images once) + state + the transition
        fields. An episode of T steps uses T + 1 slots. Extras (feature caches) are excluded
        unless asked for."""
        total = 0
        for name, f in _all_fields(self._spec).items():
            if name in self._extra_keys and not include_extras:
                continue
            total += int(np.prod(f["shape"], dtype=np.int64)) * np.dtype(f["dtype"]).itemsize
        return total

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Releases the maps and the lock. Does NOT commit: uncommitted adds are dropped on reopen."""
        if self._closed:
            return
        self._closed = True
        self._arrays.clear()
        self._memmaps.clear()
        if self._lock_fd is not None:
            storage.unlock_directory(self._lock_fd)
            self._lock_fd = None

    def __repr__(self) -> str:
        where = str(self.directory) if self.directory is not None else "memory"
        return (f"ReplayBuffer({where}, transitions={self._n}, capacity={self.capacity}, "
                f"keys={self._frame_keys})")


def empty_batch(frame_specs: Mapping[str, tuple[tuple[int, ...], np.dtype]], action_dim: int,
                batch_size: int, allocate=None) -> dict[str, Any]:
    """A batch dict of uninitialised arrays. `allocate(nbytes) -> uint8 array` lets a caller put
    every array in one contiguous (e.g. pinned) block; obs[k] and next_obs[k] are adjacent in
    it, so gather() fills both with one np.take."""
    layout = batch_layout(frame_specs, action_dim, batch_size)
    if allocate is None:
        block = np.empty(layout_nbytes(layout), dtype=np.uint8)
    else:
        block = allocate(layout_nbytes(layout))
    return views_of(block, layout)


def batch_layout(frame_specs: Mapping[str, tuple[tuple[int, ...], np.dtype]], action_dim: int,
                 batch_size: int) -> list[tuple[tuple[str, ...], tuple[int, ...], np.dtype, int]]:
    """[(path, shape, dtype, byte offset)] of a batch laid out in one block, 64-byte aligned."""
    entries: list[tuple[tuple[str, ...], tuple[int, ...], np.dtype]] = []
    for key, (shape, dtype) in frame_specs.items():
        entries.append((("obs", key), (batch_size, *shape), np.dtype(dtype)))
        entries.append((("next_obs", key), (batch_size, *shape), np.dtype(dtype)))
    entries.append((("action",), (batch_size, action_dim), np.dtype(np.float32)))
    for name in _SCALAR_BATCH_KEYS:
        entries.append(((name,), (batch_size,), np.dtype(np.float32)))
    layout, offset = [], 0
    for path, shape, dtype in entries:
        layout.append((path, shape, dtype, offset))
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        offset += nbytes
        # obs/next_obs of a key stay back to back (one np.take fills both); align the rest.
        if path[0] != "obs":
            offset = -(-offset // 64) * 64
    return layout


def layout_nbytes(layout) -> int:
    path, shape, dtype, offset = layout[-1]
    return -(-(offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize) // 64) * 64


def views_of(block: np.ndarray, layout) -> dict[str, Any]:
    batch: dict[str, Any] = {"obs": {}, "next_obs": {}}
    for path, shape, dtype, offset in layout:
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        view = block[offset:offset + nbytes].view(dtype).reshape(shape)
        if len(path) == 2:
            batch[path[0]][path[1]] = view
        else:
            batch[path[0]] = view
    return batch


def _adjacent(first: np.ndarray, second: np.ndarray) -> bool:
    """True if `second` starts right where `first` ends in memory (both C-contiguous)."""
    return (first.flags.c_contiguous and second.flags.c_contiguous and first.dtype == second.dtype
            and first.shape == second.shape
            and first.__array_interface__["data"][0] + first.nbytes == second.__array_interface__["data"][0])


def _joined(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """One (2B, ...) view spanning two adjacent (B, ...) arrays."""
    return np.lib.stride_tricks.as_strided(first, shape=(2 * first.shape[0], *first.shape[1:]),
                                           strides=first.strides, writeable=True)


def _all_fields(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every stored array: frames by key, then slot fields by name."""
    fields = dict(spec["frames"])
    fields.update(spec["slots"])
    return fields


def _finite_scalar(value: Any, name: str) -> float:
    arr = np.asarray(value)
    if arr.shape not in ((), (1,)) or arr.dtype.kind not in "fiub":
        raise ValueError(f"{name}: expected a real scalar, got {value!r}")
    out = float(arr.reshape(()))
    if not math.isfinite(out):
        raise ValueError(f"{name} is not finite: {out}")
    return out


def _flag(value: Any, name: str) -> bool:
    arr = np.asarray(value)
    if arr.shape != () or arr.dtype.kind not in "biu" or int(arr) not in (0, 1):
        raise ValueError(f"{name}: expected a bool, got {value!r}")
    return bool(arr)


def _create_checksum_file(directory: Path, spec: dict[str, Any]) -> np.ndarray:
    return storage.create_array(directory / integrity.CHECKSUM_FILE,
                                (spec["capacity"], len(spec["checksum"]["fields"])), np.dtype(np.uint32))


def _validate_spec(spec: Any, directory: Path) -> None:
    try:
        assert isinstance(spec["capacity"], int) and spec["capacity"] >= 2
        assert isinstance(spec["action_dim"], int) and spec["action_dim"] >= 1
        assert isinstance(spec["fsync"], bool)
        for fields in (spec["frames"], spec["slots"]):
            for f in fields.values():
                np.dtype(f["dtype"])
                assert all(isinstance(s, int) and s >= 0 for s in f["shape"])
                assert isinstance(f["file"], str) and "/" not in f["file"]
        assert any(f["kind"] == "obs" for f in spec["frames"].values())
        expected_slots = set(_SLOT_FIELDS) | {"action"}
        assert set(spec["slots"]) == expected_slots, f"slot fields {sorted(spec['slots'])}"
        for name, (shape, dt) in _SLOT_FIELDS.items():
            assert tuple(spec["slots"][name]["shape"]) == shape, name
            assert np.dtype(spec["slots"][name]["dtype"]) == np.dtype(dt), name
        if "checksum" in spec:
            integrity.validate_checksum_spec(spec, list(_all_fields(spec)))
    except (AssertionError, KeyError, TypeError, ValueError) as e:
        raise ReplayFormatError(f"{directory}: the header's spec is invalid ({e!r})") from e


def _validate_cursor(cursor: Any, capacity: int, directory: Path) -> None:
    try:
        low, high = cursor["low"], cursor["high"]
        assert all(isinstance(cursor[k], int) for k in ("low", "high", "next_episode", "commits"))
        assert 0 <= low <= high and high - low <= capacity, f"low={low} high={high}"
        assert cursor["open_episode"] is None or isinstance(cursor["open_episode"], int)
    except (AssertionError, KeyError, TypeError) as e:
        raise ReplayFormatError(f"{directory}: the header's cursor is invalid ({e!r})") from e
