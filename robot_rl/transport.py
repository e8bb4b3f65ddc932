"""The wire format between actors and the learner: safetensors bytes with a JSON schema header.

Every message is ONE valid safetensors blob (docs/transport.md). Its `__metadata__` holds a
single entry, "robot_rl.transport", a JSON object:

    {"format": "robot_rl.transport", "version": 1, "kind": "transition" | "weights" | "ack", ...}

and its tensors are the payload. Nothing received is ever unpickled or torch.load-ed: the
header is parsed with json, the tensors by safetensors (plain little-endian buffers), and both
are checked against what the receiver expects (keys, shapes, dtypes, finiteness) before any
of it is used. A mismatch raises TransportError with the reason.

Kinds:
- transition: `count` consecutive transitions of ONE episode of one actor session.
  header: actor_id, session, episode, step (index of the first transition in its episode),
  seq (sequence number of the first; the others follow +1), count, unacked_from (the actor's
  oldest unacknowledged seq when it sent this: everything below it was acked before).
  tensors: "frame/<obs key>" (count + 1, *shape): obs of each step, then the last next_obs
  (next_obs[i] = frame[i + 1]: shared frames travel once); "action" float32 (count, A);
  "reward", "grasp_penalty" float32 (count,); "terminated", "truncated", "intervention"
  uint8 (count,).
- weights: the policy's parameters. header: weights_version (learner updates), learner_session.
  tensors: "<module>/<parameter>" as in SACAgent.policy_state_dict().
- ack: no tensors. header: learner_session, sessions = {"<actor_id>/<session>":
  {"acked": highest contiguous seq committed to disk (-1: none), "expected": next seq the
  learner will accept}}.

This module is pure bytes <-> numpy/torch: it knows nothing of ROS (the nodes in tasks/ carry
the bytes in std_msgs/UInt8MultiArray).
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load as _st_load
from safetensors.numpy import save as _st_save

FORMAT = "robot_rl.transport"
VERSION = 1
KINDS = ("transition", "weights", "ack")
MAX_HEADER_BYTES = 16 << 20          # a safetensors header larger than this is refused unread
_META_KEY = "robot_rl.transport"
_TRANSITION_SCALARS = {"reward": np.float32, "grasp_penalty": np.float32,
                       "terminated": np.uint8, "truncated": np.uint8, "intervention": np.uint8}


class TransportError(ValueError):
    """A message that is not ours, of another version, or does not fit the receiver's schema."""


# ----------------------------------------------------------------------------- the envelope

def encode(kind: str, header: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> bytes:
    """One message: safetensors bytes with the JSON header in its metadata."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    meta = {"format": FORMAT, "version": VERSION, "kind": kind, **header}
    # ascontiguousarray makes 0-d arrays 1-d: reshape back (a scalar buffer, e.g. a "fitted" flag)
    arrays = {k: np.ascontiguousarray(v).reshape(np.shape(v)) for k, v in tensors.items()}
    return _st_save(arrays, metadata={_META_KEY: json.dumps(meta)})


def peek_header(data: bytes | bytearray | memoryview) -> dict[str, Any]:
    """The JSON header of a message, checked for format and version, without reading tensors."""
    view = memoryview(data)
    if view.nbytes < 8:
        raise TransportError(f"message of {view.nbytes} bytes is too short to be a {FORMAT} message")
    (n,) = struct.unpack("<Q", view[:8])
    if n > MAX_HEADER_BYTES or n > view.nbytes - 8:
        raise TransportError(f"not a {FORMAT} message: header length {n} does not fit a "
                             f"{view.nbytes}-byte message")
    try:
        st_header = json.loads(bytes(view[8:8 + n]))
        meta = json.loads(st_header["__metadata__"][_META_KEY])
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise TransportError(f"not a {FORMAT} message: unreadable header ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise TransportError(f"not a {FORMAT} message (format {meta.get('format') if isinstance(meta, dict) else meta!r})")
    if meta.get("version") != VERSION:
        raise TransportError(f"{FORMAT} version {meta.get('version')!r} received; this code speaks "
                             f"version {VERSION}: update the older side")
    if meta.get("kind") not in KINDS:
        raise TransportError(f"unknown message kind {meta.get('kind')!r}; known: {KINDS}")
    return meta


def decode(data: bytes | bytearray | memoryview, kind: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(header, tensors) of a message of `kind`; raises TransportError on anything else."""
    header = peek_header(data)
    if header["kind"] != kind:
        raise TransportError(f"expected a {kind!r} message, got {header['kind']!r}")
    try:
        tensors = _st_load(bytes(data))
    except (SafetensorError, ValueError, TypeError) as e:
        raise TransportError(f"corrupt {kind} message: {e}") from None
    return header, tensors


def _field(header: Mapping[str, Any], name: str, typ: type, where: str) -> Any:
    value = header.get(name)
    if typ is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise TransportError(f"{where}: header field {name!r} must be an int, got {value!r}")
    if typ is str and (not isinstance(value, str) or not value):
        raise TransportError(f"{where}: header field {name!r} must be a non-empty string, got {value!r}")
    return value


def _check_keys(got: Mapping[str, Any], want: set[str], where: str) -> None:
    if set(got) != want:
        missing, extra = sorted(want - set(got)), sorted(set(got) - want)
        raise TransportError(f"{where}: tensor keys differ from the schema (missing {missing}, "
                             f"unexpected {extra})")


def _check_array(arr: np.ndarray, shape: tuple[int, ...], dtype: np.dtype, where: str) -> None:
    if arr.shape != tuple(shape) or arr.dtype != dtype:
        raise TransportError(f"{where}: expected {np.dtype(dtype)}{tuple(shape)}, got {arr.dtype}{arr.shape}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise TransportError(f"{where}: non-finite values")


# ----------------------------------------------------------------------------- transitions

@dataclass(frozen=True)
class TransitionSchema:
    """What a learner accepts: the observation keys with shape and dtype, and the action width."""
    obs: dict[str, tuple[tuple[int, ...], np.dtype]]
    action_dim: int

    @classmethod
    def from_spaces(cls, observation_space: Any, action_space: Any) -> "TransitionSchema":
        spaces = getattr(observation_space, "spaces", observation_space)
        obs = {k: (tuple(int(s) for s in sp.shape), np.dtype(sp.dtype)) for k, sp in spaces.items()}
        return cls(obs, int(action_space.shape[0]))


@dataclass
class TransitionChunk:
    """`count` consecutive transitions of one episode; frames[k][i] is obs i, frames[k][i+1] next_obs i."""
    actor_id: str
    session: str
    episode: int
    step: int
    seq: int
    frames: dict[str, np.ndarray]
    action: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    grasp_penalty: np.ndarray
    intervention: np.ndarray
    unacked_from: int | None = None      # None: this chunk's own seq

    @property
    def count(self) -> int:
        return int(self.action.shape[0])

    def obs(self, i: int) -> dict[str, np.ndarray]:
        return {k: v[i] for k, v in self.frames.items()}

    def next_obs(self, i: int) -> dict[str, np.ndarray]:
        return {k: v[i + 1] for k, v in self.frames.items()}


def encode_transitions(chunk: TransitionChunk) -> bytes:
    n = chunk.count
    if n < 1:
        raise ValueError("a transition message needs at least one transition")
    tensors = {f"frame/{k}": v for k, v in chunk.frames.items()}
    tensors["action"] = np.asarray(chunk.action, np.float32)
    for name, dtype in _TRANSITION_SCALARS.items():
        tensors[name] = np.asarray(getattr(chunk, name), dtype).reshape(n)
    unacked_from = chunk.seq if chunk.unacked_from is None else chunk.unacked_from
    if not 0 <= unacked_from <= chunk.seq:
        raise ValueError(f"unacked_from must be in [0, seq={chunk.seq}], got {unacked_from}")
    header = {"actor_id": chunk.actor_id, "session": chunk.session, "episode": int(chunk.episode),
              "step": int(chunk.step), "seq": int(chunk.seq), "count": n, "unacked_from": int(unacked_from)}
    return encode("transition", header, tensors)


def decode_transitions(data: bytes | bytearray | memoryview, schema: TransitionSchema) -> TransitionChunk:
    """A checked TransitionChunk; TransportError if it does not fit `schema` exactly."""
    header, tensors = decode(data, "transition")
    where = "transition message"
    actor_id = _field(header, "actor_id", str, where)
    session = _field(header, "session", str, where)
    episode, step, seq, n, unacked_from = (_field(header, k, int, where) for k in
                                           ("episode", "step", "seq", "count", "unacked_from"))
    if n < 1 or seq < 0 or step < 0 or episode < 0 or not 0 <= unacked_from <= seq:
        raise TransportError(f"{where}: count must be >= 1, seq, step, episode >= 0 and "
                             f"0 <= unacked_from <= seq ({header})")
    want = {f"frame/{k}" for k in schema.obs} | {"action"} | set(_TRANSITION_SCALARS)
    _check_keys(tensors, want, where)
    for key, (shape, dtype) in schema.obs.items():
        _check_array(tensors[f"frame/{key}"], (n + 1, *shape), dtype, f"{where} frame/{key}")
    _check_array(tensors["action"], (n, schema.action_dim), np.dtype(np.float32), f"{where} action")
    for name, dtype in _TRANSITION_SCALARS.items():
        _check_array(tensors[name], (n,), np.dtype(dtype), f"{where} {name}")
        if dtype is np.uint8 and np.any(tensors[name] > 1):
            raise TransportError(f"{where}: flag {name} must be 0 or 1")
    if np.any((tensors["terminated"][:-1] | tensors["truncated"][:-1]) > 0):
        raise TransportError(f"{where}: only the last transition of a message may end the episode")
    return TransitionChunk(actor_id, session, episode, step, seq,
                           {k: tensors[f"frame/{k}"] for k in schema.obs}, tensors["action"],
                           tensors["reward"], tensors["terminated"], tensors["truncated"],
                           tensors["grasp_penalty"], tensors["intervention"], unacked_from)


# ----------------------------------------------------------------------------- weights

def flatten_state(state: Mapping[str, Any], prefix: str = "") -> dict[str, torch.Tensor]:
    """{"encoder": {"w": t}} -> {"encoder/w": t}."""
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        name = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(flatten_state(v, name))
        else:
            out[name] = v
    return out


def unflatten_state(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{"encoder/w": t} -> {"encoder": {"w": t}} (split at the FIRST '/': module, then its key)."""
    out: dict[str, dict[str, Any]] = {}
    for name, v in flat.items():
        module, _, key = name.partition("/")
        out.setdefault(module, {})[key] = v
    return out


@dataclass(frozen=True)
class WeightsSchema:
    """What an actor accepts: every tensor's (shape, dtype), and the top-level modules (a module
    without parameters, e.g. the encoder of a state-only policy, has no tensors but must exist)."""
    tensors: dict[str, tuple[tuple[int, ...], np.dtype]]
    modules: tuple[str, ...]


def weights_schema(policy_state: Mapping[str, Any]) -> WeightsSchema:
    tensors = {k: (tuple(v.shape), np.dtype(str(v.dtype).removeprefix("torch.")))
               for k, v in flatten_state(policy_state).items()}
    return WeightsSchema(tensors, tuple(sorted(policy_state)))


def encode_weights(policy_state: Mapping[str, Any], weights_version: int, learner_session: str) -> bytes:
    tensors = {k: v.detach().to("cpu").contiguous().numpy() for k, v in flatten_state(policy_state).items()}
    return encode("weights", {"weights_version": int(weights_version), "learner_session": learner_session,
                              "modules": sorted(policy_state)}, tensors)


def decode_weights(data: bytes | bytearray | memoryview,
                   schema: WeightsSchema) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, nested policy state of torch tensors) checked against `schema` (weights_schema())."""
    header, tensors = decode(data, "weights")
    where = "weights message"
    _field(header, "weights_version", int, where)
    _field(header, "learner_session", str, where)
    if header.get("modules") != list(schema.modules):
        raise TransportError(f"{where}: modules {header.get('modules')!r}, this policy has {list(schema.modules)}")
    _check_keys(tensors, set(schema.tensors), where)
    for name, (shape, dtype) in schema.tensors.items():
        _check_array(tensors[name], shape, dtype, f"{where} {name}")
    state: dict[str, Any] = {m: {} for m in schema.modules}
    state.update(unflatten_state({k: torch.from_numpy(v) for k, v in tensors.items()}))
    return header, state


# ----------------------------------------------------------------------------- acks

def encode_ack(learner_session: str, sessions: Mapping[str, Mapping[str, int]]) -> bytes:
    table = {k: {"acked": int(v["acked"]), "expected": int(v["expected"])} for k, v in sessions.items()}
    return encode("ack", {"learner_session": learner_session, "sessions": table}, {})


def decode_ack(data: bytes | bytearray | memoryview) -> tuple[str, dict[str, dict[str, int]]]:
    header, tensors = decode(data, "ack")
    where = "ack message"
    if tensors:
        raise TransportError(f"{where}: carries tensors {sorted(tensors)}; acks have none")
    learner_session = _field(header, "learner_session", str, where)
    table = header.get("sessions")
    if not isinstance(table, dict):
        raise TransportError(f"{where}: 'sessions' must be a mapping, got {table!r}")
    out = {}
    for key, entry in table.items():
        if not isinstance(entry, dict):
            raise TransportError(f"{where}: session {key!r} entry must be a mapping")
        acked, expected = (_field(entry, k, int, f"{where} {key}") for k in ("acked", "expected"))
        out[key] = {"acked": acked, "expected": expected}
    return learner_session, out


def session_key(actor_id: str, session: str) -> str:
    return f"{actor_id}/{session}"


__all__ = ["FORMAT", "VERSION", "TransportError", "TransitionSchema", "TransitionChunk",
           "encode_transitions", "decode_transitions", "encode_weights", "decode_weights",
           "weights_schema", "WeightsSchema", "encode_ack", "decode_ack", "peek_header", "session_key",
           "flatten_state", "unflatten_state"]
