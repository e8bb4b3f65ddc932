"""Dynamixel protocol 2.0 and the bus layer, against the servo-chain peer on a pseudo-terminal.

Byte vectors are the examples of the ROBOTIS e-manual ("DYNAMIXEL Protocol 2.0": PING,
READ, WRITE, SYNC READ, SYNC WRITE, REBOOT), checked three ways: our codec encodes them,
the peer decodes them, and dynamixel-sdk puts exactly these bytes on the wire.
"""
from __future__ import annotations

import math
import random
import time

import numpy as np
import pytest

from robot_rl.drivers.dynamixel_bus import (MA_PER_UNIT, RAD_S_PER_UNIT, BusConfig, DynamixelBus, _port_handler,
                                   decode_hardware_error, rad_to_ticks, ticks_to_rad)
from robot_rl.drivers.errors import DeviceLostError, DeviceNotFoundError
from robot_rl.drivers.peers import dynamixel_peer as dxl
from robot_rl.drivers.peers.dynamixel_peer import DynamixelPeer, decode_packet, encode_packet, encode_status

H = bytes.fromhex

# e-manual examples: (instruction packet, [status packets])
PING_1 = H("FF FF FD 00 01 03 00 01 19 4E")
PING_1_STATUS = H("FF FF FD 00 01 07 00 55 00 06 04 26 65 5D")          # model 1030, firmware 38
READ_1_POS = H("FF FF FD 00 01 07 00 02 84 00 04 00 1D 15")             # address 132, 4 bytes
READ_1_POS_STATUS = H("FF FF FD 00 01 08 00 55 00 A6 00 00 00 8C C0")   # 166
WRITE_1_GOAL_512 = H("FF FF FD 00 01 09 00 03 74 00 00 02 00 00 CA 89")  # address 116 = 512
EMPTY_STATUS_1 = H("FF FF FD 00 01 04 00 55 00 A1 0C")
SYNC_READ_1_2 = H("FF FF FD 00 FE 09 00 82 84 00 04 00 01 02 CE FA")     # 132, 4 bytes, ids 1 2
SYNC_READ_STATUS_2 = H("FF FF FD 00 02 08 00 55 00 1F 08 00 00 BA BE")  # id 2: 2079
SYNC_WRITE_150_170 = H("FF FF FD 00 FE 11 00 83 74 00 04 00 01 96 00 00 00 02 AA 00 00 00 82 87")
REBOOT_1 = H("FF FF FD 00 01 03 00 08 2F 4E")


def test_codec_matches_the_emanual_examples():
    assert encode_packet(1, dxl.PING) == PING_1
    assert encode_status(1, 0, (1030).to_bytes(2, "little") + bytes([38])) == PING_1_STATUS
    assert encode_packet(1, dxl.READ, H("84 00 04 00")) == READ_1_POS
    assert encode_status(1, 0, (166).to_bytes(4, "little")) == READ_1_POS_STATUS
    assert encode_packet(1, dxl.WRITE, H("74 00 00 02 00 00")) == WRITE_1_GOAL_512
    assert encode_status(1, 0) == EMPTY_STATUS_1
    assert encode_packet(0xFE, dxl.SYNC_READ, H("84 00 04 00 01 02")) == SYNC_READ_1_2
    assert encode_status(2, 0, (2079).to_bytes(4, "little")) == SYNC_READ_STATUS_2
    assert encode_packet(0xFE, dxl.SYNC_WRITE, H("74 00 04 00 01 96 00 00 00 02 AA 00 00 00")) == SYNC_WRITE_150_170
    assert encode_packet(1, dxl.REBOOT) == REBOOT_1
    # and back: instruction/status layout
    p = decode_packet(SYNC_WRITE_150_170)
    assert (p.dxl_id, p.instruction, p.params[:4]) == (0xFE, dxl.SYNC_WRITE, H("74 00 04 00"))
    s = decode_packet(PING_1_STATUS)
    assert (s.dxl_id, s.instruction, s.error, s.params[1:]) == (1, dxl.STATUS, 0, H("06 04 26"))


def test_crc_is_the_sdks_crc_and_corruption_is_refused():
    from dynamixel_sdk.protocol2_packet_handler import Protocol2PacketHandler

    sdk = Protocol2PacketHandler()
    rng = random.Random(0)
    for n in (1, 7, 64, 300):
        data = bytes(rng.randrange(256) for _ in range(n))
        assert dxl.crc16(data) == sdk.updateCRC(0, list(data), n)
    bad = bytearray(WRITE_1_GOAL_512)
    bad[10] ^= 0x01
    with pytest.raises(ValueError, match="CRC"):
        decode_packet(bytes(bad))
    with pytest.raises(ValueError):
        decode_packet(PING_1[:-1])


def test_byte_stuffing_adds_fd_after_a_header_pattern_and_is_removed():
    params = H("74 00 FF FF FD 00")       # a goal whose bytes look like a header
    packet = encode_packet(1, dxl.WRITE, params)
    assert H("FF FF FD FD") in packet[7:]
    assert packet[5] | packet[6] << 8 == 1 + len(params) + 1 + 2   # LEN counts the stuffed byte
    assert decode_packet(packet).params == params
    # the SDK stuffs the same way
    from dynamixel_sdk.protocol2_packet_handler import Protocol2PacketHandler

    sdk_packet = [0xFF, 0xFF, 0xFD, 0x00, 1, 9, 0, dxl.WRITE, *params, 0, 0]
    stuffed = Protocol2PacketHandler().addStuffing(sdk_packet)
    assert bytes(stuffed[:-2]) == packet[:-2]


def test_sdk_packets_on_the_wire_are_the_emanual_bytes():
    from dynamixel_sdk import COMM_SUCCESS, GroupSyncWrite, PacketHandler, PortHandler

    with DynamixelPeer({1: "XM430-W210", 2: "XM430-W210"}, positions={1: 166, 2: 2079}) as peer:
        peer.servos[1].table[dxl.ADDR_FIRMWARE] = 38   # the e-manual's servo
        port = PortHandler(peer.port)
        assert port.setBaudRate(1_000_000)
        ph = PacketHandler(2.0)
        try:
            model, result, error = ph.ping(port, 1)
            assert (model, result, error) == (1030, COMM_SUCCESS, 0)
            value, result, _ = ph.read4ByteTxRx(port, 1, 132)
            assert (value, result) == (166, COMM_SUCCESS)
            assert ph.write4ByteTxRx(port, 1, 116, 512) == (COMM_SUCCESS, 0)
            group = GroupSyncWrite(port, ph, 116, 4)
            group.addParam(1, [150, 0, 0, 0])
            group.addParam(2, [170, 0, 0, 0])
            assert group.txPacket() == COMM_SUCCESS
            assert ph.reboot(port, 1) == (COMM_SUCCESS, 0)
            wire = [p.raw for p in peer.instructions()]
            assert wire == [PING_1, READ_1_POS, WRITE_1_GOAL_512, SYNC_WRITE_150_170, REBOOT_1]
            assert peer.sent[0] == PING_1_STATUS
            assert peer.sent[1] == READ_1_POS_STATUS
            assert peer.sent[2] == EMPTY_STATUS_1
            assert peer.servos[1].reboots == 1 and peer.read(2, 116, 4) == 170
        finally:
            port.closePort()


def test_units_and_error_decoding():
    assert ticks_to_rad(2048) == 0.0
    assert ticks_to_rad(3072) == pytest.approx(math.pi / 2)
    assert ticks_to_rad(0) == pytest.approx(-math.pi)
    assert rad_to_ticks([0.0, math.pi / 2, -math.pi / 4]).tolist() == [2048, 3072, 1536]
    assert RAD_S_PER_UNIT == pytest.approx(0.229 * 2 * math.pi / 60)
    assert MA_PER_UNIT == 2.69
    with pytest.raises(ValueError, match="finite"):
        rad_to_ticks([0.0, float("nan")])
    # the status-packet timeout follows this bus's latency timer (the SDK's is a module global)
    fast, slow = _port_handler("/dev/null", 1.0), _port_handler("/dev/null", 16.0)
    for port in (fast, slow):
        port.tx_time_per_byte = 0.01   # ms per byte at 1 Mbps
        port.setPacketTimeout(100)
    assert (fast.packet_timeout, slow.packet_timeout) == (pytest.approx(5.0), pytest.approx(35.0))
    assert decode_hardware_error(0x20) == ["overload"]
    assert decode_hardware_error(0x24) == ["overheating", "overload"]
    assert decode_hardware_error(0) == []
    with pytest.raises(ValueError):
        BusConfig(joint_ids=(1, 1)).validate()
    with pytest.raises(ValueError):
        BusConfig(arm_mode=16).validate()
    with pytest.raises(ValueError):
        BusConfig(shadow_ids=(3,), shadow_of=(42,)).validate()
    with pytest.raises(ValueError):
        BusConfig(arm_current_limit_ma=float("nan")).validate()


@pytest.fixture
def peer():
    p = DynamixelPeer()   # the wx250s chain: ids 1..9, XL430 at 8 (wrist rotate) and 9 (gripper)
    try:
        yield p
    finally:
        p.close()


# The SDK waits 2 x latency timer + 2 ms for a status packet; on a shared 2-core host the
# in-process peer thread is sometimes not scheduled that fast, so the tests give it 50 ms.
LATENCY_MS = 50.0


@pytest.fixture
def bus(peer):
    b = DynamixelBus(BusConfig(port=peer.port, latency_timer_ms=LATENCY_MS))
    b.open()
    try:
        yield b
    finally:
        b.close()


def test_open_sets_operating_modes_limits_and_torque(peer, bus):
    for dxl_id in (1, 2, 3, 4, 5, 6, 7):   # XM430: current-based position, current limit and goal current
        assert peer.read(dxl_id, dxl.ADDR_OPERATING_MODE, 1) == dxl.MODE_CURRENT_POSITION
        assert peer.read(dxl_id, dxl.ADDR_CURRENT_LIMIT, 2) == round(1500 / 2.69)
        assert peer.read(dxl_id, dxl.ADDR_GOAL_CURRENT, 2) == round(1500 / 2.69)
        assert peer.read(dxl_id, dxl.ADDR_PROFILE_VELOCITY, 4) == round(2.0 / RAD_S_PER_UNIT)
        assert peer.read(dxl_id, dxl.ADDR_TORQUE_ENABLE, 1) == 1
    assert peer.read(8, dxl.ADDR_OPERATING_MODE, 1) == dxl.MODE_POSITION   # XL430 has no current mode
    assert peer.read(9, dxl.ADDR_OPERATING_MODE, 1) == dxl.MODE_PWM
    assert peer.read(9, dxl.ADDR_PWM_LIMIT, 2) == 350 and peer.read(9, dxl.ADDR_GOAL_PWM, 2) == 0
    assert {i: s.model for i, s in bus.servos.items()}[8] == "XL430-W250"
    # a second open (reconnect) finds torque on in the right mode and leaves it on: the arm never drops
    writes_before = len(peer.instructions(dxl.WRITE))
    bus.open()
    torque_writes = [p for p in peer.instructions(dxl.WRITE)[writes_before:]
                     if p.params[:2] == bytes([dxl.ADDR_TORQUE_ENABLE, 0])]
    assert torque_writes == []
    assert all(peer.read(i, dxl.ADDR_TORQUE_ENABLE, 1) == 1 for i in range(1, 10))


def test_eeprom_is_locked_while_torque_is_on(peer, bus):
    with pytest.raises(RuntimeError, match="refused"):
        bus._write(1, dxl.ADDR_OPERATING_MODE, 1, dxl.MODE_POSITION, "operating mode")
    assert peer.read(1, dxl.ADDR_OPERATING_MODE, 1) == dxl.MODE_CURRENT_POSITION


def test_sync_write_then_sync_read_round_trip(peer, bus):
    goal = np.array([0.3, -0.2, 0.4, -0.5, 0.25, 0.6])
    n_reads = len(peer.instructions(dxl.SYNC_READ))
    bus.write_goal_positions(goal)
    # the joints and the shadows (3 follows 2, 5 follows 4) hold the goal ticks
    ticks = dict(zip((1, 2, 4, 6, 7, 8), rad_to_ticks(goal).tolist()))
    ticks.update({3: ticks[2], 5: ticks[4]})
    goals = lambda: {i: peer.read(i, dxl.ADDR_GOAL_POSITION, 4, signed=True) for i in ticks}  # noqa: E731
    deadline = time.monotonic() + 2.0
    while goals() != ticks and time.monotonic() < deadline:   # a sync write has no status packet to wait for
        time.sleep(0.005)
    assert goals() == ticks
    deadline = time.monotonic() + 3.0
    while True:
        st = bus.read_state()
        if np.allclose(st.position[:6], goal, atol=2e-3) or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    np.testing.assert_allclose(st.position[:6], goal, atol=2e-3)   # 1 tick = 1.5e-3 rad
    assert st.ids == (1, 2, 4, 6, 7, 8, 9) and st.alerts == ()
    assert np.all(np.isfinite(st.current[:5])) and np.isnan(st.current[5])   # XL430: load instead
    assert np.isfinite(st.load[5]) and np.isnan(st.load[0])
    # each read_state is ONE sync read of the block 126..135 for every servo
    reads = peer.instructions(dxl.SYNC_READ)[n_reads:]
    assert len(reads) >= 1
    assert reads[0].params[:4] == bytes([126, 0, 10, 0]) and list(reads[0].params[4:]) == [1, 2, 4, 6, 7, 8, 3, 5, 9]


def test_velocity_units_from_a_moving_servo(peer, bus):
    bus.write_goal_positions(np.full(6, 1.0))
    time.sleep(0.15)
    st = bus.read_state()
    # profile velocity caps the servos at 2 rad/s (rounded to 0.229 rpm units)
    moving = st.velocity[:5]
    assert np.all(moving > 1.5) and np.all(moving < 2.1), moving


def test_hardware_error_is_seen_in_the_sync_read_and_cleared_by_reboot(peer, bus):
    peer.raise_error(4, dxl.HW_OVERLOAD | dxl.HW_OVERHEATING)
    st = bus.read_state()
    assert st.alerts == (4,)
    assert bus.hardware_errors() == {4: 0x24}
    assert peer.read(4, dxl.ADDR_TORQUE_ENABLE, 1) == 0
    # goals are ignored until REBOOT; torque cannot come back on before
    before = peer.position(4)
    bus.write_goal_positions(np.full(6, 0.5))
    time.sleep(0.1)
    assert peer.position(4) == before
    with pytest.raises(RuntimeError):
        bus._write(4, dxl.ADDR_TORQUE_ENABLE, 1, 1, "torque enable")
    for dxl_id in bus.ids_following(4):
        bus.recover(dxl_id)
    assert bus.hardware_errors() == {} and peer.servos[4].reboots == 1
    assert peer.read(4, dxl.ADDR_TORQUE_ENABLE, 1) == 1
    bus.write_goal_positions(np.full(6, 0.5))
    time.sleep(0.4)
    assert abs(bus.read_state().position[2] - 0.5) < 2e-3
    assert bus.read_state().alerts == ()


def test_hardware_error_at_start_is_rebooted_or_refused(peer):
    peer.raise_error(7, dxl.HW_ELECTRICAL_SHOCK)
    strict = DynamixelBus(BusConfig(port=peer.port, reboot_on_error=False, latency_timer_ms=LATENCY_MS))
    with pytest.raises(DeviceNotFoundError, match="servo 7 starts with hardware error 0x10 \\(electrical shock\\)"):
        strict.open()
    assert not strict.is_open
    b = DynamixelBus(BusConfig(port=peer.port, latency_timer_ms=LATENCY_MS))
    try:
        b.open()
        assert any("servo 7" in text and "rebooting" in text for _, text in b.events)
        assert peer.servos[7].reboots == 1 and b.hardware_errors() == {}
        assert peer.read(7, dxl.ADDR_TORQUE_ENABLE, 1) == 1
    finally:
        b.close()


def test_missing_port_or_servo_is_a_clear_error():
    with pytest.raises(DeviceNotFoundError, match="cannot open /dev/ttyDXL_missing"):
        DynamixelBus(BusConfig(port="/dev/ttyDXL_missing")).open()
    with DynamixelPeer({i: "XM430-W350" for i in (1, 2, 3, 4, 6, 7, 8, 9)}) as peer:   # id 5 unplugged
        with pytest.raises(DeviceNotFoundError, match=r"servos \[5\] do not answer"):
            DynamixelBus(BusConfig(port=peer.port, latency_timer_ms=LATENCY_MS)).open()


def test_a_shadow_that_would_fight_its_joint_is_refused():
    with DynamixelPeer(dxl.WX250S_CHAIN, drive_modes={3: 1}) as peer:   # elbow shadow 5 not reversed
        with pytest.raises(DeviceNotFoundError, match="servo 5 is set up as the shadow of servo 4 but turns the same way"):
            DynamixelBus(BusConfig(port=peer.port, latency_timer_ms=LATENCY_MS)).open()
        assert all(peer.read(i, dxl.ADDR_TORQUE_ENABLE, 1) == 0 for i in range(1, 10))   # nothing enabled


def test_lost_device_raises_device_lost(peer, bus):
    bus.read_state()
    peer.mute()                       # the chain loses power: no status packets
    t0 = time.monotonic()
    with pytest.raises(DeviceLostError, match="no status packet"):
        bus.read_state()
    assert time.monotonic() - t0 < 0.5
    peer.mute(False)
    bus.read_state()
    peer.close()                      # the adapter is unplugged: the port vanishes
    with pytest.raises(DeviceLostError):
        for _ in range(3):
            bus.read_state()
            bus.write_goal_positions(np.zeros(6))
    bus.close()
    with pytest.raises(DeviceNotFoundError):
        bus.open()
