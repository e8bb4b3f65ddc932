"""Wire protocols of the F/T sensors we read, and their reader threads. No ROS here.

Robotiq FT-300 (RS-485 / USB, 19200 8N1): a Modbus RTU "write multiple registers" (function
16) of 0x0200 to register 410 at unit id 9 starts the data stream, as Robotiq's manual and
driver (rq_sensor_com.c) send it: 09 10 01 9A 00 01 02 02 00 CD CA; the sensor answers with
the function-16 reply 09 10 01 9A 00 01 + CRC. Function 6 (write single register) is not
documented for the FT-300, so it is not used. Then the sensor sends 16-byte frames
    0x20 0x4E | Fx Fy Fz Mx My Mz (int16 little-endian) | CRC16-Modbus (little-endian)
with forces in N x 100 and moments in Nm x 1000, at 100 Hz. About 50 bytes of 0xFF stop it.

ATI Net F/T (UDP port 49152, RDT): the request is 8 bytes, big-endian
    uint16 header 0x1234 | uint16 command (2 = start high-speed streaming, 0 = stop) | uint32 sample count (0 = endless)
and each response record is 36 bytes, big-endian
    uint32 rdt_sequence | uint32 ft_sequence | uint32 status | int32 Fx Fy Fz Tx Ty Tz
in counts; force = counts / counts_per_force, torque = counts / counts_per_torque (defaults 1e6).
"""
from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Callable

import numpy as np

# -- Robotiq FT-300 ------------------------------------------------------------------------
FT300_BAUDRATE = 19200
FT300_DEVICE_ID = 9
FT300_STREAM_REGISTER = 410
FT300_STREAM_VALUE = 0x0200
FT300_SYNC = b"\x20\x4e"
FT300_FRAME = 16
FT300_STOP = b"\xff" * 50
FT300_FORCE_SCALE, FT300_TORQUE_SCALE = 100.0, 1000.0


def crc16_modbus(data: bytes) -> int:
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(frame: bytes) -> bytes:
    return frame + struct.pack("<H", crc16_modbus(frame))


def modbus_write_registers(device_id: int, register: int, values: list[int]) -> bytes:
    """A Modbus RTU 'write multiple registers' (function 16) request, with its CRC."""
    head = struct.pack(">BBHHB", device_id, 16, register, len(values), 2 * len(values))
    return with_crc(head + struct.pack(f">{len(values)}H", *values))


def modbus_write_registers_reply(device_id: int, register: int, count: int) -> bytes:
    """The device's normal answer to a function-16 request: address and count echoed."""
    return with_crc(struct.pack(">BBHH", device_id, 16, register, count))


FT300_START = modbus_write_registers(FT300_DEVICE_ID, FT300_STREAM_REGISTER, [FT300_STREAM_VALUE])
FT300_START_REPLY = modbus_write_registers_reply(FT300_DEVICE_ID, FT300_STREAM_REGISTER, 1)


def ft300_frame(wrench) -> bytes:
    """Encodes (6,) [N, N, N, Nm, Nm, Nm] into one stream frame (the peer uses this)."""
    w = np.asarray(wrench, dtype=np.float64)
    counts = np.concatenate([w[:3] * FT300_FORCE_SCALE, w[3:] * FT300_TORQUE_SCALE])
    counts = np.clip(np.round(counts), -32768, 32767).astype(int)
    return with_crc(FT300_SYNC + struct.pack("<6h", *counts))


class Ft300Parser:
    """Finds frames in the byte stream (resyncing on 0x20 0x4E), checks CRCs, scales."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.bad_frames = 0

    def feed(self, data: bytes) -> list[np.ndarray]:
        self.buffer += data
        out = []
        while True:
            i = self.buffer.find(FT300_SYNC)
            if i < 0:
                del self.buffer[:-1]  # keep a possible first sync byte
                return out
            del self.buffer[:i]
            if len(self.buffer) < FT300_FRAME:
                return out
            frame = bytes(self.buffer[:FT300_FRAME])
            if struct.unpack_from("<H", frame, 14)[0] != crc16_modbus(frame[:14]):
                self.bad_frames += 1
                del self.buffer[:1]  # a false sync inside data: look further
                continue
            del self.buffer[:FT300_FRAME]
            v = np.array(struct.unpack_from("<6h", frame, 2), dtype=np.float64)
            v[:3] /= FT300_FORCE_SCALE
            v[3:] /= FT300_TORQUE_SCALE
            out.append(v)


# -- ATI Net F/T ---------------------------------------------------------------------------
RDT_PORT = 49152
RDT_HEADER = 0x1234
RDT_STOP, RDT_START_HIGH_SPEED = 0, 2
RDT_REQUEST = struct.Struct(">HHI")
RDT_RECORD = struct.Struct(">III6i")


def rdt_request(command: int, count: int = 0) -> bytes:
    return RDT_REQUEST.pack(RDT_HEADER, command, count)


def parse_rdt_request(data: bytes) -> tuple[int, int]:
    if len(data) != RDT_REQUEST.size:
        raise ValueError(f"RDT request is 8 bytes, got {len(data)}")
    header, command, count = RDT_REQUEST.unpack(data)
    if header != RDT_HEADER:
        raise ValueError(f"RDT header must be 0x1234, got 0x{header:04X}")
    return command, count


def parse_rdt_record(data: bytes, counts_per_force: float, counts_per_torque: float):
    """-> (rdt_sequence, ft_sequence, status, (6,) wrench in N / Nm)."""
    if len(data) < RDT_RECORD.size:
        raise ValueError(f"RDT record is 36 bytes, got {len(data)}")
    rdt_seq, ft_seq, status, *counts = RDT_RECORD.unpack_from(data)
    c = np.array(counts, dtype=np.float64)
    return rdt_seq, ft_seq, status, np.concatenate([c[:3] / counts_per_force, c[3:] / counts_per_torque])


# -- reader threads ------------------------------------------------------------------------
OnSample = Callable[[np.ndarray, float], None]  # (raw (6,), host time.time())
OnEvent = Callable[[str, str], None]  # (level, text)


class _StreamThread:
    """Connect, read until silent for `timeout`, report, reconnect with backoff; stop() ends it."""

    def __init__(self, on_sample: OnSample, on_event: OnEvent, timeout: float, backoff: float, backoff_max: float):
        self.on_sample, self.on_event = on_sample, on_event
        self.timeout, self.backoff0, self.backoff_max = timeout, backoff, backoff_max
        self.connected = False
        self.samples = 0
        self.lost_count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        backoff = self.backoff0
        while not self._stop.is_set():
            try:
                self._open()
            except OSError as e:
                self.on_event("warn", f"cannot open: {e}; next try in {backoff:.2f} s")
                self._stop.wait(backoff)
                backoff = min(backoff * 2.0, self.backoff_max)
                continue
            last = time.monotonic()
            got_any = False
            while not self._stop.is_set():
                try:
                    samples = self._read()
                except OSError as e:
                    self.on_event("error", f"read failed: {e}")
                    break
                now = time.monotonic()
                if samples:
                    if not got_any:
                        got_any, backoff = True, self.backoff0
                        self.connected = True
                        self.on_event("info", "streaming")
                    last = now
                    t = time.time()
                    for s in samples:
                        self.samples += 1
                        self.on_sample(s, t)
                elif now - last > self.timeout:
                    self.on_event("error", f"no data for {now - last:.2f} s: sensor lost; reconnecting")
                    break
            if self.connected:
                self.lost_count += 1
            self.connected = False
            self._close()
            if not self._stop.is_set():
                self._stop.wait(backoff)
                backoff = min(backoff * 2.0, self.backoff_max)
        self._close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=3.0)

    # subclasses: _open() raises OSError; _read() returns samples, [] after ~50 ms idle
    def _open(self) -> None: ...
    def _read(self) -> list[np.ndarray]: ...
    def _close(self) -> None: ...


class Ft300Stream(_StreamThread):
    def __init__(self, port: str, on_sample: OnSample, on_event: OnEvent, baudrate: int = FT300_BAUDRATE,
                 timeout: float = 0.5, backoff: float = 0.2, backoff_max: float = 5.0):
        super().__init__(on_sample, on_event, timeout, backoff, backoff_max)
        self.port, self.baudrate = port, baudrate
        self.serial = None
        self.parser = Ft300Parser()

    def _open(self) -> None:
        import serial

        try:
            self.serial = serial.Serial(self.port, self.baudrate, bytesize=8, parity="N", stopbits=1, timeout=0.05)
        except serial.SerialException as e:
            raise OSError(str(e)) from e
        self.parser = Ft300Parser()
        self.serial.write(FT300_STOP)  # a sensor still streaming from a previous run stops first
        time.sleep(0.02)
        self.serial.reset_input_buffer()
        self.serial.write(FT300_START)

    def _read(self) -> list[np.ndarray]:
        import serial

        try:
            data = self.serial.read(max(1, self.serial.in_waiting or FT300_FRAME))
        except serial.SerialException as e:
            if "returned no data" in str(e):
                return []  # a spurious wake-up (seen on ptys under load); silence is judged by timeout
            raise OSError(str(e)) from e
        return self.parser.feed(data) if data else []

    def _close(self) -> None:
        if self.serial is not None:
            try:
                self.serial.write(FT300_STOP)
                self.serial.close()
            except Exception:
                pass
            self.serial = None


class NetFtStream(_StreamThread):
    def __init__(self, host: str, on_sample: OnSample, on_event: OnEvent, port: int = RDT_PORT,
                 counts_per_force: float = 1e6, counts_per_torque: float = 1e6,
                 timeout: float = 0.5, backoff: float = 0.2, backoff_max: float = 5.0):
        super().__init__(on_sample, on_event, timeout, backoff, backoff_max)
        if counts_per_force <= 0 or counts_per_torque <= 0:
            raise ValueError("counts per force/torque must be positive")
        self.host, self.port = host, port
        self.cpf, self.cpt = counts_per_force, counts_per_torque
        self.sock: socket.socket | None = None
        self.last_rdt_sequence: int | None = None
        self.dropped = 0
        self.status = 0

    def _open(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(0.05)
        self.sock.connect((self.host, self.port))
        self.last_rdt_sequence = None
        self.sock.send(rdt_request(RDT_START_HIGH_SPEED, 0))

    def _read(self) -> list[np.ndarray]:
        try:
            data = self.sock.recv(2048)
        except socket.timeout:
            return []
        except ConnectionRefusedError:  # ICMP port unreachable: nobody listens (yet)
            time.sleep(0.05)
            return []
        out = []
        for i in range(0, len(data) - RDT_RECORD.size + 1, RDT_RECORD.size):
            rdt_seq, _, status, wrench = parse_rdt_record(data[i:], self.cpf, self.cpt)
            if self.last_rdt_sequence is not None and rdt_seq > self.last_rdt_sequence + 1:
                self.dropped += rdt_seq - self.last_rdt_sequence - 1  # UDP loses packets: count them
            self.last_rdt_sequence = rdt_seq
            if status != self.status:
                self.status = status
                self.on_event("error" if status else "info", f"Net F/T status word 0x{status:08X}")
            out.append(wrench)
        return out

    def _close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.send(rdt_request(RDT_STOP))
            except OSError:
                pass
            self.sock.close()
            self.sock = None
