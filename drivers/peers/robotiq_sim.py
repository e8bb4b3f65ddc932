"""A simulated Robotiq 2F-85 behind a real pymodbus server: the test and bench peer.

It holds the gripper's register map (commands from 1000, status from 2000, unit id 9) and
moves its finger toward rPR at a speed set by rSP, within its mechanical end stops (a real
2F-85 fully open reads about gPO 13, closed on nothing about 230), stops on an object placed at
`object_at` counts (gOBJ = 2), raises the manual's faults (0x07 action before activation,
0x05 action during activation, or any injected one), and clears them on rACT = 0.
The state advances lazily on every Modbus access, so no simulation thread is needed.
"""
from __future__ import annotations

import threading
from collections import deque
import time

from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData, SimDevice

from robot_rl.drivers.peers.modbus_server import ModbusServerThread
from robot_rl.drivers.robotiq import (
    COMMAND_REGISTER,
    DEVICE_ID,
    GOBJ_AT_POSITION,
    GOBJ_MOVING,
    GOBJ_STOPPED_CLOSING,
    GSTA_ACTIVATING,
    GSTA_READY,
    GSTA_RESET,
    STATUS_REGISTER,
    GripperStatus,
    decode_command,
)


class Robotiq2F85Sim:
    def __init__(self, activation_time: float = 0.1, min_speed: float = 200.0, max_speed: float = 2000.0,
                 open_stop: int = 13, closed_stop: int = 230):
        """Speeds in counts/s at rSP = 0 and 255 (the real one: ~60..440; faster keeps tests short);
        open_stop / closed_stop: the gPO where the fingers stop mechanically."""
        self.activation_time, self.min_speed, self.max_speed = activation_time, min_speed, max_speed
        self.open_stop, self.closed_stop = open_stop, closed_stop
        self.lock = threading.Lock()
        self.cmd = {"rACT": 0, "rGTO": 0, "rATR": 0, "rPR": 0, "rSP": 0, "rFR": 0}
        self.gACT = self.gSTA = self.gGTO = self.fault = 0
        self.gOBJ = GOBJ_MOVING
        self.position = float(open_stop)  # counts, float while moving; powered up open
        self.object_at: float | None = None  # closing stops here when set
        self.activation_done_at = 0.0
        self.last = time.monotonic()
        self.writes = 0
        self.reads = 0
        self.accesses: deque[tuple[float, str]] = deque(maxlen=100_000)  # (time.monotonic(), 'read' | 'write'), for the bench

    # -- what the test controls --------------------------------------------------------
    def inject_fault(self, code: int) -> None:
        with self.lock:
            self.fault = code

    def power_cycle(self) -> None:
        """The gripper lost power: back to reset, unactivated, faults cleared."""
        with self.lock:
            self.cmd.update(rACT=0, rGTO=0)
            self.gACT = self.gSTA = self.gGTO = self.fault = 0
            self.gOBJ = GOBJ_MOVING

    def status(self) -> GripperStatus:
        with self.lock:
            self._advance(time.monotonic())
            return self._status()

    # -- the simulation ---------------------------------------------------------------
    def _status(self) -> GripperStatus:
        return GripperStatus(gACT=self.gACT, gGTO=self.gGTO, gSTA=self.gSTA, gOBJ=self.gOBJ,
                             gFLT=self.fault, gPR=self.cmd["rPR"], gPO=int(round(self.position)),
                             gCU=self._current())

    def _current(self) -> int:
        if self.gOBJ == GOBJ_STOPPED_CLOSING:
            return int(self.cmd["rFR"] * 60 / 255)  # up to 0.6 A while squeezing
        return 5 if self.gOBJ == GOBJ_MOVING and self.gGTO else 0

    def _advance(self, now: float) -> None:
        dt, self.last = now - self.last, now
        if self.gSTA == GSTA_ACTIVATING and now >= self.activation_done_at:
            self.gSTA = GSTA_READY
        if self.fault or self.gSTA != GSTA_READY or not self.gGTO:
            return
        target = min(max(float(self.cmd["rPR"]), self.open_stop), self.closed_stop)
        speed = self.min_speed + self.cmd["rSP"] / 255 * (self.max_speed - self.min_speed)
        step = speed * dt
        if self.object_at is not None and target > self.object_at >= self.position - 1e-9:
            stop = self.object_at  # closing onto the object
        else:
            stop = None
        goal = stop if stop is not None else target
        if abs(goal - self.position) <= step:
            self.position = goal
            self.gOBJ = GOBJ_STOPPED_CLOSING if stop is not None else GOBJ_AT_POSITION
        else:
            self.position += step if goal > self.position else -step
            self.gOBJ = GOBJ_MOVING

    def _on_command(self, cmd: dict[str, int], now: float) -> None:
        if not cmd["rACT"]:  # reset: clears faults, drops activation
            self.gACT = self.gSTA = self.gGTO = self.fault = 0
        elif self.gSTA == GSTA_RESET:
            self.gACT, self.gSTA = 1, GSTA_ACTIVATING
            self.activation_done_at = now + self.activation_time
        if cmd["rGTO"]:
            if not cmd["rACT"]:
                self.fault = 0x07
            elif self.gSTA == GSTA_ACTIVATING:
                self.fault = 0x05
            elif cmd["rPR"] != self.cmd["rPR"] or not self.gGTO:
                self.gOBJ = GOBJ_MOVING  # a new motion starts
        self.gGTO = cmd["rGTO"] if cmd["rACT"] else 0
        self.cmd = cmd

    async def action(self, func_code, start_address, address, count, registers, set_values):
        """pymodbus calls this on every access: apply writes, refresh the status registers."""
        with self.lock:
            now = time.monotonic()
            self._advance(now)
            if set_values is not None:
                if not (COMMAND_REGISTER <= address and address + count <= COMMAND_REGISTER + 3):
                    return ExcCodes.ILLEGAL_ADDRESS  # status registers are read-only
                regs = registers[COMMAND_REGISTER - start_address: COMMAND_REGISTER - start_address + 3]
                regs[address - COMMAND_REGISTER: address - COMMAND_REGISTER + count] = list(set_values)
                self.writes += 1
                self.accesses.append((now, "write"))
                self._on_command(decode_command(regs), now)
                self._advance(now)
            else:
                self.reads += 1
                self.accesses.append((now, "read"))
            base = STATUS_REGISTER - start_address
            registers[base: base + 3] = self._status().to_registers()
        return None

    def sim_device(self, device_id: int = DEVICE_ID) -> SimDevice:
        return SimDevice(
            id=device_id,
            simdata=[SimData(COMMAND_REGISTER, count=3, values=0, datatype=DataType.REGISTERS),
                     SimData(STATUS_REGISTER, count=3, values=0, datatype=DataType.REGISTERS)],
            action=self.action,
        )

    def serve(self, *, tcp: tuple[str, int] | None = None, serial_port: str = "") -> ModbusServerThread:
        return ModbusServerThread(self.sim_device(), tcp=tcp, serial_port=serial_port)
