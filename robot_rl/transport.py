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
from typing import Any, Callable, Mapping

import numpy as np
import torch
from safetensors.numpy import load as _st_load
from safetensors.numpy import save as _st_save

FORMAT = "robot_rl.transport"
VERSION = 1
KINDS = ("transition", "weights", "ack")
MAX_HEADER_BYTES = 1 << 20           # a safetensors header larger than this is refused unread
MAX_TENSORS = 4096                   # and one naming more tensors (any receiver expects far fewer)
MAX_TRANSITIONS_PER_MESSAGE = 256    # an actor sends 1 per step and resends in chunks of resend_chunk
_EXTRA_TENSORS = 16                  # tensors beyond a receiver's schema that are parsed to name them
_META_KEY = "robot_rl.transport"
# safetensors dtype names -> numpy (what safetensors.numpy can read; BF16 and FP8 are refused)
_NP_OF_ST = {"F64": np.dtype(np.float64), "F32": np.dtype(np.float32), "F16": np.dtype(np.float16),
             "I64": np.dtype(np.int64), "I32": np.dtype(np.int32), "I16": np.dtype(np.int16),
             "I8": np.dtype(np.int8), "U64": np.dtype(np.uint64), "U32": np.dtype(np.uint32),
             "U16": np.dtype(np.uint16), "U8": np.dtype(np.uint8), "BOOL": np.dtype(np.bool_)}
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


def _parse(data: bytes | bytearray | memoryview, max_tensors: int | None = None
           ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(schema header, safetensors tensor table) of a message, refused cheaply BEFORE any JSON is
    parsed when its header is too long or names more tensors than the receiver can accept
    (a count of one byte string, C speed: a hostile message costs microseconds, not seconds)."""
    view = memoryview(data)
    if view.nbytes < 8:
        raise TransportError(f"message of {view.nbytes} bytes is too short to be a {FORMAT} message")
    (n,) = struct.unpack("<Q", view[:8])
    if n > MAX_HEADER_BYTES or n > view.nbytes - 8:
        raise TransportError(f"not a {FORMAT} message: header length {n} does not fit a "
                             f"{view.nbytes}-byte message (at most {MAX_HEADER_BYTES})")
    raw = bytes(view[8:8 + n])
    # a few extra tensors still get the precise "unexpected [...]" message below; a flood does not
    limit = MAX_TENSORS if max_tensors is None else min(max_tensors + _EXTRA_TENSORS, MAX_TENSORS)
    tensors_named = raw.count(b'"data_offsets"')
    if tensors_named > limit:
        raise TransportError(f"not a {FORMAT} message for this receiver: {tensors_named} tensors, "
                             f"at most {limit} expected")
    try:
        st_header = json.loads(raw)
        meta_text = st_header["__metadata__"][_META_KEY]
        meta = json.loads(meta_text)
    except RecursionError:
        # json stops a too deeply nested document within its first few kB (the recursion limit)
        raise TransportError(f"not a {FORMAT} message: header nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise TransportError(f"not a {FORMAT} message: unreadable header ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise TransportError(f"not a {FORMAT} message (format {meta.get('format') if isinstance(meta, dict) else meta!r})")
    if meta.get("version") != VERSION:
        raise TransportError(f"{FORMAT} version {meta.get('version')!r} received; this code speaks "
                             f"version {VERSION}: update the older side")
    if meta.get("kind") not in KINDS:
        raise TransportError(f"unknown message kind {meta.get('kind')!r}; known: {KINDS}")
    table = {}
    for name, entry in st_header.items():
        if name == "__metadata__":
            continue
        if not (isinstance(entry, dict) and isinstance(entry.get("dtype"), str)
                and isinstance(entry.get("shape"), list)
                and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in entry["shape"])):
            raise TransportError(f"not a {FORMAT} message: tensor {name[:80]!r} is not described "
                                 "by a dtype and a shape")
        table[name] = entry
    return meta, table


def peek_header(data: bytes | bytearray | memoryview) -> dict[str, Any]:
    """The JSON header of a message, checked for format and version, without reading tensors."""
    return _parse(data)[0]


def _check_layout(table: Mapping[str, Any], want: Mapping[str, tuple[tuple[int, ...], np.dtype]],
                  where: str) -> None:
    """Keys, dtypes and shapes as the safetensors header states them, before any tensor is read."""
    _check_keys(table, set(want), where)
    for name, (shape, dtype) in want.items():
        entry = table[name]
        got_dtype = _NP_OF_ST.get(entry["dtype"])
        if tuple(entry["shape"]) != tuple(shape) or got_dtype != np.dtype(dtype):
            got = got_dtype.name if got_dtype is not None else entry["dtype"]
            raise TransportError(f"{where} {name}: expected {np.dtype(dtype)}{tuple(shape)}, "
                                 f"got {got}{tuple(entry['shape'])}")


def decode(data: bytes | bytearray | memoryview, kind: str,
           want: Callable[[dict[str, Any]], Mapping[str, tuple[tuple[int, ...], np.dtype]]] | None = None,
           max_tensors: int | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(header, tensors) of a message of `kind`; raises TransportError (only) on anything else.

    want(header) -> {name: (shape, dtype)}: the exact tensors the receiver accepts, checked
    against the safetensors header before a single tensor is read."""
    header, table = _parse(data, max_tensors)
    if header["kind"] != kind:
        raise TransportError(f"expected a {kind!r} message, got {header['kind']!r}")
    if want is not None:
        _check_layout(table, want(header), f"{kind} message")
    try:
        tensors = _st_load(bytes(data))
    except Exception as e:  # noqa: BLE001 - the contract: a bad message is a TransportError, never more
        raise TransportError(f"corrupt {kind} message: {type(e).__name__}: {e}") from None
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

    def max_message_bytes(self) -> int:
        """The largest transition message this schema admits: anything larger is refused unread."""
        n = MAX_TRANSITIONS_PER_MESSAGE
        frame = sum(int(np.prod(shape)) * dtype.itemsize for shape, dtype in self.obs.values())
        return 8 + MAX_HEADER_BYTES + (n + 1) * frame + n * (4 * self.action_dim + 4 * 2 + 3)


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
    if not 1 <= n <= MAX_TRANSITIONS_PER_MESSAGE:
        raise ValueError(f"a transition message holds 1 to {MAX_TRANSITIONS_PER_MESSAGE} transitions, got {n}")
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
    where = "transition message"

    def want(header: dict[str, Any]) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        _field(header, "actor_id", str, where)
        _field(header, "session", str, where)
        episode, step, seq, n, unacked_from = (_field(header, k, int, where) for k in
                                               ("episode", "step", "seq", "count", "unacked_from"))
        if not 1 <= n <= MAX_TRANSITIONS_PER_MESSAGE or seq < 0 or step < 0 or episode < 0 \
                or not 0 <= unacked_from <= seq:
            raise TransportError(f"{where}: count must be in [1, {MAX_TRANSITIONS_PER_MESSAGE}], seq, step, episode >= 0 and "
                                 f"0 <= unacked_from <= seq ({header})")
        layout = {f"frame/{k}": ((n + 1, *shape), dtype) for k, (shape, dtype) in schema.obs.items()}
        layout["action"] = ((n, schema.action_dim), np.dtype(np.float32))
        layout.update({name: ((n,), np.dtype(dtype)) for name, dtype in _TRANSITION_SCALARS.items()})
        return layout

    header, tensors = decode(data, "transition", want, max_tensors=len(schema.obs) + 1 + len(_TRANSITION_SCALARS))
    n = header["count"]
    for key, (shape, dtype) in schema.obs.items():
        _check_array(tensors[f"frame/{key}"], (n + 1, *shape), dtype, f"{where} frame/{key}")
    _check_array(tensors["action"], (n, schema.action_dim), np.dtype(np.float32), f"{where} action")
    for name, dtype in _TRANSITION_SCALARS.items():
        _check_array(tensors[name], (n,), np.dtype(dtype), f"{where} {name}")
        if dtype is np.uint8 and np.any(tensors[name] > 1):
            raise TransportError(f"{where}: flag {name} must be 0 or 1")
    if np.any((tensors["terminated"][:-1] | tensors["truncated"][:-1]) > 0):
        raise TransportError(f"{where}: only the last transition of a message may end the episode")
    return TransitionChunk(header["actor_id"], header["session"], header["episode"], header["step"],
                           header["seq"], {k: tensors[f"frame/{k}"] for k in schema.obs}, tensors["action"],
                           tensors["reward"], tensors["terminated"], tensors["truncated"],
                           tensors["grasp_penalty"], tensors["intervention"], header["unacked_from"])


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

    def max_message_bytes(self) -> int:
        """The largest weights message this schema admits: anything larger is refused unread."""
        return 8 + MAX_HEADER_BYTES + sum(int(np.prod(s)) * d.itemsize for s, d in self.tensors.values())


def weights_schema(policy_state: Mapping[str, Any]) -> WeightsSchema:
    tensors = {k: (tuple(v.shape), np.dtype(str(v.dtype).removeprefix("torch.")))
               for k, v in flatten_state(policy_state).items()}
    return WeightsSchema(tensors, tuple(sorted(policy_state)))


def encode_weights(policy_state: Mapping[str, Any], weights_version: int, learner_session: str,
                   epoch: int = 0) -> bytes:
    """epoch: the learner process's start epoch (Learner.epoch): orders learner sessions."""
    tensors = {k: v.detach().to("cpu").contiguous().numpy() for k, v in flatten_state(policy_state).items()}
    return encode("weights", {"weights_version": int(weights_version), "learner_session": learner_session,
                              "epoch": int(epoch), "modules": sorted(policy_state)}, tensors)


def decode_weights(data: bytes | bytearray | memoryview,
                   schema: WeightsSchema) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, nested policy state of torch tensors) checked against `schema` (weights_schema())."""
    where = "weights message"

    def want(header: dict[str, Any]) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        for name, typ in (("weights_version", int), ("learner_session", str), ("epoch", int)):
            _field(header, name, typ, where)
        if header.get("modules") != list(schema.modules):
            raise TransportError(f"{where}: modules {header.get('modules')!r}, this policy has {list(schema.modules)}")
        return schema.tensors

    header, tensors = decode(data, "weights", want, max_tensors=len(schema.tensors))
    for name, (shape, dtype) in schema.tensors.items():
        _check_array(tensors[name], shape, dtype, f"{where} {name}")
    state: dict[str, Any] = {m: {} for m in schema.modules}
    state.update(unflatten_state({k: torch.from_numpy(v) for k, v in tensors.items()}))
    return header, state


# ----------------------------------------------------------------------------- acks

@dataclass(frozen=True)
class AckMessage:
    learner_session: str
    epoch: int          # the learner process's start epoch: a higher one is a newer learner
    ack_seq: int        # counts this learner session's acks: an older one is a replay
    sessions: dict[str, dict[str, int]]


def encode_ack(learner_session: str, sessions: Mapping[str, Mapping[str, int]], epoch: int = 0,
               ack_seq: int = 0) -> bytes:
    table = {k: {"acked": int(v["acked"]), "expected": int(v["expected"])} for k, v in sessions.items()}
    return encode("ack", {"learner_session": learner_session, "epoch": int(epoch), "ack_seq": int(ack_seq),
                          "sessions": table}, {})


ACK_MAX_MESSAGE_BYTES = 8 + MAX_HEADER_BYTES


def decode_ack_message(data: bytes | bytearray | memoryview) -> AckMessage:
    where = "ack message"

    def want(header: dict[str, Any]) -> dict[str, Any]:
        return {}

    try:
        header, _ = decode(data, "ack", want, max_tensors=0)
    except TransportError as e:
        if "for this receiver" in str(e) or "unexpected" in str(e):
            raise TransportError(f"{where}: carries tensors; acks have none ({e})") from None
        raise
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
    epoch, ack_seq = (_field(header, k, int, where) for k in ("epoch", "ack_seq"))
    return AckMessage(learner_session, epoch, ack_seq, out)


def decode_ack(data: bytes | bytearray | memoryview) -> tuple[str, dict[str, dict[str, int]]]:
    """(learner session, {session key: {"acked", "expected"}}) of an ack message."""
    ack = decode_ack_message(data)
    return ack.learner_session, ack.sessions


def session_key(actor_id: str, session: str) -> str:
    return f"{actor_id}/{session}"


__all__ = ["FORMAT", "VERSION", "TransportError", "TransitionSchema", "TransitionChunk",
           "encode_transitions", "decode_transitions", "encode_weights", "decode_weights",
           "weights_schema", "WeightsSchema", "encode_ack", "decode_ack", "decode_ack_message", "AckMessage", "peek_header", "session_key",
           "flatten_state", "unflatten_state"]
