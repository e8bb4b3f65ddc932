"""Keyboard teleop: key logic, evdev decoding, and the node fed through a real pty and a FIFO."""
from __future__ import annotations

import os

import numpy as np
import pytest
from geometry_msgs.msg import TwistStamped
from sensor_msgs.msg import Joy

from robot_rl.drivers.errors import DeviceNotFoundError
from robot_rl.drivers.keyboard import EVDEV_EVENT, KeyBindings, KeyboardTeleop, decode_evdev
from robot_rl.drivers.keyboard_node import KeyboardNode
from robot_rl.drivers.teleop import FAILURE, GRIPPER_CLOSE, GRIPPER_OPEN, RESET, SUCCESS, TAKEOVER

KEY_I, KEY_S, KEY_SPACE, KEY_C = 23, 31, 57, 46


def test_motion_keys_hold_then_expire_and_take_over():
    k = KeyboardTeleop(speed=0.5, hold_s=0.2)
    assert k.press("i", 10.0) and k.press("j", 10.0)
    cmd, buttons = k.snapshot(10.1)
    np.testing.assert_allclose(cmd, [0.5, 0.5, 0, 0, 0, 0])
    assert buttons[TAKEOVER] == 1
    cmd, buttons = k.snapshot(10.21)
    assert not cmd.any() and buttons[TAKEOVER] == 0
    k.press("e", 11.0, held=True)  # evdev: acts until released
    assert k.snapshot(20.0)[0][5] == -0.5
    k.release("e", 20.0)
    assert not k.snapshot(20.0)[0].any()
    assert not k.press("z", 12.0)  # unbound key is ignored


def test_takeover_toggles_and_events_are_held_briefly():
    k = KeyboardTeleop(event_hold_s=0.3)
    k.press(" ", 0.0)
    assert k.snapshot(5.0)[1][TAKEOVER] == 1  # sticky
    k.press(" ", 5.0)
    assert k.snapshot(5.0)[1][TAKEOVER] == 0
    for key, idx in (("s", SUCCESS), ("f", FAILURE), ("r", RESET)):
        k.press(key, 6.0)
        assert k.snapshot(6.29)[1][idx] == 1 and k.snapshot(6.31)[1][idx] == 0
    k.press("c", 7.0)
    k.press("x", 7.1)  # open after close: only the newer gripper command stands
    b = k.snapshot(7.15)[1]
    assert b[GRIPPER_OPEN] == 1 and b[GRIPPER_CLOSE] == 0 and b[TAKEOVER] == 1


def test_bindings_must_be_distinct():
    with pytest.raises(ValueError):
        KeyBindings(success="r")
    with pytest.raises(ValueError):
        KeyBindings(axes=("ik", "jl"))


def evdev(code: int, value: int) -> bytes:
    return EVDEV_EVENT.pack(0, 0, 1, code, value)


def test_evdev_decoding():
    sync = EVDEV_EVENT.pack(0, 0, 0, 0, 0)  # EV_SYN between key events
    data = evdev(KEY_I, 1) + sync + evdev(KEY_I, 2) + evdev(KEY_I, 0) + evdev(999, 1)
    assert decode_evdev(data) == [("i", True), ("i", None), ("i", False)]
    assert decode_evdev(data[:10]) == []  # a partial record is not decoded


def test_node_reads_a_terminal_in_raw_mode(ros):
    master, slave = os.openpty()
    try:
        twists = ros.inbox(TwistStamped, "/spacemouse/twist")
        joys = ros.inbox(Joy, "/spacemouse/joy")
        node = ros.add(KeyboardNode(**ros.kwargs(device=os.ttyname(slave), hold_s=0.3)))
        ros.wait_matched(node.twist_pub)
        os.write(master, b"i")
        assert twists.wait_for(lambda m: m.twist.linear.x > 0).twist.linear.x == pytest.approx(0.5)
        os.write(master, b"s")
        assert joys.wait_for(lambda m: m.buttons[SUCCESS] == 1).buttons[FAILURE] == 0
        os.write(master, b" ")
        joys.wait_for(lambda m: m.buttons[TAKEOVER] == 1 and m.axes[0] == 0.0, start=len(joys))
        os.close(master)  # the terminal goes away: the node zeroes its command and says so
        master = -1
        node.ended.wait(3)
        assert node.ended.is_set()
        last = joys.wait_for(lambda m: m.buttons[TAKEOVER] == 0, start=len(joys))
        assert last.axes == pytest.approx([0.0] * 6)
    finally:
        if master >= 0:
            os.close(master)
        os.close(slave)


def test_node_reads_an_input_device(ros, tmp_path):
    fifo = tmp_path / "event0"  # evdev records through a FIFO: the kernel's input_event format
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR)
    try:
        twists = ros.inbox(TwistStamped, "/teleop/twist")
        joys = ros.inbox(Joy, "/teleop/joy")
        node = ros.add(KeyboardNode(**ros.kwargs(device=str(fifo), input_type="evdev", topic_prefix="/teleop")))
        ros.wait_matched(node.twist_pub)
        os.write(writer, evdev(KEY_I, 1))
        twists.wait_for(lambda m: m.twist.linear.x > 0)
        os.write(writer, evdev(KEY_C, 1) + evdev(KEY_C, 0))
        joys.wait_for(lambda m: m.buttons[GRIPPER_CLOSE] == 1)
        os.write(writer, evdev(KEY_I, 0))  # release: motion stops at once, not after a hold time
        n = len(twists)
        twists.wait_for(lambda m: m.twist.linear.x == 0.0, start=n, timeout=1.0)
    finally:
        os.close(writer)


def test_not_a_terminal_is_a_clear_error(ros, tmp_path):
    path = tmp_path / "plain.txt"
    path.write_text("x")
    with pytest.raises(DeviceNotFoundError, match="not a terminal"):
        KeyboardNode(**ros.kwargs(device=str(path)))
