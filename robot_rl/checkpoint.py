"""Checkpoints as safetensors + JSON: no pickle anywhere, safe to load from untrusted bytes.

A checkpoint `<name>.safetensors` holds every tensor; `<name>.json` beside it holds the rest:
a format version, the nested structure (dicts, lists, numbers, strings) with references to the
tensors, the SHA-256 of the tensor file, and free user metadata. Both are written in full to temporary
files and renamed into place, the JSON last, so a crash or a full disk mid-save never leaves a
checkpoint that looks complete but is not, and never damages the previous one.

    save_agent(agent, "runs/x/ckpt_000100.safetensors", metadata={"env_steps": 1234})
    meta = load_agent(agent, "runs/x/ckpt_000100.safetensors")

Works for any object with state_dict()/load_state_dict() returning nested dicts/lists of tensors
and JSON scalars (SACAgent and BCAgent: networks, targets, temperature, optimizer state, step
counters and RNG states), so training resumes bit-for-bit.

Integrity (format 2): the JSON carries the SHA-256 of its own canonical body ("json_sha256"),
beside the tensor file's. On load every scalar is checked: floats finite, step counters and
metadata counters non-negative integers, learning rates positive, nesting at most 64 deep; any
problem, malformed structure included, is a CheckpointError naming the file and the field.
A format-1 checkpoint (no JSON checksum) still loads, with a warning, after the same checks.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as save_bytes

from robot_rl import atomic_io
from robot_rl.file_format import check_version

log = logging.getLogger("robot_rl.checkpoint")

FORMAT = "robot_rl.checkpoint"
FORMAT_VERSION = 2            # 2: the JSON is checksummed too; 1 loads with a warning
READABLE_VERSIONS = (1, 2)
MAX_DEPTH = 64                # deeper structures are refused (no RecursionError on hostile input)
_DOC_KEYS = ("format", "format_version", "tensors_sha256", "metadata", "state")


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, of another format version, or does not fit."""


def _paths(path: str | Path) -> tuple[Path, Path]:
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    return path, path.with_suffix(".json")


def _flatten(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        key = prefix or "tensor"
        while key in tensors:
            key += "#"
        # A private contiguous copy: safetensors refuses shared or strided storage.
        tensors[key] = obj.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"checkpoint dict keys must be str or int, got {k!r} at {prefix!r}")
            items.append([k, _flatten(v, f"{prefix}.{k}" if prefix else str(k), tensors)])
        return {"__dict__": items}
    if isinstance(obj, (list, tuple)):
        return {"__list__": [_flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix!r} in a checkpoint")


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor], path: str = "state", depth: int = 0) -> Any:
    """Rebuilds the state; every scalar is checked (see _check_scalar)."""
    if depth > MAX_DEPTH:
        raise CheckpointError(f"{path}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            key = obj["__tensor__"]
            if not isinstance(key, str) or key not in tensors:
                raise CheckpointError(f"{path}: refers to tensor {key!r}, which the tensor file lacks")
            return tensors[key]
        if set(obj) == {"__dict__"} and isinstance(obj["__dict__"], list):
            out = {}
            for item in obj["__dict__"]:
                if (not isinstance(item, list) or len(item) != 2 or isinstance(item[0], bool)
                        or not isinstance(item[0], (str, int))):
                    raise CheckpointError(f"{path}: a dict entry must be a [str or int key, value] "
                                          f"pair, got {str(item)[:80]}")
                k, v = item
                out[k] = _unflatten(v, tensors, f"{path}.{k}", depth + 1)
            return out
        if set(obj) == {"__list__"} and isinstance(obj["__list__"], list):
            return [_unflatten(v, tensors, f"{path}.{i}", depth + 1) for i, v in enumerate(obj["__list__"])]
        raise CheckpointError(f"{path}: malformed checkpoint structure (keys {sorted(obj)[:5]})")
    if isinstance(obj, list):
        raise CheckpointError(f"{path}: a bare list (lists are stored as {{'__list__': ...}})")
    _check_scalar(obj, path)
    return obj


def _check_scalar(value: Any, path: str) -> None:
    """Floats finite; anything under a `counters` dict a non-negative int; step counts (`step`,
    `steps`, `*_steps`) non-negative; learning rates (`lr`, `*_lr`) positive; eps and
    weight_decay non-negative."""
    if value is None or isinstance(value, (bool, str)):
        return
    if not isinstance(value, (int, float)):
        raise CheckpointError(f"{path}: unsupported value {value!r}")
    key = path.rsplit(".", 1)[-1]
    if isinstance(value, float) and not math.isfinite(value):
        raise CheckpointError(f"{path} = {value}: must be finite")
    if ".counters." in f"{path}." and not (isinstance(value, int) and value >= 0):
        raise CheckpointError(f"{path} = {value!r}: a counter must be an integer >= 0")
    if (key in ("step", "steps") or key.endswith("_steps")) and value < 0:
        raise CheckpointError(f"{path} = {value!r}: a step count must be >= 0")
    if (key == "lr" or key.endswith("_lr")) and not value > 0:
        raise CheckpointError(f"{path} = {value!r}: a learning rate must be > 0")
    if key in ("eps", "weight_decay") and value < 0:
        raise CheckpointError(f"{path} = {value!r}: must be >= 0")


def _check_metadata(metadata: Any, json_path: Path) -> dict[str, Any]:
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{json_path}: metadata must be a mapping, got {type(metadata).__name__}")
    counters = metadata.get("counters", {})
    if not isinstance(counters, dict):
        raise CheckpointError(f"{json_path}: metadata.counters must be a mapping, got {counters!r}")
    for name, value in counters.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CheckpointError(f"{json_path}: metadata.counters.{name} = {value!r}: a counter "
                                  f"must be an integer >= 0")
    return metadata


def _json_sha256(doc: dict[str, Any]) -> str:
    body = {k: doc.get(k) for k in _DOC_KEYS}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def exists(path: str | Path) -> bool:
    """True when a complete checkpoint is at `path` (its JSON is written last)."""
    tensor_path, json_path = _paths(path)
    _roll_forward(tensor_path, json_path)
    return tensor_path.is_file() and json_path.is_file()


def save_state(state: Any, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Writes `state` (nested dicts/lists of tensors and JSON scalars); returns the tensor file path.

    Both files are first written in full to `.tmp` files and fsync'd; only then are they renamed
    into place, tensors first, JSON last. A failure while writing (a full disk) leaves the
    previous checkpoint untouched; a crash between the two renames is rolled forward by the
    next load (the JSON .tmp matches the new tensors).
    """
    tensor_path, json_path = _paths(path)
    tensor_path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(state, "", tensors)
    tmp_tensors = tensor_path.with_name(tensor_path.name + ".tmp")
    tmp_json = json_path.with_name(json_path.name + ".tmp")
    try:
        # Serialised in memory, written with os.write: a full disk raises a plain OSError(ENOSPC).
        blob = save_bytes(tensors)
        atomic_io.write_tmp(tensor_path, blob, fsync=True)
        doc = {"format": FORMAT, "format_version": FORMAT_VERSION,
               "tensors_sha256": hashlib.sha256(blob).hexdigest(),
               "metadata": metadata or {}, "state": skeleton}
        doc["json_sha256"] = _json_sha256(doc)
        atomic_io.write_tmp(json_path, json.dumps(doc).encode(), fsync=True)
    except BaseException:
        tmp_tensors.unlink(missing_ok=True)
        tmp_json.unlink(missing_ok=True)
        raise
    os.replace(tmp_tensors, tensor_path)
    os.replace(tmp_json, json_path)                  # the commit point
    atomic_io.fsync_directory(tensor_path.parent)
    return tensor_path


def _roll_forward(tensor_path: Path, json_path: Path) -> None:
    """Finishes a save that was killed between its two renames (tensors new, JSON still .tmp)."""
    tmp_json = json_path.with_name(json_path.name + ".tmp")
    tmp_tensors = tensor_path.with_name(tensor_path.name + ".tmp")
    if not tmp_json.is_file() or tmp_tensors.exists() or not tensor_path.is_file():
        return
    try:
        doc = json.loads(tmp_json.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return
    if isinstance(doc, dict) and doc.get("tensors_sha256") == _sha256(tensor_path):
        os.replace(tmp_json, json_path)


def load_state(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """Reads a checkpoint written by save_state; returns (state, metadata). Raises CheckpointError."""
    tensor_path, json_path = _paths(path)
    _roll_forward(tensor_path, json_path)
    for p in (tensor_path, json_path):
        if not p.is_file():
            raise CheckpointError(f"checkpoint file {str(p)!r} does not exist")
    try:
        doc = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise CheckpointError(f"{json_path}: not valid JSON ({str(e)[:200]})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{json_path}: not a {FORMAT} file")
    version = doc.get("format_version")
    check_version(version, READABLE_VERSIONS, json_path, CheckpointError)
    missing = [k for k in ("tensors_sha256", "state") if k not in doc]
    if missing:
        raise CheckpointError(f"{json_path}: lacks {missing}")
    if version >= 2:
        try:
            expected = _json_sha256(doc)
        except (ValueError, RecursionError):
            expected = None
        if doc.get("json_sha256") != expected:
            raise CheckpointError(f"{json_path}: contents do not match its json_sha256 (corrupt or "
                                  f"edited)")
    else:
        log.warning("%s: checkpoint format 1 has no checksum of its JSON; loading it after range "
                    "checks (the next save writes format %d)", json_path, FORMAT_VERSION)
    metadata = _check_metadata(doc.get("metadata", {}), json_path)
    if _sha256(tensor_path) != doc.get("tensors_sha256"):
        raise CheckpointError(f"{tensor_path}: contents do not match the checksum in {json_path.name} "
                              "(corrupt or from another checkpoint)")
    try:
        tensors = load_file(str(tensor_path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{tensor_path}: unreadable tensor file ({e})") from None
    try:
        state = _unflatten(doc["state"], tensors)
    except CheckpointError as e:
        raise CheckpointError(f"{json_path}: {e}") from None
    except RecursionError:
        raise CheckpointError(f"{json_path}: nested too deeply") from None
    return state, metadata


def save_agent(agent: Any, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    return save_state(agent.state_dict(), path, metadata)


def load_agent(agent: Any, path: str | Path) -> dict[str, Any]:
    """Restores `agent` in place from a checkpoint; returns the checkpoint's user metadata."""
    state, metadata = load_state(path)
    try:
        agent.load_state_dict(state)
    except (KeyError, RuntimeError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise CheckpointError(f"{path}: does not fit this agent ({type(e).__name__}: {e})") from None
    return metadata
