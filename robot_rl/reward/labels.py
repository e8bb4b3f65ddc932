"""Labelled camera frames for the reward classifier: a small crash-safe directory.

    DIR/index.json            {"version", "cameras", "image_size", "num_classes", "task",
                               "chunks": [{"file", "frames", "per_class", "episodes"}]}
    DIR/chunk_000000.npz      one array per camera, uint8 (N, H, W, 3), plus
                              "label" int64 (N,), "episode" int64 (N,), "step" int64 (N,)

Crash safety: a chunk is written to a temporary name, fsynced and renamed into place; only then
is the index rewritten the same way (temp + fsync + rename). A crash at any point leaves the
previous index, which names only complete chunks; an orphan chunk or temp file that the index
does not name is ignored (and removed when the directory is opened for writing).
Nothing is unpickled: npz files are read with allow_pickle=False.

Integrity (version 2): each chunk entry holds the CRC-32 of its file ("crc32"), checked when the
chunk is read, and its "file" must be exactly chunk_NNNNNN.npz for its position (no path out of
DIR). A version-1 directory (no CRCs) still loads, with a warning; a LabelWriter that opens it
checksums its chunks as they are and rewrites the index as version 2.
"""
from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from robot_rl.atomic_io import write_bytes_atomic
from robot_rl.file_format import check_version, crc32_hex, is_crc32_hex, read_json_header

log = logging.getLogger("robot_rl.reward.labels")

LABELS_VERSION = 2                 # 2: chunk entries carry the CRC-32 of their file
READABLE_VERSIONS = (1, 2)
INDEX = "index.json"


def chunk_file_name(position: int) -> str:
    return f"chunk_{position:06d}.npz"


@dataclass
class LabelSet:
    """Frames in memory: images[camera] uint8 (N, H, W, 3), labels/episodes/steps int64 (N,)."""
    images: dict[str, np.ndarray]
    labels: np.ndarray
    episodes: np.ndarray
    steps: np.ndarray
    num_classes: int = 2

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def counts(self) -> list[int]:
        return np.bincount(self.labels, minlength=self.num_classes).tolist()


class LabelWriter:
    """Appends labelled frames; `flush()` makes everything added so far durable as one chunk."""

    def __init__(self, root: str | Path, cameras: Sequence[str], image_size: int,
                 num_classes: int = 2, task: str = "", chunk_frames: int = 256):
        if not cameras:
            raise ValueError("label recording needs at least one camera")
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.cameras, self.image_size = list(cameras), int(image_size)
        self.num_classes, self.chunk_frames = int(num_classes), int(chunk_frames)
        index_path = self.root / INDEX
        if index_path.exists():
            index = read_index(self.root)
            if (index["cameras"] != self.cameras or index["image_size"] != self.image_size
                    or index["num_classes"] != self.num_classes):
                raise ValueError(f"{self.root} holds labels for cameras {index['cameras']} at "
                                 f"{index['image_size']} px, {index['num_classes']} classes; "
                                 f"asked for {self.cameras} at {self.image_size} px, {self.num_classes}")
            self.index = index
            if index["version"] < LABELS_VERSION:
                for chunk in index["chunks"]:
                    chunk["crc32"] = crc32_hex((self.root / chunk["file"]).read_bytes())
                index["version"] = LABELS_VERSION
                write_bytes_atomic(self.root / INDEX, json.dumps(index, indent=1).encode())
                log.warning("%s: label format version 1 had no chunk checksums; its %d chunks were "
                            "checksummed as they are now", self.root, len(index["chunks"]))
        else:
            self.index = {"version": LABELS_VERSION, "task": task, "cameras": self.cameras,
                          "image_size": self.image_size, "num_classes": self.num_classes,
                          "chunks": []}
        named = {c["file"] for c in self.index["chunks"]}
        for p in self.root.iterdir():  # leftovers of a crash: never in the index
            if (p.name.startswith("chunk_") and p.name not in named) or p.name.endswith(".tmp"):
                p.unlink()
        self._pending: dict[str, list] = {k: [] for k in [*self.cameras, "label", "episode", "step"]}

    @property
    def next_episode(self) -> int:
        """First episode id not used yet (episode ids keep growing across sessions)."""
        eps = [e for c in self.index["chunks"] for e in c["episodes"]]
        return max(eps) + 1 if eps else 0

    def counts(self) -> list[int]:
        """Frames per class, durable and pending."""
        total = np.zeros(self.num_classes, dtype=np.int64)
        for c in self.index["chunks"]:
            total += np.asarray(c["per_class"])
        total += np.bincount(np.asarray(self._pending["label"], dtype=np.int64),
                             minlength=self.num_classes)
        return total.tolist()

    def add(self, images: dict[str, np.ndarray], label: int, episode: int, step: int) -> None:
        label = int(label)
        if not 0 <= label < self.num_classes:
            raise ValueError(f"label {label} outside 0..{self.num_classes - 1}")
        for cam in self.cameras:
            if cam not in images:
                raise ValueError(f"frame lacks camera {cam!r} (has {sorted(images)})")
            img = np.asarray(images[cam])
            if img.dtype != np.uint8 or img.shape != (self.image_size, self.image_size, 3):
                raise ValueError(f"camera {cam!r}: expected uint8 ({self.image_size}, "
                                 f"{self.image_size}, 3), got {img.dtype} {img.shape}")
            self._pending[cam].append(img.copy())
        self._pending["label"].append(label)
        self._pending["episode"].append(int(episode))
        self._pending["step"].append(int(step))
        if len(self._pending["label"]) >= self.chunk_frames:
            self.flush()

    def flush(self) -> None:
        n = len(self._pending["label"])
        if n == 0:
            return
        arrays = {cam: np.stack(self._pending[cam]) for cam in self.cameras}
        for key in ("label", "episode", "step"):
            arrays[key] = np.asarray(self._pending[key], dtype=np.int64)
        name = chunk_file_name(len(self.index["chunks"]))
        blob = io.BytesIO()
        np.savez(blob, **arrays)
        data = blob.getvalue()
        write_bytes_atomic(self.root / name, data)
        self.index["chunks"].append({
            "file": name, "frames": n, "crc32": crc32_hex(data),
            "per_class": np.bincount(arrays["label"], minlength=self.num_classes).tolist(),
            "episodes": sorted(set(arrays["episode"].tolist()))})
        write_bytes_atomic(self.root / INDEX, json.dumps(self.index, indent=1).encode())
        self._pending = {k: [] for k in self._pending}

    def close(self) -> None:
        self.flush()


def read_index(root: str | Path) -> dict:
    path = Path(root) / INDEX
    index = read_json_header(root, INDEX, "a label directory", ValueError)
    version = index.get("version") if isinstance(index, dict) else index
    check_version(version, READABLE_VERSIONS, path, ValueError)
    for key in ("cameras", "image_size", "num_classes", "chunks"):
        if key not in index:
            raise ValueError(f"{path} lacks {key!r}")
    if not isinstance(index["chunks"], list):
        raise ValueError(f"{path}: 'chunks' must be a list")
    for i, chunk in enumerate(index["chunks"]):
        if not isinstance(chunk, dict) or chunk.get("file") != chunk_file_name(i):
            # Never follow a name from the index: it could point outside the directory.
            raise ValueError(f"{path}: chunk entry {i} must name file {chunk_file_name(i)!r}, got "
                             f"{chunk.get('file') if isinstance(chunk, dict) else chunk!r}")
        crc = chunk.get("crc32")
        if version >= 2 and not is_crc32_hex(crc):
            raise ValueError(f"{path}: chunk entry {i} lacks a valid crc32 (8 hex digits), got {crc!r}")
    return index


def load_labels(root: str | Path, cameras: Sequence[str] | None = None) -> LabelSet:
    """Reads every chunk the index names; checks shapes, label range and per-chunk counts."""
    root = Path(root)
    index = read_index(root)
    cameras = list(cameras) if cameras else list(index["cameras"])
    missing = set(cameras) - set(index["cameras"])
    if missing:
        raise ValueError(f"{root} has no frames of cameras {sorted(missing)}; it has {index['cameras']}")
    size, k = int(index["image_size"]), int(index["num_classes"])
    if index["version"] < LABELS_VERSION:
        log.warning("%s: label format version 1 has no chunk checksums; only the npz members' own "
                    "CRCs protect it", root)
    parts: dict[str, list] = {key: [] for key in [*cameras, "label", "episode", "step"]}
    for chunk in index["chunks"]:
        path = root / chunk["file"]
        try:
            raw = path.read_bytes()
            if "crc32" in chunk and crc32_hex(raw) != chunk["crc32"]:
                raise ValueError(f"its CRC-32 {crc32_hex(raw)} differs from the index's {chunk['crc32']} "
                                 f"(corrupt, or a chunk of another label set)")
            with np.load(io.BytesIO(raw), allow_pickle=False) as z:
                data = {key: z[key] for key in parts}
        except (OSError, KeyError, ValueError, EOFError) as e:
            raise ValueError(f"label chunk {path} is missing or corrupt: {e}") from None
        n = int(chunk["frames"])
        for cam in cameras:
            if data[cam].dtype != np.uint8 or data[cam].shape != (n, size, size, 3):
                raise ValueError(f"{path}: camera {cam!r} is {data[cam].dtype} {data[cam].shape}, "
                                 f"expected uint8 ({n}, {size}, {size}, 3)")
        for key in ("label", "episode", "step"):
            if data[key].shape != (n,):
                raise ValueError(f"{path}: {key!r} has shape {data[key].shape}, expected ({n},)")
        if data["label"].min() < 0 or data["label"].max() >= k:
            raise ValueError(f"{path}: labels outside 0..{k - 1}")
        if np.bincount(data["label"], minlength=k).tolist() != chunk["per_class"]:
            raise ValueError(f"{path}: label counts disagree with the index")
        for key in parts:
            parts[key].append(data[key])
    if not parts["label"]:
        raise ValueError(f"{root} holds no labelled frames yet")
    cat = {key: np.concatenate(v) for key, v in parts.items()}
    return LabelSet(images={c: cat[c] for c in cameras}, labels=cat["label"].astype(np.int64),
                    episodes=cat["episode"].astype(np.int64), steps=cat["step"].astype(np.int64),
                    num_classes=k)
