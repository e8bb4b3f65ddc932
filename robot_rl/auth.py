"""Authenticated actor <-> learner messages: a per-run key and HMAC-SHA256 (stdlib `hmac`).

Every transition, ack and weights message travels in a small envelope:

    8 bytes   MAGIC  b"RRLAUTH1"
    8 bytes   key id (first 8 bytes of SHA-256 over a label and the key: says WHICH key signed,
              so a receiver with another run's key can say so; reveals nothing of the key)
    32 bytes  tag = HMAC-SHA256(key, MAGIC + key id + payload)
    rest      payload: one robot_rl.transport message

The receiver checks the tag with hmac.compare_digest BEFORE it parses anything of the payload.
Everything that matters (kind, actor id, session, seq, unacked_from, learner session, epoch,
ack_seq, weights_version) is in the payload's header, so it is bound under the tag: a byte
changed anywhere is refused, and a replayed message is an old, authentic one, which the actor
and the learner recognise by those numbers and ignore (robot_rl/actor.py, robot_rl/learner.py).

The key: 32 random bytes (`secrets`), stored as 64 hex characters in RUN_DIR/auth.key with mode
0600, created with the run by the learner (or `robot-rl train --distributed`). An actor on
another machine needs a copy (docs/security.md); a key file that others can read is refused.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from robot_rl.transport import TransportError

KEY_FILE = "auth.key"
KEY_BYTES = 32
MAGIC = b"RRLAUTH1"
KEY_ID_BYTES = 8
TAG_BYTES = 32
OVERHEAD = len(MAGIC) + KEY_ID_BYTES + TAG_BYTES


class AuthError(TransportError):
    """A message without a valid tag under this run's key: dropped, counted, never parsed."""


class KeyFileError(ValueError):
    """The key file is missing, unreadable, malformed or readable by others (one-line message)."""


def copy_hint(path: str | os.PathLike) -> str:
    """How to get the learner's key onto an actor machine."""
    p = Path(path)
    return (f"copy the learner's key to the actor machine with its mode: `scp -p LEARNER_HOST:{p} {p}` "
            f"(or `install -m 600 auth.key {p}`)")


def create_key(path: str | os.PathLike) -> Path:
    """Writes a new random key to `path` (mode 0600, never overwriting an existing file)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)   # 0600 from birth, no window
    try:
        os.write(fd, secrets.token_hex(KEY_BYTES).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return p


def ensure_key(run_dir: str | os.PathLike) -> Path:
    """RUN_DIR/auth.key, created if the run has none yet (the learner's side)."""
    p = Path(run_dir) / KEY_FILE
    try:
        create_key(p)
    except FileExistsError:
        pass
    return p


def load_key(path: str | os.PathLike) -> bytes:
    """The key bytes; KeyFileError with one clear line (the path, and what to do) otherwise."""
    p = Path(path)
    try:
        st = p.stat()
        text = p.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise KeyFileError(f"auth key {p} not found: {copy_hint(p)}, or set the node's "
                           f"key_file parameter") from None
    except (OSError, UnicodeDecodeError) as e:
        raise KeyFileError(f"auth key {p} unreadable ({type(e).__name__}: {e})") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"auth key {p} has mode {stat.S_IMODE(st.st_mode):04o}: others may read "
                           f"it; run `chmod 600 {p}`")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"auth key {p} must hold {2 * KEY_BYTES} hex characters; it does not "
                           f"(copy it again from the learner's run dir)")
    return key


class MessageAuth:
    """Signs and verifies envelopes under one key. Thread-safe (no mutable state)."""

    def __init__(self, key: bytes):
        if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_BYTES:
            raise ValueError(f"the auth key must be {KEY_BYTES} bytes (robot_rl.auth.load_key)")
        self._key = bytes(key)
        self.key_id = hashlib.sha256(b"robot_rl key id\x00" + self._key).digest()[:KEY_ID_BYTES]
        self._prefix = MAGIC + self.key_id

    def _tag(self, payload: bytes | memoryview) -> bytes:
        mac = hmac.new(self._key, self._prefix, hashlib.sha256)
        mac.update(payload)
        return mac.digest()

    def sign(self, payload: bytes) -> bytes:
        return self._prefix + self._tag(payload) + payload

    def verify(self, data: bytes | bytearray | memoryview, max_payload: int | None = None) -> memoryview:
        """The payload (a view, no copy) of an envelope signed with this key; AuthError otherwise.

        max_payload: the largest payload the receiver can accept (its schema's); a larger
        message is refused before the HMAC, so a hostile one costs nothing to reject."""
        view = memoryview(data)
        if max_payload is not None and view.nbytes - OVERHEAD > max_payload:
            raise AuthError(f"unauthenticated message of {view.nbytes} bytes: larger than any this "
                            f"receiver accepts ({max_payload + OVERHEAD}); not checked")
        if view.nbytes < OVERHEAD or view[:len(MAGIC)] != MAGIC:
            raise AuthError("unauthenticated message (no robot_rl auth envelope: not ours, or a "
                            "peer of an older release)")
        key_id = bytes(view[len(MAGIC):len(MAGIC) + KEY_ID_BYTES])
        tag = view[len(MAGIC) + KEY_ID_BYTES:OVERHEAD]
        payload = view[OVERHEAD:]
        if not hmac.compare_digest(self._tag(payload), tag):
            if key_id != self.key_id:
                raise AuthError(f"unauthenticated message: signed with another key (id {key_id.hex()}, "
                                f"ours {self.key_id.hex()}): copy this run's auth.key")
            raise AuthError("unauthenticated message: bad tag (altered or forged)")
        return payload


__all__ = ["KEY_FILE", "AuthError", "KeyFileError", "MessageAuth", "create_key", "ensure_key",
           "load_key", "copy_hint"]
