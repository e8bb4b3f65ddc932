"""The operator's scene reset between episodes: the arm holds, the tool says so, and it waits
for any button on the teleop device (the scene is back) or a timeout.

    source = RosTeleopSource()                       # /spacemouse/joy (tasks/ros/teleop.py)
    key = wait_for_scene_reset(source, 30.0, say)    # the button's index, or None: timed out

A button already held when the pause begins does not end it: only a new press does, so a
success button still held from the episode's end cannot skip the reset. The prompt line is
always the same text (PROMPT), which is what an operator (or the rehearsal's scripted one,
bench/rehearsal_operator.py) watches for on the tool's console.
"""
from __future__ import annotations

import time
from typing import Any, Callable

PROMPT = "reset the scene, then press a key"


def wait_for_scene_reset(source: Any, timeout_s: float, say: Callable[[str], None],
                         poll_s: float = 0.02) -> int | None:
    """Waits for a new press of any button of `source` (.snapshot() -> (twist, buttons)), at
    most timeout_s seconds; returns the button's index, or None when it timed out."""
    say(f"{PROMPT} (or wait {timeout_s:.0f} s)")
    _, before = source.snapshot()
    held = {i for i, b in enumerate(before) if b}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _, buttons = source.snapshot()
        pressed = {i for i, b in enumerate(buttons) if b}
        new = sorted(pressed - held)
        if new:
            say(f"scene reset: ended by button {new[0]}")
            return new[0]
        held &= pressed          # a released button counts again when pressed anew
        time.sleep(poll_s)
    say("scene reset: timed out")
    return None
