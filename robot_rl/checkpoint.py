"""Checkpoints as safetensors + JSON: no pickle anywhere, safe to load from untrusted bytes.

A checkpoint `<name>.safetensors` holds every tensor; `<name>.json` beside it holds the rest:
a format version, the nested structure (dicts, lists, numbers, strings) with references to the
tensors, the SHA-256 of the tensor file, and free user metadata. Both are written to temporary
files and renamed into place, the JSON last, so a crash mid-save never leaves a checkpoint
that looks complete but is not.

    save_agent(agent, "runs/x/ckpt_000100.safetensors", metadata={"env_steps": 1234})
    meta = load_agent(agent, "runs/x/ckpt_000100.safetensors")

Works for any object with state_dict()/load_state_dict() returning nested dicts/lists of tensors
and JSON scalars (SACAgent and BCAgent: networks, targets, temperature, optimizer state, step
counters and RNG states), so training resumes bit-for-bit.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT = "robot_rl.checkpoint"
FORMAT_VERSION = 1


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


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            key = obj["__tensor__"]
            if key not in tensors:
                raise CheckpointError(f"checkpoint refers to tensor {key!r}, which the tensor file lacks")
            return tensors[key]
        if "__dict__" in obj:
            return {k: _unflatten(v, tensors) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            return [_unflatten(v, tensors) for v in obj["__list__"]]
        raise CheckpointError(f"malformed checkpoint structure: {sorted(obj)}")
    return obj


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _replace_atomically(tmp: Path, final: Path) -> None:
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)


def save_state(state: Any, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Writes `state` (nested dicts/lists of tensors and JSON scalars); returns the tensor file path."""
    tensor_path, json_path = _paths(path)
    tensor_path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(state, "", tensors)
    tmp_tensors = tensor_path.with_name(tensor_path.name + ".tmp")
    save_file(tensors, str(tmp_tensors))
    digest = _sha256(tmp_tensors)
    _replace_atomically(tmp_tensors, tensor_path)
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "tensors_sha256": digest,
           "metadata": metadata or {}, "state": skeleton}
    tmp_json = json_path.with_name(json_path.name + ".tmp")
    tmp_json.write_text(json.dumps(doc))
    _replace_atomically(tmp_json, json_path)
    return tensor_path


def load_state(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """Reads a checkpoint written by save_state; returns (state, metadata). Raises CheckpointError."""
    tensor_path, json_path = _paths(path)
    for p in (tensor_path, json_path):
        if not p.is_file():
            raise CheckpointError(f"checkpoint file {str(p)!r} does not exist")
    try:
        doc = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{json_path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{json_path}: not a {FORMAT} file")
    if doc.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{json_path}: format version {doc.get('format_version')!r}, "
                              f"this code reads version {FORMAT_VERSION}")
    if _sha256(tensor_path) != doc.get("tensors_sha256"):
        raise CheckpointError(f"{tensor_path}: contents do not match the checksum in {json_path.name} "
                              "(corrupt or from another checkpoint)")
    try:
        tensors = load_file(str(tensor_path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{tensor_path}: unreadable tensor file ({e})") from None
    return _unflatten(doc["state"], tensors), doc.get("metadata", {})


def save_agent(agent: Any, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    return save_state(agent.state_dict(), path, metadata)


def load_agent(agent: Any, path: str | Path) -> dict[str, Any]:
    """Restores `agent` in place from a checkpoint; returns the checkpoint's user metadata."""
    state, metadata = load_state(path)
    try:
        agent.load_state_dict(state)
    except (KeyError, RuntimeError, TypeError) as e:
        raise CheckpointError(f"{path}: does not fit this agent ({type(e).__name__}: {e})") from None
    return metadata
