"""The actor <-> learner wire format: round trips, and every kind of bad message refused clearly."""
from __future__ import annotations

import json
import pickle
import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from robot_rl import transport
from robot_rl.agents.sac import SACAgent, SACConfig
from robot_rl.transport import TransitionChunk, TransitionSchema, TransportError

PIXELS_SPACE = gym.spaces.Dict({
    "state": gym.spaces.Box(-np.inf, np.inf, (20,), np.float32),
    "wrist": gym.spaces.Box(0, 255, (128, 128, 3), np.uint8),
    "front": gym.spaces.Box(0, 255, (128, 128, 3), np.uint8)})
ACTION_SPACE = gym.spaces.Box(-1, 1, (7,), np.float32)
SCHEMA = TransitionSchema.from_spaces(PIXELS_SPACE, ACTION_SPACE)


def make_chunk(n: int = 3, seed: int = 0, **changes) -> TransitionChunk:
    rng = np.random.default_rng(seed)
    frames = {"state": rng.standard_normal((n + 1, 20)).astype(np.float32),
              "wrist": rng.integers(0, 256, (n + 1, 128, 128, 3), dtype=np.uint8),
              "front": rng.integers(0, 256, (n + 1, 128, 128, 3), dtype=np.uint8)}
    fields = dict(actor_id="robot-a", session="s1", episode=4, step=10, seq=123, frames=frames,
                  action=rng.uniform(-1, 1, (n, 7)).astype(np.float32),
                  reward=np.r_[np.zeros(n - 1), 1.0].astype(np.float32),
                  terminated=np.r_[np.zeros(n - 1), 1].astype(np.uint8),
                  truncated=np.zeros(n, np.uint8),
                  grasp_penalty=np.full(n, -0.02, np.float32),
                  intervention=(np.arange(n) % 2).astype(np.uint8))
    fields.update(changes)
    return TransitionChunk(**fields)


def reencode(data: bytes, edit_header=None, edit_tensors=None) -> bytes:
    """The same message with its header and/or tensors changed (an old or hostile sender)."""
    header = transport.peek_header(data)
    tensors = st_load(data)
    if edit_header:
        edit_header(header)
    if edit_tensors:
        edit_tensors(tensors)
    return st_save(tensors, metadata={"robot_rl.transport": json.dumps(header)})


def test_transitions_round_trip_exactly():
    chunk = make_chunk()
    data = transport.encode_transitions(chunk)
    # shared frames travel once: 4 frames for 3 transitions
    assert len(data) < 4 * 2 * 128 * 128 * 3 + 4096
    got = transport.decode_transitions(data, SCHEMA)
    assert (got.actor_id, got.session, got.episode, got.step, got.seq, got.count) == ("robot-a", "s1", 4, 10, 123, 3)
    assert got.unacked_from == 123                     # default: the chunk's own seq
    for k in chunk.frames:
        np.testing.assert_array_equal(got.frames[k], chunk.frames[k])
    np.testing.assert_array_equal(got.obs(1)["wrist"], chunk.frames["wrist"][1])
    np.testing.assert_array_equal(got.next_obs(1)["wrist"], chunk.frames["wrist"][2])
    for name in ("action", "reward", "terminated", "truncated", "grasp_penalty", "intervention"):
        np.testing.assert_array_equal(getattr(got, name), getattr(chunk, name))


def test_a_message_is_a_plain_safetensors_file_with_a_json_header():
    data = transport.encode_transitions(make_chunk(n=1))
    tensors = st_load(data)               # any safetensors reader opens it
    assert tensors["frame/wrist"].shape == (2, 128, 128, 3)
    header = transport.peek_header(data)
    assert header["format"] == "robot_rl.transport" and header["version"] == transport.VERSION
    assert header["kind"] == "transition" and header["count"] == 1


def _policy_state(hidden=(32, 32), seed=0):
    space = gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (7,), np.float32)})
    agent = SACAgent(SACConfig(hidden_dims=hidden), space, ACTION_SPACE, seed=seed)
    return agent


def test_weights_round_trip_into_an_agent():
    src, dst = _policy_state(seed=1), _policy_state(seed=2)
    data = transport.encode_weights(src.policy_state_dict(), weights_version=42, learner_session="L1")
    header, state = transport.decode_weights(data, transport.weights_schema(dst.policy_state_dict()))
    assert header["weights_version"] == 42 and header["learner_session"] == "L1"
    dst.load_policy_state_dict(state)      # includes the (parameter-free) state encoder module
    obs = {"state": np.linspace(-1, 1, 7).astype(np.float32)}
    np.testing.assert_array_equal(src.act(obs, deterministic=True), dst.act(obs, deterministic=True))


def test_ack_round_trip():
    data = transport.encode_ack("L9", {"a/s": {"acked": 17, "expected": 20}})
    assert transport.decode_ack(data) == ("L9", {"a/s": {"acked": 17, "expected": 20}})


@pytest.mark.parametrize("data, match", [
    (b"", "too short"),
    (b"\x00" * 7, "too short"),
    (b"\xff" * 64, "header length"),
    (np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes(), "not a robot_rl.transport"),
    (st_save({"x": np.zeros(3, np.float32)}), "unreadable header"),            # safetensors, not ours
    (st_save({}, metadata={"robot_rl.transport": json.dumps({"format": "other"})}), "not a robot_rl"),
    (pickle.dumps({"evil": 1}), "not a robot_rl.transport|header length|too short"),
])
def test_garbage_is_refused(data, match):
    with pytest.raises(TransportError, match=match):
        transport.decode_transitions(data, SCHEMA)


def test_pickle_payload_is_never_unpickled():
    class Boom:
        def __reduce__(self):
            return (pytest.fail, ("unpickled!",))
    with pytest.raises(TransportError):
        transport.decode_transitions(pickle.dumps(Boom()), SCHEMA)


def test_other_version_and_kind_are_refused():
    data = transport.encode_transitions(make_chunk())
    newer = reencode(data, edit_header=lambda h: h.update(version=transport.VERSION + 1))
    with pytest.raises(TransportError, match="version 2 received; this code speaks version 1"):
        transport.decode_transitions(newer, SCHEMA)
    with pytest.raises(TransportError, match="expected a 'weights' message, got 'transition'"):
        transport.decode_weights(data, transport.weights_schema(_policy_state().policy_state_dict()))
    unknown = reencode(data, edit_header=lambda h: h.update(kind="video"))
    with pytest.raises(TransportError, match="unknown message kind"):
        transport.decode_transitions(unknown, SCHEMA)


@pytest.mark.parametrize("edit, match", [
    (lambda t: t.update({"frame/wrist": np.zeros((4, 64, 64, 3), np.uint8)}), r"frame/wrist: expected uint8\(4, 128, 128, 3\)"),
    (lambda t: t.update({"frame/state": np.zeros((4, 20), np.float64)}), "frame/state: expected float32"),
    (lambda t: t.update(action=np.zeros((3, 6), np.float32)), r"action: expected float32\(3, 7\)"),
    (lambda t: t.pop("frame/front"), r"missing \['frame/front'\]"),
    (lambda t: t.update({"frame/depth": np.zeros((4, 2), np.float32)}), r"unexpected \['frame/depth'\]"),
    (lambda t: t.update(reward=np.array([0, np.nan, 0], np.float32)), "non-finite"),
    (lambda t: t.update(intervention=np.array([0, 2, 0], np.uint8)), "0 or 1"),
    (lambda t: t.update(truncated=np.array([1, 0, 0], np.uint8)), "only the last transition"),
])
def test_shape_dtype_and_key_mismatches_are_refused(edit, match):
    data = reencode(transport.encode_transitions(make_chunk()), edit_tensors=edit)
    with pytest.raises(TransportError, match=match):
        transport.decode_transitions(data, SCHEMA)


@pytest.mark.parametrize("edit, match", [
    (lambda h: h.update(seq="7"), "'seq' must be an int"),
    (lambda h: h.update(seq=-1), "seq, step, episode >= 0"),
    (lambda h: h.pop("actor_id"), "'actor_id' must be a non-empty string"),
    (lambda h: h.update(count=2), r"frame/\w+: expected"),            # count disagrees with the tensors
    (lambda h: h.update(unacked_from=124), "0 <= unacked_from <= seq"),
    (lambda h: h.pop("unacked_from"), "'unacked_from' must be an int"),
])
def test_bad_header_fields_are_refused(edit, match):
    data = reencode(transport.encode_transitions(make_chunk()), edit_header=edit)
    with pytest.raises(TransportError, match=match):
        transport.decode_transitions(data, SCHEMA)


def test_weights_of_another_architecture_are_refused():
    data = transport.encode_weights(_policy_state(hidden=(32, 32)).policy_state_dict(), 1, "L")
    other = transport.weights_schema(_policy_state(hidden=(64, 64)).policy_state_dict())
    with pytest.raises(TransportError, match=r"weights message actor/.*expected float32\(64"):
        transport.decode_weights(data, other)
    with pytest.raises(TransportError, match="non-finite"):
        bad = _policy_state().policy_state_dict()
        bad["actor"][next(iter(bad["actor"]))].fill_(float("inf"))
        transport.decode_weights(transport.encode_weights(bad, 1, "L"),
                                 transport.weights_schema(_policy_state().policy_state_dict()))


def test_truncated_message_is_refused():
    data = transport.encode_transitions(make_chunk())
    with pytest.raises(TransportError):
        transport.decode_transitions(data[: len(data) // 2], SCHEMA)


def test_malformed_acks_are_refused():
    bad = st_save({}, metadata={"robot_rl.transport": json.dumps(
        {"format": "robot_rl.transport", "version": 1, "kind": "ack", "learner_session": "L",
         "sessions": {"a/s": {"acked": "x", "expected": 1}}})})
    with pytest.raises(TransportError, match="'acked' must be an int"):
        transport.decode_ack(bad)
    with_tensor = st_save({"x": np.zeros(1, np.float32)}, metadata={"robot_rl.transport": json.dumps(
        {"format": "robot_rl.transport", "version": 1, "kind": "ack", "learner_session": "L", "sessions": {}})})
    with pytest.raises(TransportError, match="acks have none"):
        transport.decode_ack(with_tensor)


def test_weights_decode_gives_torch_tensors_that_own_their_memory():
    agent = _policy_state()
    data = bytearray(transport.encode_weights(agent.policy_state_dict(), 3, "L"))
    _, state = transport.decode_weights(data, transport.weights_schema(agent.policy_state_dict()))
    data[:] = b"\x00" * len(data)               # the receive buffer is reused by the middleware
    assert all(torch.isfinite(t).all() for m in state.values() for t in m.values())
    assert any(t.abs().sum() > 0 for t in state["actor"].values())


def _hostile_messages() -> dict[str, bytes]:
    """Messages no encoder makes: too many tensors, nested too deeply, a dtype numpy lacks."""
    import struct

    from safetensors.torch import save as st_save_torch

    def raw(kind: str, body: bytes) -> bytes:
        meta = json.dumps(json.dumps({"format": transport.FORMAT, "version": transport.VERSION, "kind": kind}))
        text = b'{"__metadata__":{"robot_rl.transport":' + meta.encode() + b"}" + body + b"}"
        return struct.pack("<Q", len(text)) + text

    many = b"," + b",".join(b'"t%d":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}' % i for i in range(200_000))
    deep = b',"x":' + b"[" * 100_000 + b"]" * 100_000
    data = transport.encode_transitions(make_chunk())
    tensors = {k: torch.from_numpy(v.copy()) for k, v in st_load(data).items()}
    tensors["reward"] = tensors["reward"].to(torch.bfloat16)
    bf16 = st_save_torch(tensors, metadata={"robot_rl.transport": json.dumps(transport.peek_header(data))})
    out = {}
    for kind in transport.KINDS:
        out[f"{kind}: 200k tensors, 11 MB"] = raw(kind, many)
        out[f"{kind}: 5000 tensors, under 1 MB"] = raw(kind, many[:5000 * 57])
        out[f"{kind}: nested 100k deep"] = raw(kind, deep)
    out["transition: a BF16 tensor"] = bf16
    return out


HOSTILE = _hostile_messages()


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_messages_raise_only_transport_error_and_fast(name):
    """Issue #19: RecursionError and KeyError escaped; a 200k-tensor message took 3.5 s."""
    data = HOSTILE[name]
    weights = transport.weights_schema(_policy_state().policy_state_dict())
    for decode in (lambda d: transport.decode_transitions(d, SCHEMA), transport.decode_ack,
                   lambda d: transport.decode_weights(d, weights), transport.peek_header):
        best = float("inf")
        for _ in range(3):              # the best of three: the shared CPU may stall any one
            t = time.perf_counter()
            try:
                decode(data)
            except TransportError:
                pass
            best = min(best, time.perf_counter() - t)
        assert best < 0.05, f"{name}: {best * 1e3:.1f} ms"
    if "BF16" in name:
        with pytest.raises(TransportError, match=r"reward: expected float32\(3,\), got BF16\(3,\)"):
            transport.decode_transitions(data, SCHEMA)


def test_transition_count_is_capped():
    with pytest.raises(ValueError, match="1 to 256 transitions"):
        transport.encode_transitions(make_chunk(n=257))
    data = reencode(transport.encode_transitions(make_chunk()), edit_header=lambda h: h.update(count=10**6))
    with pytest.raises(TransportError, match=r"count must be in \[1, 256\]"):
        transport.decode_transitions(data, SCHEMA)
