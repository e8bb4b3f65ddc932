"""Simulated F/T sensors speaking their wire protocols: the test and bench peers.

- `Ft300Sim`: on a serial port (one end of a NullModem), waits for the Modbus RTU start
  request the FT-300 manual documents (function 16, register 410 <- 0x0200, unit 9, CRC
  checked), answers with the function-16 reply, then streams 16-byte frames at `rate_hz`
  until it receives 0xFF bytes. Any other well-formed request to unit 9 (e.g. the function-6
  write the manual does not document) gets the Modbus exception "illegal function" and
  starts nothing; it is counted in `refused`.
- `NetFtSim`: a UDP RDT server on loopback; a start request (0x1234, command 2) streams
  36-byte records to the sender, command 0 stops.
Both send `wrench` (set it any time), with optional Gaussian noise, from a thread with stop().
"""
from __future__ import annotations

import socket
import threading
import time

import numpy as np

from robot_rl.drivers.ft_sensors import (
    FT300_DEVICE_ID,
    FT300_START,
    FT300_START_REPLY,
    RDT_RECORD,
    RDT_START_HIGH_SPEED,
    RDT_STOP,
    ft300_frame,
    parse_rdt_request,
    with_crc,
)
from robot_rl.closing import Closing

# Modbus RTU request lengths by function code, for finding undocumented requests in the stream.
_REQUEST_LENGTHS = {3: 8, 4: 8, 6: 8}


class _Sim(Closing):
    def __init__(self, rate_hz: float, noise: float = 0.0, seed: int = 0):
        self.rate_hz, self.noise = rate_hz, noise
        self.wrench = np.zeros(6)
        self.rng = np.random.default_rng(seed)
        self.sent: list[tuple[float, np.ndarray]] = []  # (time.monotonic(), wrench) per sample sent
        self.streaming = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)

    def sample(self) -> np.ndarray:
        w = self.wrench.copy()
        if self.noise:
            w += self.rng.normal(0.0, self.noise, 6)
        return w

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3.0)


class Ft300Sim(_Sim):
    def __init__(self, port: str, rate_hz: float = 100.0, noise: float = 0.0, baudrate: int = 19200):
        import serial

        super().__init__(rate_hz, noise)
        self.serial = serial.Serial(port, baudrate, bytesize=8, parity="N", stopbits=1, timeout=0)
        self.starts = 0
        self.refused = 0     # well-formed requests the FT-300 manual does not document
        self._thread.start()

    def power_cycle(self) -> None:
        """The sensor restarts: silent until it is sent the start request again."""
        self.streaming.clear()

    def _run(self) -> None:
        pending = b""
        next_t = time.monotonic()
        while not self._stop.is_set():
            data = self.serial.read(256)
            if data:
                pending = (pending + data)[-64:]
                if b"\xff" * 8 in pending:
                    self.streaming.clear()
                    pending = pending[pending.rfind(b"\xff") + 1:]
                if FT300_START in pending:
                    self.starts += 1
                    self.serial.write(FT300_START_REPLY)
                    self.streaming.set()
                    pending = b""
                    next_t = time.monotonic()
                else:
                    pending = self._refuse_undocumented(pending)
            if self.streaming.is_set() and time.monotonic() >= next_t:
                w = self.sample()
                self.sent.append((time.monotonic(), w))
                self.serial.write(ft300_frame(w))
                next_t += 1.0 / self.rate_hz
            self._stop.wait(min(0.002, max(0.0, next_t - time.monotonic())))
        self.serial.close()

    def _refuse_undocumented(self, pending: bytes) -> bytes:
        """An exception reply (illegal function, code 1) to any complete, CRC-valid request
        to this unit other than the documented start; the request is consumed."""
        for i in range(len(pending) - 1):
            n = _REQUEST_LENGTHS.get(pending[i + 1]) if pending[i] == FT300_DEVICE_ID else None
            frame = pending[i:i + n] if n else b""
            if n and len(frame) == n and with_crc(frame[:-2]) == frame:
                self.refused += 1
                self.serial.write(with_crc(bytes([FT300_DEVICE_ID, frame[1] | 0x80, 1])))
                return pending[i + n:]
        return pending


class NetFtSim(_Sim):
    def __init__(self, host: str = "127.0.0.1", port: int = 0, rate_hz: float = 500.0, noise: float = 0.0,
                 counts_per_force: float = 1e6, counts_per_torque: float = 1e6):
        super().__init__(rate_hz, noise)
        self.cpf, self.cpt = counts_per_force, counts_per_torque
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.002)
        self.address = self.sock.getsockname()
        self.status = 0
        self.client = None
        self.rdt_sequence = 0
        self.ft_sequence = 0
        self.bad_requests = 0
        self._thread.start()

    def _run(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(64)
                command, _ = parse_rdt_request(data)
                if command == RDT_START_HIGH_SPEED:
                    self.client = addr
                    self.streaming.set()
                    next_t = time.monotonic()
                elif command == RDT_STOP:
                    self.streaming.clear()
            except socket.timeout:
                pass
            except ValueError:
                self.bad_requests += 1
            if self.streaming.is_set() and time.monotonic() >= next_t:
                w = self.sample()
                counts = np.round(np.concatenate([w[:3] * self.cpf, w[3:] * self.cpt])).astype(np.int64)
                self.rdt_sequence += 1
                self.ft_sequence += 1
                self.sent.append((time.monotonic(), w))
                try:
                    self.sock.sendto(RDT_RECORD.pack(self.rdt_sequence, self.ft_sequence, self.status, *counts), self.client)
                except OSError:
                    pass
                next_t += 1.0 / self.rate_hz
        self.sock.close()
