"""Robotiq 2F-85: the node against a pymodbus server holding the gripper's register map,
over Modbus TCP on loopback and Modbus RTU across a pseudo-terminal null-modem."""
from __future__ import annotations

import json
import socket
import time

import pytest
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, String

from robot_rl.drivers.peers.null_modem import NullModem
from robot_rl.drivers.peers.robotiq_sim import Robotiq2F85Sim
from robot_rl.drivers.robotiq import (GripperStatus, OpeningCalibration, RobotiqGripper, decode_command, encode_command,
                             make_client, to_byte)
from robot_rl.drivers.robotiq_node import RobotiqNode

FAST = dict(poll_rate=100.0, timeout=0.25, reconnect_backoff=0.05, reconnect_backoff_max=0.2, command_timeout=0.3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_register_codec():
    regs = encode_command(act=True, go=True, position=200, speed=255, force=100)
    assert regs == [0x0900, 200, 0xFF64]  # byte 0 = rACT | rGTO, then rPR, then rSP:rFR
    assert decode_command(regs) == {"rACT": 1, "rGTO": 1, "rATR": 0, "rPR": 200, "rSP": 255, "rFR": 100}
    st = GripperStatus(gACT=1, gGTO=1, gSTA=3, gOBJ=2, gFLT=0x0E, gPR=255, gPO=150, gCU=30)
    assert st.to_registers() == [0xB900, 0x0EFF, 0x961E]
    assert GripperStatus.from_registers(st.to_registers()) == st
    assert st.ready and st.object_detected and st.current_a == pytest.approx(0.3)
    assert st.fault_text == "overcurrent"
    for bad in (float("nan"), float("inf"), -0.1, 1.01):
        with pytest.raises(ValueError):
            to_byte(bad, "x")
    with pytest.raises(ValueError):
        encode_command(True, True, 256, 0, 0)
    with pytest.raises(ValueError):
        make_client("canbus")


def test_opening_in_metres_is_linear_between_the_calibrated_end_stops():
    cal = OpeningCalibration()                      # 2F-85: gPO 13 fully open, 230 closed, 85 mm
    assert cal.opening_m(13) == pytest.approx(0.085) and cal.closure(13) == 0.0
    assert cal.opening_m(230) == 0.0 and cal.closure(230) == 1.0
    assert cal.opening_m(121.5) == pytest.approx(0.0425)                  # half way, half open
    assert cal.opening_m(0) == pytest.approx(0.085) and cal.opening_m(255) == 0.0   # clipped
    # gPO / 255 (what the driver used to report) read 0.05 for a fully open gripper.
    assert 13 / 255 == pytest.approx(0.05, abs=0.002)
    wide = OpeningCalibration(open_counts=0, closed_counts=255, stroke_m=0.14)      # a 2F-140
    assert wide.opening_m(51) == pytest.approx(0.14 * 204 / 255)
    for bad in (dict(open_counts=200, closed_counts=100), dict(closed_counts=256), dict(stroke_m=float("nan")),
                dict(stroke_m=0.0)):
        with pytest.raises(ValueError):
            OpeningCalibration(**bad)


def test_activation_and_motion_over_rtu_pty():
    sim = Robotiq2F85Sim()
    with NullModem() as cable, sim.serve(serial_port=cable.b):
        g = RobotiqGripper(make_client("rtu", port=cable.a, timeout=1.0))
        g.connect()
        try:
            assert not g.read_status().ready
            status = g.activate(timeout=2.0)
            assert status.gACT == 1 and status.gSTA == 3
            sim.object_at = 150
            g.move(255, 255, 128)
            deadline = time.monotonic() + 2
            while not (st := g.read_status()).object_detected:
                assert time.monotonic() < deadline
                time.sleep(0.005)
            assert st.gOBJ == 2 and st.gPO == 150 and st.gPR == 255 and st.gCU > 0
            g.move(0, 255, 128)
            while (st := g.read_status()).gOBJ != 3:
                assert time.monotonic() < deadline + 2
                time.sleep(0.005)
            assert st.gPO == sim.open_stop == 13 and not st.object_detected   # its mechanical stop
        finally:
            g.close()


def test_action_before_activation_is_a_fault_the_device_reports():
    sim = Robotiq2F85Sim()
    port = free_port()
    with sim.serve(tcp=("127.0.0.1", port)):
        g = RobotiqGripper(make_client("tcp", host="127.0.0.1", tcp_port=port))
        g.connect()
        try:
            g.write(act=False, go=True, position=100)
            assert g.read_status().gFLT == 0x07
            assert g.activate(timeout=2.0).gFLT == 0  # the reset + activation clears it
        finally:
            g.close()


def status_events(inbox) -> list[dict]:
    return [json.loads(m.data) for m in inbox.msgs]


def test_node_over_tcp_commands_state_object_and_faults(ros):
    sim = Robotiq2F85Sim()
    port = free_port()
    with sim.serve(tcp=("127.0.0.1", port)):
        states = ros.inbox(JointState, "/franka/gripper/state")
        status = ros.inbox(String, "/franka/gripper/status")
        node = ros.add(RobotiqNode(namespace="franka", **ros.kwargs(transport="tcp", host="127.0.0.1", tcp_port=port, **FAST)))
        pub = ros.probe.create_publisher(Float64, "/franka/gripper/command", 10)
        ros.wait_matched(pub)
        status.wait_for(lambda m: json.loads(m.data)["ready"])
        assert sim.status().ready

        sim.object_at = 150
        pub.publish(Float64(data=1.0))
        st = states.wait_for(lambda m: m.position[0] > 0.5 and m.effort[0] > 0.1)
        assert st.name == ["gripper", "gripper_opening"]
        assert st.position[0] == pytest.approx((150 - 13) / (230 - 13))              # closure 0..1
        assert st.position[1] == pytest.approx(0.085 * (230 - 150) / (230 - 13))     # metres
        ev = json.loads(status.wait_for(lambda m: json.loads(m.data)["object_detected"]).data)
        assert ev["gPO"] == 150 and ev["opening_m"] == pytest.approx(st.position[1])

        pub.publish(Float64(data=0.0))
        st = states.wait_for(lambda m: m.position[0] == 0.0, start=len(states))
        assert st.position[1] == pytest.approx(0.085)              # fully open reads 85 mm, not 0.05
        assert sim.status().gPO == 13

        # malformed commands are refused and reported; the gripper stays put
        writes = sim.writes
        for bad in (float("nan"), 1.5, -0.2):
            pub.publish(Float64(data=bad))
        status.wait_for(lambda m: "1.5" in m.data and "rejected" in m.data)
        deadline = time.monotonic() + 2
        while node.rejected < 3:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.05)
        assert sim.writes == writes and sim.status().gPR == 0

        # a device fault is reported, not hidden
        sim.inject_fault(0x0E)
        ev = status.wait_for(lambda m: json.loads(m.data).get("fault") == 0x0E)
        assert json.loads(ev.data)["fault_text"] == "overcurrent"
        assert any("fault 0x0E" in e.get("event", "") for e in status_events(status))


def test_node_reconnects_and_delivers_a_command_sent_while_the_link_was_down(ros):
    sim = Robotiq2F85Sim()
    port = free_port()
    server = sim.serve(tcp=("127.0.0.1", port))
    try:
        states = ros.inbox(JointState, "/gripper/state")
        status = ros.inbox(String, "/gripper/status")
        node = ros.add(RobotiqNode(**ros.kwargs(transport="tcp", host="127.0.0.1", tcp_port=port, **FAST)))
        pub = ros.probe.create_publisher(Float64, "/gripper/command", 10)
        ros.wait_matched(pub)
        status.wait_for(lambda m: json.loads(m.data)["ready"])

        server.stop()  # the gripper's gateway dies mid-run
        sim.power_cycle()  # and the gripper loses its activation
        status.wait_for(lambda m: "link lost" in m.data)
        pub.publish(Float64(data=0.8))
        late = status.wait_for(lambda m: "not delivered" in m.data)
        assert json.loads(late.data)["level"] == "error"
        assert node.supervisor.pending and node.supervisor.backoff > FAST["reconnect_backoff"]

        server = sim.serve(tcp=("127.0.0.1", port))  # back: reconnect, re-activate, deliver
        st = states.wait_for(lambda m: m.position[0] == pytest.approx((round(0.8 * 255) - 13) / (230 - 13)), timeout=5)
        assert st.position[0] > 0.7
        assert sim.status().gPR == round(0.8 * 255) and not node.supervisor.pending
        assert node.supervisor.lost_count == 1
    finally:
        server.stop()


def test_node_over_rtu_reports_a_modbus_timeout_and_recovers(ros):
    sim = Robotiq2F85Sim()
    with NullModem() as cable, sim.serve(serial_port=cable.b):
        status = ros.inbox(String, "/gripper/status")
        states = ros.inbox(JointState, "/gripper/state")
        ros.add(RobotiqNode(**ros.kwargs(transport="rtu", port=cable.a, **FAST)))
        pub = ros.probe.create_publisher(Float64, "/gripper/command", 10)
        ros.wait_matched(pub)
        status.wait_for(lambda m: json.loads(m.data)["ready"], timeout=5)
        cable.unplug()  # bytes vanish: every request times out
        status.wait_for(lambda m: "link lost" in m.data)
        pub.publish(Float64(data=1.0))
        n = len(states)
        time.sleep(0.2)
        assert len(states) == n  # no state is invented while the device is silent
        cable.plug()
        states.wait_for(lambda m: m.position[0] == 1.0, timeout=5)
