"""Robotiq 2F-85 / 2F-140 over Modbus (RTU on RS-485/USB, or TCP through a gateway). No ROS here.

Register map (Robotiq 2F-85 manual, section 4): registers hold two bytes, high byte first.
  command, from 1000 (write, FC16):  1000 = [ACTION REQUEST, 0]   ACTION: bit0 rACT, bit3 rGTO,
                                      1001 = [0, rPR]                      bit4 rATR, bit5 rARD
                                      1002 = [rSP, rFR]
  status, from 2000 (read, FC04):    2000 = [GRIPPER STATUS, 0]  STATUS: bit0 gACT, bit3 gGTO,
                                      2001 = [FAULT, gPR]                  bits4-5 gSTA, bits6-7 gOBJ
                                      2002 = [gPO, gCU]
Unit id 9; RTU at 115200 8N1. Positions are 0 (open) .. 255 (closed) counts; current is
gCU x 10 mA. Activation: rACT=0 (clears faults), then rACT=1, then wait for gSTA = 3.

The opening in metres (`OpeningCalibration`): the manual maps rPR/gPO 0..255 roughly linearly
onto the 85 mm stroke, open to closed, but a real 2F-85 does not reach either end of the count
range: fully open it stops near gPO 13, closed on nothing (fingertips touching) near gPO 230;
each gripper differs by a few counts. So the map is linear between two calibrated endpoints,
    opening_m = stroke_m * (closed_counts - gPO) / (closed_counts - open_counts), clipped to [0, stroke_m]
    closure   = 1 - opening_m / stroke_m                 (0 open .. 1 closed, gripper/state)
with open_counts = 13, closed_counts = 230 and stroke_m = 0.085 by default (docs/hardware.md
says how to read them off a gripper). Commands stay on the full count range (0 -> rPR 0, 1 ->
rPR 255), so "close" always squeezes until contact whatever the calibration.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from robot_rl.drivers.errors import DeviceLostError

COMMAND_REGISTER = 1000
STATUS_REGISTER = 2000
DEVICE_ID = 9
BAUDRATE = 115200

ACT, GTO, ATR, ARD = 0x01, 0x08, 0x10, 0x20
GSTA_RESET, GSTA_ACTIVATING, GSTA_READY = 0, 1, 3
GOBJ_MOVING, GOBJ_STOPPED_OPENING, GOBJ_STOPPED_CLOSING, GOBJ_AT_POSITION = 0, 1, 2, 3

FAULTS = {
    0x00: "no fault",
    0x05: "action delayed: activation must complete first",
    0x07: "activation bit must be set before an action",
    0x08: "maximum operating temperature exceeded",
    0x09: "no communication for at least 1 s",
    0x0A: "under minimum operating voltage",
    0x0B: "automatic release in progress",
    0x0C: "internal fault",
    0x0D: "activation fault",
    0x0E: "overcurrent",
    0x0F: "automatic release completed",
}
MINOR_FAULTS = (0x05, 0x07)  # cured by (re)activating
STROKE_2F85 = 0.085          # m, fully open


@dataclass(frozen=True)
class OpeningCalibration:
    """gPO counts <-> finger opening in metres: linear between the calibrated end stops."""
    open_counts: int = 13            # gPO of the fully open gripper
    closed_counts: int = 230         # gPO closed on nothing (fingertips touching)
    stroke_m: float = STROKE_2F85    # opening when fully open (2F-140: 0.140)

    def __post_init__(self) -> None:
        if not 0 <= self.open_counts < self.closed_counts <= 255:
            raise ValueError(f"gripper calibration needs 0 <= open_counts < closed_counts <= 255, "
                             f"got open_counts {self.open_counts}, closed_counts {self.closed_counts}")
        if not 0.0 < self.stroke_m <= 0.2:  # also false for NaN
            raise ValueError(f"stroke_m must be in (0, 0.2] m, got {self.stroke_m}")

    def opening_m(self, gpo: int) -> float:
        frac = (self.closed_counts - gpo) / (self.closed_counts - self.open_counts)
        return self.stroke_m * min(max(frac, 0.0), 1.0)

    def closure(self, gpo: int) -> float:
        """0 fully open .. 1 fully closed: the gripper/state position contract."""
        return 1.0 - self.opening_m(gpo) / self.stroke_m


def to_byte(value01: float, name: str) -> int:
    """0..1 -> 0..255, refusing what is not a finite number in range."""
    v = float(value01)
    if not (0.0 <= v <= 1.0):  # also false for NaN
        raise ValueError(f"{name} must be a finite number in [0, 1], got {value01!r}")
    return int(round(v * 255))


def encode_command(act: bool, go: bool, position: int, speed: int, force: int) -> list[int]:
    """The three command registers for rACT, rGTO, rPR, rSP, rFR (bytes 0..255)."""
    for name, b in (("position", position), ("speed", speed), ("force", force)):
        if not 0 <= b <= 255:
            raise ValueError(f"{name} byte out of range: {b}")
    action = (ACT if act else 0) | (GTO if go else 0)
    return [action << 8, position & 0xFF, (speed << 8) | force]


def decode_command(regs: list[int]) -> dict[str, int]:
    action = regs[0] >> 8
    return {"rACT": action & ACT, "rGTO": int(bool(action & GTO)), "rATR": int(bool(action & ATR)),
            "rPR": regs[1] & 0xFF, "rSP": regs[2] >> 8, "rFR": regs[2] & 0xFF}


@dataclass(frozen=True)
class GripperStatus:
    gACT: int
    gGTO: int
    gSTA: int
    gOBJ: int
    gFLT: int
    gPR: int
    gPO: int
    gCU: int

    @classmethod
    def from_registers(cls, regs: list[int]) -> "GripperStatus":
        if len(regs) < 3:
            raise ValueError(f"status needs 3 registers, got {regs}")
        status, fault, gpr = regs[0] >> 8, regs[1] >> 8, regs[1] & 0xFF
        return cls(gACT=status & 1, gGTO=status >> 3 & 1, gSTA=status >> 4 & 3, gOBJ=status >> 6 & 3,
                   gFLT=fault & 0x0F, gPR=gpr, gPO=regs[2] >> 8, gCU=regs[2] & 0xFF)

    def to_registers(self) -> list[int]:
        status = self.gACT | self.gGTO << 3 | self.gSTA << 4 | self.gOBJ << 6
        return [status << 8, (self.gFLT << 8) | self.gPR, (self.gPO << 8) | self.gCU]

    @property
    def ready(self) -> bool:
        return self.gACT == 1 and self.gSTA == GSTA_READY

    @property
    def object_detected(self) -> bool:
        return self.gOBJ in (GOBJ_STOPPED_OPENING, GOBJ_STOPPED_CLOSING)

    @property
    def current_a(self) -> float:
        return self.gCU * 0.01

    @property
    def fault_text(self) -> str:
        return FAULTS.get(self.gFLT, f"fault 0x{self.gFLT:02X}")


def make_client(transport: str, port: str = "/dev/ttyUSB0", host: str = "", tcp_port: int = 502,
                baudrate: int = BAUDRATE, timeout: float = 0.2):
    """A pymodbus sync client; it retries once inside, our driver owns reconnecting."""
    from pymodbus.client import ModbusSerialClient, ModbusTcpClient

    if transport == "tcp":
        return ModbusTcpClient(host, port=tcp_port, timeout=timeout, retries=1)
    if transport == "rtu":
        return ModbusSerialClient(port, baudrate=baudrate, bytesize=8, parity="N", stopbits=1,
                                  timeout=timeout, retries=1)
    raise ValueError(f"transport must be 'rtu' or 'tcp', got {transport!r}")


class RobotiqGripper:
    """Speaks the register map over a pymodbus sync client. Raises DeviceLostError on any
    transport failure (timeout, closed port, Modbus exception) so the caller can reconnect."""

    def __init__(self, client, device_id: int = DEVICE_ID):
        self.client = client
        self.device_id = device_id

    def connect(self) -> None:
        try:
            ok = self.client.connect()
        except Exception as e:
            raise DeviceLostError(f"cannot connect: {e}") from e
        if not ok:
            raise DeviceLostError("cannot connect (port or host unreachable)")

    def close(self) -> None:
        self.client.close()

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            rr = fn(*args, device_id=self.device_id, **kwargs)
        except Exception as e:  # ModbusIOException on timeout, ConnectionException, OSError
            raise DeviceLostError(f"{what}: {e}") from e
        if rr.isError():
            raise DeviceLostError(f"{what}: device answered with {rr}")
        return rr

    def read_status(self) -> GripperStatus:
        rr = self._call("status read", self.client.read_input_registers, STATUS_REGISTER, count=3)
        return GripperStatus.from_registers(list(rr.registers))

    def write(self, act: bool, go: bool, position: int = 0, speed: int = 255, force: int = 128) -> None:
        self._call("command write", self.client.write_registers, COMMAND_REGISTER,
                   encode_command(act, go, position, speed, force))

    def activate(self, timeout: float = 5.0, poll: float = 0.02) -> GripperStatus:
        """Reset (clears faults) then activate; returns once gSTA says ready."""
        self.write(act=False, go=False)
        self.write(act=True, go=False)
        deadline = time.monotonic() + timeout
        while True:
            status = self.read_status()
            if status.ready:
                return status
            if time.monotonic() > deadline:
                raise DeviceLostError(f"activation did not complete in {timeout} s ({status.fault_text})")
            time.sleep(poll)

    def move(self, position: int, speed: int, force: int) -> None:
        self.write(act=True, go=True, position=position, speed=speed, force=force)


@dataclass
class _Target:
    position: int
    since: float
    delivered: bool = False
    attempts: int = 0
    late_reported: bool = False


class GripperSupervisor:
    """Keeps a gripper connected, activated and at the last commanded position. Never raises.

    Call step() at the poll rate: it (re)connects with backoff, (re)activates after a reset or
    power cycle, and re-sends the target until the status echoes it (gPR == rPR, gGTO = 1). A
    command is therefore retried until delivered or superseded by a newer one, never dropped;
    one not delivered within `command_timeout` is reported (and still retried). While the link
    is down nothing is written; the gripper holds its last position on its own (its safe state).
    on_event(level, text) receives 'info' / 'warn' / 'error' reports.
    """

    def __init__(self, gripper: RobotiqGripper, on_event, speed: float = 1.0, force: float = 0.5,
                 command_timeout: float = 1.0, backoff: float = 0.2, backoff_max: float = 5.0,
                 auto_reset_faults: bool = False):
        self.gripper, self.on_event = gripper, on_event
        self.speed, self.force = to_byte(speed, "speed"), to_byte(force, "force")
        self.command_timeout, self.backoff0, self.backoff_max = command_timeout, backoff, backoff_max
        self.auto_reset_faults = auto_reset_faults
        self.connected = False
        self.backoff = backoff
        self.next_try = 0.0
        self.target: _Target | None = None
        self.last_status: GripperStatus | None = None
        self._reported_fault = 0
        self.lost_count = 0
        self._last_unreachable_report = -1e9

    def set_target(self, position01: float, now: float) -> None:
        """Raises ValueError for NaN/inf/out of [0, 1]: a bad command never reaches the gripper."""
        counts = to_byte(position01, "gripper command")
        if self.target is not None and self.target.position == counts:
            return  # already there or on its way; the status check keeps re-sending if not
        self.target = _Target(counts, now)  # a newer command supersedes an undelivered one

    @property
    def pending(self) -> bool:
        return self.target is not None and not self.target.delivered

    def step(self, now: float) -> GripperStatus | None:
        status = self._step(now)
        target = self.target
        if target is not None and not target.delivered and not target.late_reported \
                and now - target.since > self.command_timeout:
            target.late_reported = True
            self.on_event("error", f"gripper command {target.position / 255:.2f} not delivered after "
                                   f"{now - target.since:.1f} s; still retrying")
        return status

    def _step(self, now: float) -> GripperStatus | None:
        if not self.connected:
            if now < self.next_try:
                return None
            try:
                self.gripper.connect()
            except DeviceLostError as e:
                self._lost(now, e)
                return None
            self.connected = True
            self.on_event("info", "gripper link up")
        try:
            status = self.gripper.read_status()
            self.last_status = status
            self._handle(status, now)
        except DeviceLostError as e:
            self._lost(now, e)
            return None
        self.backoff = self.backoff0
        return status

    def _lost(self, now: float, error: Exception) -> None:
        if self.connected:
            self.lost_count += 1
            self.on_event("error", f"gripper link lost: {error}; holding, reconnecting")
        elif now - self._last_unreachable_report > 5.0:  # once in a while, not at every retry
            self._last_unreachable_report = now
            self.on_event("warn", f"gripper not reachable: {error}; retrying every <= {self.backoff_max:.1f} s")
        self.connected = False
        try:
            self.gripper.close()
        except Exception:
            pass
        self.next_try = now + self.backoff
        self.backoff = min(self.backoff * 2.0, self.backoff_max)

    def _handle(self, status: GripperStatus, now: float) -> None:
        fault = status.gFLT
        if fault and fault not in MINOR_FAULTS:
            if fault != self._reported_fault:
                self.on_event("error", f"gripper fault 0x{fault:02X}: {status.fault_text}")
                self._reported_fault = fault
            if self.auto_reset_faults:
                self._start_activation("resetting after fault")
            return
        if self._reported_fault and not fault:
            self.on_event("info", "gripper fault cleared")
        self._reported_fault = 0
        if not status.ready:
            if status.gSTA != GSTA_ACTIVATING or fault in MINOR_FAULTS:
                self._start_activation("activating")
            return
        target = self.target
        if target is None:
            return
        if status.gPR != target.position or not status.gGTO:
            self.gripper.move(target.position, self.speed, self.force)
            target.attempts += 1
            target.delivered = False
        elif not target.delivered:
            target.delivered = True
            if target.attempts > 1:
                self.on_event("info", f"gripper command delivered after {target.attempts} tries")

    def _start_activation(self, why: str) -> None:
        self.on_event("info", f"gripper {why}")
        self.gripper.write(act=False, go=False)  # rACT 0 -> 1 clears faults, as the manual asks
        self.gripper.write(act=True, go=False)
