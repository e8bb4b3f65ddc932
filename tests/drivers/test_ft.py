"""Force/torque: the shared processing, the FT-300 serial stream over a pty null-modem, and the
ATI Net F/T RDT protocol over UDP on loopback, each against a peer speaking the wire format."""
from __future__ import annotations

import json
import math
import struct
import time

import numpy as np
import pytest
from geometry_msgs.msg import WrenchStamped
from std_msgs.msg import String

from robot_rl.drivers.ft import WrenchProcessor
from robot_rl.drivers.ft_node import FtSensorNode
from robot_rl.drivers.ft_sensors import (
    FT300_START,
    FT300_START_REPLY,
    Ft300Parser,
    crc16_modbus,
    ft300_frame,
    parse_rdt_record,
    parse_rdt_request,
    rdt_request,
)
from robot_rl.drivers.peers.ft_sims import Ft300Sim, NetFtSim
from robot_rl.drivers.peers.null_modem import NullModem
from tests.conftest import call_trigger

FAST = dict(timeout=0.2, reconnect_backoff=0.05, reconnect_backoff_max=0.2)


def as_array(msg: WrenchStamped) -> np.ndarray:
    f, t = msg.wrench.force, msg.wrench.torque
    return np.array([f.x, f.y, f.z, t.x, t.y, t.z])


def test_ft300_frame_format_crc_and_resync():
    assert crc16_modbus(b"123456789") == 0x4B37  # the CRC-16/MODBUS check value
    # The start request exactly as Robotiq's manual and driver write it (function 16), and its reply.
    assert FT300_START == bytes.fromhex("09 10 01 9A 00 01 02 02 00 CD CA")
    assert FT300_START_REPLY == bytes.fromhex("0910019a0001") + struct.pack("<H", crc16_modbus(bytes.fromhex("0910019a0001")))
    frame = ft300_frame([1.5, -2.25, 100.0, 0.125, -0.5, 3.0])
    assert len(frame) == 16 and frame[:2] == b"\x20\x4e"
    assert struct.unpack_from("<6h", frame, 2) == (150, -225, 10000, 125, -500, 3000)  # N*100, Nm*1000
    p = Ft300Parser()
    corrupt = bytearray(frame)
    corrupt[5] ^= 0xFF
    out = p.feed(b"\x09\x06\x20" + frame[:7]) + p.feed(frame[7:] + bytes(corrupt) + frame)
    assert len(out) == 2 and p.bad_frames >= 1
    np.testing.assert_allclose(out[0], [1.5, -2.25, 100.0, 0.125, -0.5, 3.0])


def test_ft300_peer_starts_only_on_the_documented_request():
    """The peer answers the function-16 start with its reply and streams; the function-6 write
    the manual does not document (what this driver used to send) gets "illegal function"."""
    import serial

    with NullModem() as cable, Ft300Sim(cable.b, rate_hz=100.0) as sensor:
        host = serial.Serial(cable.a, 19200, timeout=0.05)
        try:
            host.write(bytes.fromhex("09 06 01 9A 02 00 A8 31"))
            reply = _read_exactly(host, 5)
            assert reply == bytes.fromhex("0986") + b"\x01" + struct.pack("<H", crc16_modbus(bytes.fromhex("098601")))
            time.sleep(0.1)
            assert sensor.refused == 1 and sensor.starts == 0 and not sensor.streaming.is_set()
            assert host.read(64) == b""                                  # no stream
            host.write(FT300_START)
            assert _read_exactly(host, len(FT300_START_REPLY)) == FT300_START_REPLY
            assert sensor.starts == 1 and len(Ft300Parser().feed(_read_exactly(host, 48))) >= 2
        finally:
            host.close()


def _read_exactly(port, n: int, timeout: float = 2.0) -> bytes:
    data, deadline = b"", time.monotonic() + timeout
    while len(data) < n and time.monotonic() < deadline:
        data += port.read(n - len(data))
    return data


def test_rdt_request_and_record():
    assert rdt_request(2, 0) == bytes.fromhex("1234000200000000")
    assert parse_rdt_request(bytes.fromhex("1234000000000010")) == (0, 16)
    with pytest.raises(ValueError):
        parse_rdt_request(bytes.fromhex("4321000200000000"))
    record = struct.pack(">III6i", 7, 9, 0, 1_000_000, -2_500_000, 0, 500_000, 0, -1)
    seq, ft_seq, status, w = parse_rdt_record(record, 1e6, 1e6)
    assert (seq, ft_seq, status) == (7, 9, 0)
    np.testing.assert_allclose(w, [1.0, -2.5, 0.0, 0.5, 0.0, -1e-6])
    _, _, _, w = parse_rdt_record(record, 1e6 / 4, 1e6 / 8)  # a sensor calibrated differently
    np.testing.assert_allclose(w, [4.0, -10.0, 0.0, 4.0, 0.0, -8e-6])


def test_processor_zero_filter_limits_and_bad_input():
    p = WrenchProcessor(cutoff_hz=5.0, force_limit=20.0, torque_limit=2.0)
    with pytest.raises(RuntimeError):
        p.zero()
    for i in range(10):
        p.process([1, 2, 3, 0.1, 0.2, 0.3], i * 0.01)
    np.testing.assert_allclose(p.zero(), [1, 2, 3, 0.1, 0.2, 0.3])
    # a 10 N step through a 5 Hz first-order filter at 100 Hz: 1 - (rc/(rc+dt))^n
    rc, dt = 1 / (2 * math.pi * 5.0), 0.01
    p.process([1, 2, 3, 0.1, 0.2, 0.3], 0.1)
    outs = [p.process([11, 2, 3, 0.1, 0.2, 0.3], 0.1 + (n + 1) * dt)[0][0] for n in range(20)]
    expected = [10 * (1 - (rc / (rc + dt)) ** (n + 1)) for n in range(20)]
    np.testing.assert_allclose(outs, expected, rtol=1e-9)
    # limits: on the zeroed, unfiltered wrench; one event going over, one coming back
    _, ev = p.process([1, 2, 3 + 25.0, 0.1, 0.2, 0.3], 1.0)
    assert ev is not None and ev.exceeded and ev.force == pytest.approx(25.0)
    assert p.process([1, 2, 3 + 30.0, 0.1, 0.2, 0.3], 1.01)[1] is None  # still over: no repeat
    _, ev = p.process([1, 2, 3, 0.1, 0.2, 0.3], 1.02)
    assert ev is not None and not ev.exceeded
    _, ev = p.process([1, 2, 3, 0.1, 0.2, 0.3 + 2.5], 1.03)
    assert ev.exceeded and ev.torque == pytest.approx(2.5)
    for bad in ([float("nan")] * 6, [1, 2, 3], [0, 0, 0, 0, 0, float("inf")]):
        with pytest.raises(ValueError):
            p.process(bad, 2.0)
    with pytest.raises(ValueError):
        WrenchProcessor(cutoff_hz=-1)


def test_ft300_node_scaling_zeroing_limits_and_lost_sensor(ros):
    with NullModem() as cable, Ft300Sim(cable.b, rate_hz=100.0) as sensor:
        sensor.wrench = np.array([1.5, -2.0, 10.0, 0.1, -0.2, 0.05])
        wrenches = ros.inbox(WrenchStamped, "/franka/wrench")
        events = ros.inbox(String, "/franka/wrench/safety_event")
        ros.add(FtSensorNode(namespace="franka", **ros.kwargs(sensor="ft300", port=cable.a, frame_id="ft300_sensor",
                                                             force_limit=30.0, **FAST)))
        w = wrenches.wait_for(lambda m: as_array(m)[2] != 0.0)
        np.testing.assert_allclose(as_array(w), sensor.wrench, atol=1e-9)
        assert w.header.frame_id == "ft300_sensor" and abs(w.header.stamp.sec - time.time()) < 2

        reply = call_trigger(ros.probe, "/franka/wrench/zero", timeout=5.0)
        assert reply.success and "10.0" in reply.message
        wrenches.wait_for(lambda m: np.allclose(as_array(m), 0.0, atol=1e-9))  # zeroed from now on

        sensor.wrench = sensor.wrench + [0.0, 0.0, 35.0, 0, 0, 0]  # 35 N more than at zeroing
        ev = json.loads(events.wait_for(lambda m: json.loads(m.data).get("kind") == "limit").data)
        assert ev["exceeded"] and ev["force"] == pytest.approx(35.0) and ev["level"] == "error"

        cable.unplug()  # the cable is pulled and the sensor restarts: reported, nothing published
        sensor.power_cycle()
        events.wait_for(lambda m: "sensor lost" in m.data)
        n = len(wrenches)
        time.sleep(0.15)
        assert len(wrenches) <= n + 1
        starts = sensor.starts
        cable.plug()  # back: the driver's next reconnect sends the start request again
        wrenches.wait_for(start=n + 2, timeout=5)
        assert sensor.starts > starts


def test_netft_node_counts_filter_and_recovery(ros):
    cpf, cpt = 1_000_000.0, 2_000_000.0
    sensor = NetFtSim(rate_hz=500.0, counts_per_force=cpf, counts_per_torque=cpt)
    try:
        sensor.wrench = np.array([3.0, 0.0, -4.0, 0.0, 0.5, 0.0])
        wrenches = ros.inbox(WrenchStamped, "/wrench")
        events = ros.inbox(String, "/wrench/safety_event")
        node = ros.add(FtSensorNode(**ros.kwargs(sensor="netft", host="127.0.0.1", udp_port=sensor.address[1],
                                                 counts_per_force=cpf, counts_per_torque=cpt,
                                                 cutoff_hz=10.0, torque_limit=1.0, **FAST)))
        w = wrenches.wait_for(lambda m: abs(as_array(m)[0] - 3.0) < 1e-6, timeout=5)  # filter settled
        np.testing.assert_allclose(as_array(w), sensor.wrench, atol=1e-6)
        # the filter: a step in Fz shows up gradually, not at once
        n = len(wrenches)
        sensor.wrench = np.array([3.0, 0.0, 6.0, 0.0, 0.5, 0.0])
        rising = wrenches.wait_for(lambda m: as_array(m)[2] > -4.0, start=n)
        assert as_array(rising)[2] < 6.0 - 1.0
        wrenches.wait_for(lambda m: as_array(m)[2] > 5.99, start=n)
        sensor.wrench = np.array([3.0, 0.0, 6.0, 0.0, 1.5, 0.0])
        ev = json.loads(events.wait_for(lambda m: json.loads(m.data).get("kind") == "limit").data)
        assert ev["exceeded"] and ev["torque"] == pytest.approx(1.5)

        sensor.close()  # the sensor goes away
        events.wait_for(lambda m: "sensor lost" in m.data)
        sensor = NetFtSim(port=sensor.address[1], counts_per_force=cpf, counts_per_torque=cpt)  # and is back
        sensor.wrench = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
        wrenches.wait_for(lambda m: abs(as_array(m)[1] - 1.0) < 1e-3, start=len(wrenches), timeout=5)
        assert node.stream.lost_count == 1
    finally:
        sensor.close()


def test_unknown_sensor_is_a_clear_error(ros):
    with pytest.raises(ValueError, match="'ft300' or 'netft'"):
        FtSensorNode(**ros.kwargs(sensor="ati_serial"))
