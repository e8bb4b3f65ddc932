"""Shared pieces of the task tests."""
import numpy as np
import pytest


def _servo_onto(env, body: str, steps: int = 40):
    """Moves the TCP onto a scene object (the twin's ground truth, EE frame: z down) until the
    episode ends; returns the last (obs, reward, terminated, truncated, info)."""
    out = None
    for _ in range(steps):
        st = env.unwrapped.last_state
        d = env.unwrapped.robot.task_state()[f"{body}_pos"] - st.tcp_pos
        action = np.zeros(7, np.float32)
        action[:3] = np.clip([d[0] / 0.02, -d[1] / 0.02, -d[2] / 0.02], -1, 1)
        out = env.step(action)
        if out[2] or out[3]:
            break
    return out


@pytest.fixture
def servo_onto():
    return _servo_onto
