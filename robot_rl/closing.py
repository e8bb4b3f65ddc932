"""Closing: `with obj:` for any object with a close() method, so each class does not write
__enter__/__exit__ (and the close-when-collected __del__) again; and closed_on_error, for an
open() that must not leave a half-opened object (and its lock) behind when a check fails."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, TypeVar

T = TypeVar("T", bound="Closing")


class Closing:
    """Mix in for a class with close(): `with X(...) as x:` closes x however the block ends."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class ClosedWhenCollected(Closing):
    """Closing, and close() once more when garbage-collected (a lock left held would block the
    next opener); an error there is ignored, as the interpreter may be shutting down."""

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


@contextmanager
def closed_on_error(obj: Any) -> Iterator[Any]:
    """Closes `obj` and re-raises when the block fails (any exception, KeyboardInterrupt too)."""
    try:
        yield obj
    except BaseException:
        obj.close()
        raise
