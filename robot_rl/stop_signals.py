"""Ctrl-C and SIGTERM as a request to stop cleanly: the first one sets an event that a run's loop
checks between env steps (it then saves a checkpoint and returns); a second one interrupts at
once, as Python's default does.

    with stop_on_signals() as stop:
        train(cfg, stop=stop)

Handlers are installed only in the main thread (Python allows no other) and the previous ones
are put back on exit, so nothing outlives the `with`.
"""
from __future__ import annotations

import contextlib
import logging
import signal
import threading
from typing import Iterator

log = logging.getLogger("robot_rl.stop")

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop                      # no handlers off the main thread: the caller sets `stop`
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}

    def request_stop(signum, frame) -> None:
        if stop.is_set():               # the second one: stop now, without saving
            raise KeyboardInterrupt
        stop.set()
        log.warning("%s: stopping after this env step and saving a checkpoint (again to quit at once)",
                    signal.Signals(signum).name)

    for s in SIGNALS:
        signal.signal(s, request_stop)
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
