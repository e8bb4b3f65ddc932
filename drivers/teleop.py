"""The Joy contract shared by every teleop source (SpaceMouse, keyboard).

`/spacemouse/joy` (sensor_msgs/Joy):
- axes: the 6 command values [vx, vy, vz, wx, wy, wz] in the robot base frame, the same
  numbers as `/spacemouse/twist` (normalised: |v| <= scale, 1.0 = full deflection);
- buttons[0:6]: the semantic buttons below, 1 while active;
- buttons[6:]: the raw device buttons (SpaceMouse), for anything else a user maps.
"takeover" is 1 while the human is commanding (motion above the deadband, a gripper button,
or the keyboard's takeover toggle): the actor lets the human win while it is 1.
"""
from __future__ import annotations

from typing import Sequence

JOY_BUTTONS = ("gripper_close", "gripper_open", "success", "failure", "reset", "takeover")
GRIPPER_CLOSE, GRIPPER_OPEN, SUCCESS, FAILURE, RESET, TAKEOVER = range(6)


def joy_buttons(active: set[str] | frozenset[str] = frozenset(), raw: Sequence[int] = ()) -> list[int]:
    unknown = set(active) - set(JOY_BUTTONS)
    if unknown:
        raise ValueError(f"unknown teleop buttons {sorted(unknown)}; known: {JOY_BUTTONS}")
    return [int(name in active) for name in JOY_BUTTONS] + [int(b) for b in raw]


def gripper_from_buttons(buttons: Sequence[int]) -> float | None:
    """1.0 (close) / 0.0 (open) when a gripper button is held, else None (stay)."""
    if len(buttons) > GRIPPER_CLOSE and buttons[GRIPPER_CLOSE]:
        return 1.0
    if len(buttons) > GRIPPER_OPEN and buttons[GRIPPER_OPEN]:
        return 0.0
    return None
