"""A chain of Dynamixel X-series servos speaking protocol 2.0 on a pseudo-terminal: the test,
bench and demo peer of the WidowX driver.

`DynamixelPeer` opens a pty pair and keeps the master end; `peer.port` is the slave path
(/dev/pts/N) that dynamixel-sdk's PortHandler opens like a U2D2. A thread reads the byte
stream, parses instruction packets (header FF FF FD 00, byte stuffing, CRC-16) and answers
PING, READ, WRITE, SYNC READ, SYNC WRITE and REBOOT with status packets, one per servo,
in id order, as a real chain does. Each servo holds its control table (XM430/XM540/XL430
addresses, little endian); EEPROM fields (< 64) refuse writes while torque is on.

Motion is advanced lazily on every packet (and while idle) from the monotonic clock: a
torqued servo in a position mode moves its present position toward the goal at
min(profile velocity, velocity limit, the model's no-load speed); in PWM or current mode its
speed is proportional to the goal, clamped at the position limits. `raise_error(id, bits)`
sets a hardware error (overload, ...) the way a servo does: torque off, the alert bit 0x80 in
every status packet, goals ignored until REBOOT.

`close()` drops the link (the port vanishes for the driver); `mute(True)` keeps the port but
stops answering (a servo chain losing power).

Protocol 2.0 reference: ROBOTIS e-manual, "DYNAMIXEL Protocol 2.0".
"""
from __future__ import annotations

import math
import os
import select
import threading
import time
import tty
from collections import deque
from dataclasses import dataclass, field

from robot_rl.closing import Closing

HEADER = bytes([0xFF, 0xFF, 0xFD, 0x00])
BROADCAST_ID = 0xFE

# Instructions
PING, READ, WRITE, REG_WRITE, ACTION, FACTORY_RESET, REBOOT = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x08
STATUS, SYNC_READ, SYNC_WRITE = 0x55, 0x82, 0x83

# Status packet error field: bit 7 = hardware alert, low bits = the instruction's result.
ALERT = 0x80
ERR_RESULT_FAIL, ERR_INSTRUCTION, ERR_CRC, ERR_DATA_RANGE, ERR_DATA_LENGTH, ERR_DATA_LIMIT, ERR_ACCESS = 1, 2, 3, 4, 5, 6, 7

# Hardware error status bits (address 70)
HW_INPUT_VOLTAGE, HW_OVERHEATING, HW_ENCODER, HW_ELECTRICAL_SHOCK, HW_OVERLOAD = 0x01, 0x04, 0x08, 0x10, 0x20

# X-series control table (XM430-W350 / XM540-W270 / XL430-W250 share these addresses; XL430
# has Present Load at 126 instead of Present Current and no current control).
ADDR_MODEL_NUMBER = 0        # 2
ADDR_FIRMWARE = 6            # 1
ADDR_ID = 7                  # 1
ADDR_BAUD = 8                # 1
ADDR_RETURN_DELAY = 9        # 1
ADDR_DRIVE_MODE = 10         # 1
ADDR_OPERATING_MODE = 11     # 1
ADDR_MOVING_THRESHOLD = 24   # 4
ADDR_PWM_LIMIT = 36          # 2
ADDR_CURRENT_LIMIT = 38      # 2 (XM only)
ADDR_VELOCITY_LIMIT = 44     # 4
ADDR_MAX_POSITION = 48       # 4
ADDR_MIN_POSITION = 52       # 4
ADDR_TORQUE_ENABLE = 64      # 1
ADDR_LED = 65                # 1
ADDR_STATUS_RETURN = 68      # 1
ADDR_HARDWARE_ERROR = 70     # 1
ADDR_GOAL_PWM = 100          # 2
ADDR_GOAL_CURRENT = 102      # 2 (XM only)
ADDR_GOAL_VELOCITY = 104     # 4
ADDR_PROFILE_ACCELERATION = 108  # 4
ADDR_PROFILE_VELOCITY = 112  # 4
ADDR_GOAL_POSITION = 116     # 4
ADDR_MOVING = 122            # 1
ADDR_PRESENT_PWM = 124       # 2
ADDR_PRESENT_CURRENT = 126   # 2 (XL430: Present Load, 0.1 %)
ADDR_PRESENT_VELOCITY = 128  # 4
ADDR_PRESENT_POSITION = 132  # 4
ADDR_PRESENT_VOLTAGE = 144   # 2
ADDR_PRESENT_TEMPERATURE = 146  # 1
EEPROM_END = 64
TABLE_SIZE = 700             # up to the indirect data area
# Model number/info, firmware, registered instruction, hardware error, realtime tick, present values.
READ_ONLY = frozenset([0, 1, 2, 3, 4, 5, 6, 69, 70, 120, 121, *range(122, 168)])

MODE_CURRENT, MODE_VELOCITY, MODE_POSITION, MODE_EXTENDED_POSITION, MODE_CURRENT_POSITION, MODE_PWM = 0, 1, 3, 4, 5, 16

RPM_PER_UNIT = 0.229
TICKS_PER_REV = 4096


@dataclass(frozen=True)
class ServoModel:
    name: str
    number: int
    no_load_rpm: float        # at 12 V
    current_limit: int        # default Current Limit (units of 2.69 mA); 0 = no current sensing
    modes: tuple[int, ...]    # operating modes the model accepts


MODELS = {
    1020: ServoModel("XM430-W350", 1020, 46.0, 1193, (0, 1, 3, 4, 5, 16)),
    1030: ServoModel("XM430-W210", 1030, 77.0, 1193, (0, 1, 3, 4, 5, 16)),
    1120: ServoModel("XM540-W270", 1120, 30.0, 2047, (0, 1, 3, 4, 5, 16)),
    1060: ServoModel("XL430-W250", 1060, 57.0, 0, (1, 3, 4, 16)),
}
MODEL_BY_NAME = {m.name: m.number for m in MODELS.values()}

# The WidowX 250 6-DoF (wx250s) chain as Trossen ships it: ids 1..9, shoulder and elbow doubled
# by a "shadow" servo (ids 3, 5) in reverse drive mode.
WX250S_CHAIN = {1: "XM430-W350", 2: "XM430-W350", 3: "XM430-W350", 4: "XM430-W350", 5: "XM430-W350",
                6: "XM430-W350", 7: "XM430-W350", 8: "XL430-W250", 9: "XL430-W250"}
WX250S_DRIVE_MODES = {3: 1, 5: 1}   # bit 0: reverse direction (the shadows mirror their joint)


# ------------------------------------------------------------------------ packet codec
def _make_crc_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _make_crc_table()


def crc16(data: bytes) -> int:
    """CRC-16/BUYPASS (polynomial 0x8005, init 0, no reflection): the Dynamixel 2.0 CRC."""
    crc = 0
    for b in data:
        crc = ((crc << 8) ^ _CRC_TABLE[((crc >> 8) ^ b) & 0xFF]) & 0xFFFF
    return crc


def stuff(payload: bytes) -> bytes:
    """Byte stuffing: FF FF FD inside instruction+parameters becomes FF FF FD FD."""
    out = bytearray()
    for b in payload:
        out.append(b)
        if b == 0xFD and len(out) >= 3 and out[-3] == 0xFF and out[-2] == 0xFF:
            out.append(0xFD)
    return bytes(out)


def unstuff(payload: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(payload):
        out.append(payload[i])
        if payload[i] == 0xFD and len(out) >= 3 and out[-3] == 0xFF and out[-2] == 0xFF \
                and i + 1 < len(payload) and payload[i + 1] == 0xFD:
            i += 1  # drop the stuffed FD
        i += 1
    return bytes(out)


def encode_packet(dxl_id: int, instruction: int, params: bytes = b"") -> bytes:
    """Header, id, length, instruction, stuffed parameters, CRC (little endian)."""
    body = stuff(bytes([instruction]) + bytes(params))
    length = len(body) + 2
    packet = HEADER + bytes([dxl_id, length & 0xFF, length >> 8]) + body
    crc = crc16(packet)
    return packet + bytes([crc & 0xFF, crc >> 8])


def encode_status(dxl_id: int, error: int, params: bytes = b"") -> bytes:
    return encode_packet(dxl_id, STATUS, bytes([error]) + bytes(params))


@dataclass
class Packet:
    dxl_id: int
    instruction: int
    params: bytes       # unstuffed; for a status packet params[0] is the error field
    raw: bytes          # as on the wire

    @property
    def error(self) -> int:
        if self.instruction != STATUS:
            raise ValueError("only a status packet has an error field")
        return self.params[0]


class PacketParser:
    """Splits a byte stream into packets; skips noise and drops packets with a bad CRC."""

    def __init__(self):
        self.buf = bytearray()
        self.crc_errors = 0

    def feed(self, data: bytes) -> list[Packet]:
        self.buf += data
        packets = []
        while True:
            start = self.buf.find(HEADER)
            if start < 0:
                del self.buf[:max(0, len(self.buf) - 3)]  # keep a possible partial header
                return packets
            del self.buf[:start]
            if len(self.buf) < 7:
                return packets
            length = self.buf[5] | self.buf[6] << 8
            if length < 3 or length > 1024:
                del self.buf[:1]
                continue
            total = 7 + length
            if len(self.buf) < total:
                return packets
            raw = bytes(self.buf[:total])
            del self.buf[:total]
            if crc16(raw[:-2]) != (raw[-2] | raw[-1] << 8):
                self.crc_errors += 1
                continue
            body = unstuff(raw[7:-2])
            packets.append(Packet(raw[4], body[0], body[1:], raw))


def decode_packet(raw: bytes) -> Packet:
    """One complete packet; raises ValueError for a bad header, length or CRC."""
    parser = PacketParser()
    packets = parser.feed(raw)
    if parser.crc_errors:
        raise ValueError(f"CRC mismatch in {raw.hex(' ')}")
    if len(packets) != 1 or parser.buf:
        raise ValueError(f"not exactly one packet: {raw.hex(' ')}")
    return packets[0]


# ------------------------------------------------------------------------ one servo
def _u(value: int, size: int) -> bytes:
    return int(value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


@dataclass
class Servo:
    dxl_id: int
    model: ServoModel
    table: bytearray = field(default_factory=lambda: bytearray(TABLE_SIZE))
    position: float = 2048.0      # ticks (float while moving)
    velocity: float = 0.0         # ticks/s
    reboots: int = 0

    def __post_init__(self):
        t = self.table
        t[ADDR_MODEL_NUMBER:ADDR_MODEL_NUMBER + 2] = _u(self.model.number, 2)
        t[ADDR_FIRMWARE] = 45
        t[ADDR_ID] = self.dxl_id
        t[ADDR_BAUD] = 3  # 1 Mbps
        t[ADDR_RETURN_DELAY] = 0
        t[ADDR_OPERATING_MODE] = MODE_POSITION
        t[ADDR_MOVING_THRESHOLD:ADDR_MOVING_THRESHOLD + 4] = _u(10, 4)
        t[ADDR_PWM_LIMIT:ADDR_PWM_LIMIT + 2] = _u(885, 2)
        if self.model.current_limit:
            t[ADDR_CURRENT_LIMIT:ADDR_CURRENT_LIMIT + 2] = _u(self.model.current_limit, 2)
        t[ADDR_VELOCITY_LIMIT:ADDR_VELOCITY_LIMIT + 4] = _u(int(self.model.no_load_rpm / RPM_PER_UNIT), 4)
        t[ADDR_MAX_POSITION:ADDR_MAX_POSITION + 4] = _u(4095, 4)
        t[ADDR_MIN_POSITION:ADDR_MIN_POSITION + 4] = _u(0, 4)
        self._ram_defaults()

    def _ram_defaults(self) -> None:
        """What a power-up or REBOOT leaves in RAM: torque off, goals = defaults."""
        t = self.table
        t[EEPROM_END:TABLE_SIZE] = bytes(TABLE_SIZE - EEPROM_END)
        t[ADDR_STATUS_RETURN] = 2
        t[ADDR_GOAL_PWM:ADDR_GOAL_PWM + 2] = t[ADDR_PWM_LIMIT:ADDR_PWM_LIMIT + 2]
        t[ADDR_GOAL_CURRENT:ADDR_GOAL_CURRENT + 2] = t[ADDR_CURRENT_LIMIT:ADDR_CURRENT_LIMIT + 2]
        t[ADDR_GOAL_POSITION:ADDR_GOAL_POSITION + 4] = _u(int(round(self.position)), 4)
        t[ADDR_PRESENT_VOLTAGE:ADDR_PRESENT_VOLTAGE + 2] = _u(120, 2)
        t[ADDR_PRESENT_TEMPERATURE] = 32
        self.velocity = 0.0
        self._refresh_present()

    def get(self, addr: int, size: int, signed: bool = False) -> int:
        return int.from_bytes(self.table[addr:addr + size], "little", signed=signed)

    def set(self, addr: int, size: int, value: int) -> None:
        self.table[addr:addr + size] = _u(value, size)

    @property
    def torque(self) -> bool:
        return bool(self.table[ADDR_TORQUE_ENABLE])

    @property
    def hardware_error(self) -> int:
        return self.table[ADDR_HARDWARE_ERROR]

    def write(self, addr: int, data: bytes) -> int:
        """Applies a WRITE; returns the status error field (0 = done)."""
        end = addr + len(data)
        if end > TABLE_SIZE or not data:
            return ERR_DATA_LENGTH
        if addr < EEPROM_END and self.torque:
            return ERR_ACCESS  # EEPROM is locked while torque is on
        if any(a in READ_ONLY for a in range(addr, end)):
            return ERR_ACCESS
        if addr <= ADDR_OPERATING_MODE < end and data[ADDR_OPERATING_MODE - addr] not in self.model.modes:
            return ERR_DATA_RANGE
        if addr <= ADDR_TORQUE_ENABLE < end and data[ADDR_TORQUE_ENABLE - addr] and self.hardware_error:
            return ERR_RESULT_FAIL  # torque stays off until REBOOT clears the error
        self.table[addr:end] = data
        return 0

    def reboot(self) -> None:
        self.table[ADDR_HARDWARE_ERROR] = 0
        self.reboots += 1
        self._ram_defaults()

    def raise_error(self, bits: int) -> None:
        self.table[ADDR_HARDWARE_ERROR] |= bits
        self.table[ADDR_TORQUE_ENABLE] = 0
        self.velocity = 0.0
        self._refresh_present()

    def advance(self, dt: float) -> None:
        if dt <= 0:
            return
        mode = self.table[ADDR_OPERATING_MODE]
        lo, hi = self.get(ADDR_MIN_POSITION, 4, True), self.get(ADDR_MAX_POSITION, 4, True)
        max_speed = min(self.get(ADDR_VELOCITY_LIMIT, 4), self.model.no_load_rpm / RPM_PER_UNIT)
        max_speed *= RPM_PER_UNIT / 60.0 * TICKS_PER_REV   # ticks/s
        start = self.position
        if not self.torque or self.hardware_error:
            self.velocity = 0.0
        elif mode in (MODE_POSITION, MODE_EXTENDED_POSITION, MODE_CURRENT_POSITION):
            goal = float(self.get(ADDR_GOAL_POSITION, 4, True))
            if mode == MODE_POSITION:
                goal = min(max(goal, lo), hi)
            profile = self.get(ADDR_PROFILE_VELOCITY, 4) * RPM_PER_UNIT / 60.0 * TICKS_PER_REV
            speed = min(max_speed, profile) if profile > 0 else max_speed
            if mode == MODE_CURRENT_POSITION and self.model.current_limit:
                # weaker goal current, slower motion (current-based position: the current caps torque)
                limit = max(1, self.get(ADDR_CURRENT_LIMIT, 2))
                speed *= min(1.0, abs(self.get(ADDR_GOAL_CURRENT, 2, True)) / limit) ** 0.5
            step = goal - self.position
            self.position += max(-speed * dt, min(speed * dt, step))
        elif mode == MODE_PWM:
            pwm_limit = max(1, self.get(ADDR_PWM_LIMIT, 2))
            self.position += max_speed * self.get(ADDR_GOAL_PWM, 2, True) / pwm_limit * dt
            self.position = min(max(self.position, lo), hi)
        elif mode == MODE_CURRENT and self.model.current_limit:
            limit = max(1, self.get(ADDR_CURRENT_LIMIT, 2))
            self.position += max_speed * self.get(ADDR_GOAL_CURRENT, 2, True) / limit * dt
            self.position = min(max(self.position, lo), hi)
        elif mode == MODE_VELOCITY:
            goal_v = self.get(ADDR_GOAL_VELOCITY, 4, True) * RPM_PER_UNIT / 60.0 * TICKS_PER_REV
            self.position += max(-max_speed, min(max_speed, goal_v)) * dt
        self.velocity = (self.position - start) / dt
        self._refresh_present()

    def _refresh_present(self) -> None:
        t = self.table
        rpm_units = int(round(self.velocity / TICKS_PER_REV * 60.0 / RPM_PER_UNIT))
        self.set(ADDR_PRESENT_POSITION, 4, int(round(self.position)))
        self.set(ADDR_PRESENT_VELOCITY, 4, rpm_units)
        # current (or load) grows with speed and with the distance to the goal: enough to test units
        effort = 0
        if self.torque:
            error = self.get(ADDR_GOAL_POSITION, 4, True) - self.position
            effort = int(max(-400, min(400, 0.5 * error + 0.2 * rpm_units)))
        self.set(ADDR_PRESENT_CURRENT, 2, effort)
        moving = abs(self.get(ADDR_GOAL_POSITION, 4, True) - self.position) > self.get(ADDR_MOVING_THRESHOLD, 4) \
            if self.torque else abs(rpm_units) > 0
        t[ADDR_MOVING] = int(moving)


# ------------------------------------------------------------------------ the chain on a pty
class DynamixelPeer(Closing):
    """Servos on one bus behind a pty. Use as a context manager or call close()."""

    def __init__(self, servos: dict[int, str] | None = None, positions: dict[int, int] | None = None,
                 tick: float = 0.002, drive_modes: dict[int, int] | None = None):
        """servos: id -> model name (default: the wx250s chain, whose shadows 3 and 5 run in
        reverse drive mode); positions: id -> start ticks; drive_modes: id -> Drive Mode (10)."""
        chain = WX250S_CHAIN if servos is None else servos
        if drive_modes is None:
            drive_modes = WX250S_DRIVE_MODES if servos is None else {}
        self.servos: dict[int, Servo] = {}
        for dxl_id, model in sorted(chain.items()):
            number = MODEL_BY_NAME[model] if isinstance(model, str) else int(model)
            servo = Servo(dxl_id, MODELS[number])
            servo.table[ADDR_DRIVE_MODE] = drive_modes.get(dxl_id, 0)
            if positions and dxl_id in positions:
                servo.position = float(positions[dxl_id])
                servo._ram_defaults()
            self.servos[dxl_id] = servo
        self.tick = tick
        self.lock = threading.Lock()
        self.received: deque[Packet] = deque(maxlen=10_000)   # instruction packets, for tests
        self.sent: deque[bytes] = deque(maxlen=10_000)        # status packets as written
        self.parser = PacketParser()
        self.muted = False
        self._last = time.monotonic()
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)  # kept open: the driver's close/re-open never hangs the pty up
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="dynamixel-peer", daemon=True)
        self._thread.start()

    # -- what tests and benches control ---------------------------------------------------
    def raise_error(self, dxl_id: int, bits: int = HW_OVERLOAD) -> None:
        with self.lock:
            self._advance()
            self.servos[dxl_id].raise_error(bits)

    def mute(self, muted: bool = True) -> None:
        self.muted = muted

    def position(self, dxl_id: int) -> int:
        with self.lock:
            self._advance()
            return self.servos[dxl_id].get(ADDR_PRESENT_POSITION, 4, True)

    def read(self, dxl_id: int, addr: int, size: int, signed: bool = False) -> int:
        with self.lock:
            self._advance()
            return self.servos[dxl_id].get(addr, size, signed)

    def instructions(self, instruction: int | None = None) -> list[Packet]:
        with self.lock:
            return [p for p in self.received if instruction is None or p.instruction == instruction]

    # -- the wire ---------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], self.tick)
            except (OSError, ValueError):
                return
            with self.lock:
                self._advance()
                if not ready:
                    continue
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    return
                replies = b"".join(self._handle(p) for p in self.parser.feed(data))
            if replies and not self.muted:
                try:
                    os.write(self._master, replies)
                except OSError:
                    return

    def _advance(self) -> None:
        now = time.monotonic()
        dt, self._last = now - self._last, now
        for servo in self.servos.values():
            servo.advance(dt)

    def _status(self, servo: Servo, error: int, params: bytes = b"") -> bytes:
        packet = encode_status(servo.dxl_id, error | (ALERT if servo.hardware_error else 0), params)
        self.sent.append(packet)
        return packet

    def _handle(self, p: Packet) -> bytes:
        self.received.append(p)
        if self.muted:
            return b""
        targets = list(self.servos.values()) if p.dxl_id == BROADCAST_ID else \
            [self.servos[p.dxl_id]] if p.dxl_id in self.servos else []
        if p.instruction == PING:
            return b"".join(self._status(s, 0, _u(s.model.number, 2) + bytes([s.table[ADDR_FIRMWARE]]))
                            for s in targets)
        if p.instruction == READ and len(targets) == 1 and p.dxl_id != BROADCAST_ID:
            if len(p.params) != 4:
                return self._status(targets[0], ERR_DATA_LENGTH)
            addr, size = p.params[0] | p.params[1] << 8, p.params[2] | p.params[3] << 8
            if addr + size > TABLE_SIZE:
                return self._status(targets[0], ERR_ACCESS)
            return self._status(targets[0], 0, bytes(targets[0].table[addr:addr + size]))
        if p.instruction == WRITE and targets:
            if len(p.params) < 3:
                return b"" if p.dxl_id == BROADCAST_ID else self._status(targets[0], ERR_DATA_LENGTH)
            addr = p.params[0] | p.params[1] << 8
            errors = [(s, s.write(addr, p.params[2:])) for s in targets]
            return b"" if p.dxl_id == BROADCAST_ID else self._status(*errors[0])
        if p.instruction == REBOOT and targets:
            for s in targets:
                s.reboot()
            return b"" if p.dxl_id == BROADCAST_ID else self._status(targets[0], 0)
        if p.instruction == SYNC_READ and p.dxl_id == BROADCAST_ID and len(p.params) >= 4:
            addr, size = p.params[0] | p.params[1] << 8, p.params[2] | p.params[3] << 8
            out = b""
            for dxl_id in p.params[4:]:  # answers in the order asked, as the chain does
                s = self.servos.get(dxl_id)
                if s is not None and addr + size <= TABLE_SIZE:
                    out += self._status(s, 0, bytes(s.table[addr:addr + size]))
            return out
        if p.instruction == SYNC_WRITE and p.dxl_id == BROADCAST_ID and len(p.params) >= 4:
            addr, size = p.params[0] | p.params[1] << 8, p.params[2] | p.params[3] << 8
            data = p.params[4:]
            for i in range(0, len(data) - size, size + 1):
                s = self.servos.get(data[i])
                if s is not None:
                    s.write(addr, data[i + 1:i + 1 + size])  # errors stay silent: no status packets
            return b""
        if p.dxl_id in self.servos:
            return self._status(self.servos[p.dxl_id], ERR_INSTRUCTION)
        return b""

    def close(self) -> None:
        """The link is gone: the thread stops and both pty ends close (the port vanishes)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(timeout=2.0)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


def ticks(rad: float) -> int:
    """Radians -> ticks centred at 2048 (peer-side helper for tests)."""
    return int(round(2048 + rad * TICKS_PER_REV / (2 * math.pi)))


def main() -> int:
    """`python -m robot_rl.drivers.peers.dynamixel_peer`: a wx250s chain in this process; prints the port
    path, serves until stdin closes or SIGINT/SIGTERM (a second process for benches and demos)."""
    import signal
    import sys

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    with DynamixelPeer() as peer:
        print(peer.port, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
