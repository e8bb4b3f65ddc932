"""The Dynamixel bus of a WidowX over dynamixel-sdk (protocol 2.0, U2D2 at 1 Mbps). No ROS here.

One `DynamixelBus` owns the port. `open()` pings every id (a missing one is named), reboots
servos that report a hardware error (when allowed), sets each servo's operating mode, limits
and profile, puts its goal at its present position and enables torque. A servo that already
holds torque in the wanted mode is not touched: re-opening after a lost link must not drop the
arm (EEPROM fields can only change with torque off).

Per control cycle: `read_state()` is ONE sync read of the contiguous block 126..135 (present
current, velocity, position) for every joint, and `write_goal_positions()` ONE sync write of
goal positions. The status packet of each servo also carries the hardware-alert bit; the
sync read keeps it (GroupSyncRead drops it), so a fault is seen in the next cycle at no
extra bus cost, and `hardware_errors()` reads address 70 only for servos that raised it.

Units (X series): position 4096 ticks/rev, 2048 = 0 rad; velocity 0.229 rpm; current 2.69 mA.
XL430 servos (WidowX wrist rotate, gripper) have no current sensing: their 126 is Present Load
(0.1 %), reported as `load` with current NaN; they run position mode (3) where current-based
position (5) is asked, and PWM (16) where current mode (0) is asked.

Every transport failure (port vanished, no status packet, corrupt packets) raises
DeviceLostError with the servo and the SDK's reason, so the caller can hold and reconnect.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from robot_rl.drivers.errors import DeviceLostError, DeviceNotFoundError

# Control table (X series)
ADDR_MODEL_NUMBER = 0
ADDR_DRIVE_MODE = 10
ADDR_OPERATING_MODE = 11
ADDR_PWM_LIMIT = 36
ADDR_CURRENT_LIMIT = 38
ADDR_VELOCITY_LIMIT = 44
ADDR_TORQUE_ENABLE = 64
ADDR_HARDWARE_ERROR = 70
ADDR_GOAL_PWM = 100
ADDR_GOAL_CURRENT = 102
ADDR_PROFILE_ACCELERATION = 108
ADDR_PROFILE_VELOCITY = 112
ADDR_GOAL_POSITION = 116
ADDR_PRESENT_CURRENT = 126
ADDR_PRESENT_VELOCITY = 128
ADDR_PRESENT_POSITION = 132
STATE_BLOCK = (ADDR_PRESENT_CURRENT, 10)   # 126..135: current (2), velocity (4), position (4)

MODE_CURRENT, MODE_VELOCITY, MODE_POSITION, MODE_EXTENDED_POSITION, MODE_CURRENT_POSITION, MODE_PWM = 0, 1, 3, 4, 5, 16
MODE_NAMES = {0: "current", 1: "velocity", 3: "position", 4: "extended_position", 5: "current_based_position",
              16: "pwm"}

TICKS_PER_REV = 4096
CENTER_TICKS = 2048
RAD_PER_TICK = 2.0 * math.pi / TICKS_PER_REV
RPM_PER_UNIT = 0.229
RAD_S_PER_UNIT = RPM_PER_UNIT * 2.0 * math.pi / 60.0
MA_PER_UNIT = 2.69
PWM_MAX = 885

# Model numbers -> (name, measures current)
MODELS = {1020: ("XM430-W350", True), 1030: ("XM430-W210", True), 1120: ("XM540-W270", True),
          1130: ("XM540-W150", True), 1060: ("XL430-W250", False), 1090: ("2XL430-W250", False)}

HARDWARE_ERROR_BITS = {0x01: "input voltage", 0x04: "overheating", 0x08: "motor encoder",
                       0x10: "electrical shock", 0x20: "overload"}
ALERT_BIT = 0x80


def _port_handler(name: str, latency_timer_ms: float):
    """dynamixel-sdk's PortHandler with this bus's latency timer: the SDK waits
    2 x LATENCY_TIMER + 2 ms (+ wire time) for a status packet, with LATENCY_TIMER a module
    global; per instance here, so two buses never share it."""
    from dynamixel_sdk import PortHandler

    class Port(PortHandler):
        def setPacketTimeout(self, packet_length):
            self.packet_start_time = self.getCurrentTime()
            self.packet_timeout = self.tx_time_per_byte * packet_length + latency_timer_ms * 2.0 + 2.0

    return Port(name)


class PortFailedError(DeviceLostError):
    """The port itself failed (unplugged adapter, closed pty): no point in retrying at once."""


def decode_hardware_error(bits: int) -> list[str]:
    """Hardware Error Status (70) -> names of the set bits, e.g. 0x24 -> ['overheating', 'overload']."""
    return [name for bit, name in HARDWARE_ERROR_BITS.items() if bits & bit] + \
        ([f"unknown bits 0x{bits & ~0x3D:02X}"] if bits & ~0x3D else [])


def ticks_to_rad(ticks):
    return (np.asarray(ticks, dtype=float) - CENTER_TICKS) * RAD_PER_TICK


def rad_to_ticks(rad) -> np.ndarray:
    rad = np.asarray(rad, dtype=float)
    if not np.all(np.isfinite(rad)):
        raise ValueError(f"joint positions must be finite, got {rad.tolist()}")
    return np.rint(rad / RAD_PER_TICK + CENTER_TICKS).astype(np.int64)


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def _swap(out: tuple) -> tuple:
    """The SDK's (value, result, error) -> (result, value, error)."""
    return out[1], out[0], out[2]


def _le(value: int, size: int) -> list[int]:
    return list(int(value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))


@dataclass
class BusConfig:
    """The bus and how each servo is set up. Ids as the WidowX 250 6-DoF (wx250s) ships them."""
    port: str = "/dev/ttyDXL"
    baud: int = 1_000_000
    joint_ids: tuple[int, ...] = (1, 2, 4, 6, 7, 8)   # waist, shoulder, elbow, forearm_roll, wrist_angle, wrist_rotate
    shadow_ids: tuple[int, ...] = (3, 5)              # second shoulder and elbow servos (reverse drive mode)
    shadow_of: tuple[int, ...] = (2, 4)               # ... follow these joints' goals
    gripper_id: int = 9                               # -1: no gripper on this bus
    arm_mode: int = MODE_CURRENT_POSITION             # current-based position; XL430 joints fall back to position
    arm_current_limit_ma: float = 1500.0              # current limit (EEPROM 38) and goal current (102)
    arm_profile_velocity: float = 2.0                 # rad/s, the servos' own speed cap (0 = none)
    arm_profile_acceleration: float = 0.0             # rad/s^2 (0 = none)
    gripper_mode: int = MODE_PWM                      # 16 PWM, or 0 current (XM grippers only)
    gripper_pwm_limit: int = 350                      # of 885
    gripper_current_limit_ma: float = 400.0
    reboot_on_error: bool = True                      # at open(): reboot servos that report a hardware error
    latency_timer_ms: float = 16.0                    # the adapter's (FTDI default 16, 1 with the udev rule)

    def validate(self) -> None:
        ids = list(self.joint_ids) + list(self.shadow_ids) + ([self.gripper_id] if self.gripper_id >= 0 else [])
        if not self.joint_ids:
            raise ValueError("joint_ids is empty")
        if len(set(ids)) != len(ids) or not all(0 <= i <= 252 for i in ids):
            raise ValueError(f"servo ids must be distinct and in 0..252, got {ids}")
        if len(self.shadow_ids) != len(self.shadow_of) or not set(self.shadow_of) <= set(self.joint_ids):
            raise ValueError(f"shadow_of must name one joint id per shadow id, got {self.shadow_ids} -> {self.shadow_of}")
        if self.arm_mode not in (MODE_POSITION, MODE_EXTENDED_POSITION, MODE_CURRENT_POSITION):
            raise ValueError(f"arm_mode must be 3, 4 or 5 (a position mode), got {self.arm_mode}")
        if self.gripper_mode not in (MODE_PWM, MODE_CURRENT):
            raise ValueError(f"gripper_mode must be 16 (PWM) or 0 (current), got {self.gripper_mode}")
        for name in ("arm_current_limit_ma", "gripper_current_limit_ma", "arm_profile_velocity",
                     "arm_profile_acceleration"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        if not 0 < self.gripper_pwm_limit <= PWM_MAX:
            raise ValueError(f"gripper_pwm_limit must be in 1..{PWM_MAX}")
        if not (math.isfinite(self.latency_timer_ms) and self.latency_timer_ms > 0):
            raise ValueError(f"latency_timer_ms must be finite and > 0, got {self.latency_timer_ms}")

    @property
    def all_ids(self) -> list[int]:
        return list(self.joint_ids) + list(self.shadow_ids) + ([self.gripper_id] if self.gripper_id >= 0 else [])


@dataclass
class BusState:
    """One sync read. Arrays in the order of joint_ids (+ the gripper last, if any)."""
    ids: tuple[int, ...]
    position: np.ndarray      # rad
    velocity: np.ndarray      # rad/s
    current: np.ndarray       # A, NaN where the servo does not measure current
    load: np.ndarray          # fraction of max torque (XL430), NaN where current is measured
    alerts: tuple[int, ...]   # ids whose status packet carried the hardware-alert bit
    stamp: float              # time.monotonic() after the read


@dataclass
class ServoInfo:
    dxl_id: int
    model_number: int
    model: str
    measures_current: bool
    mode: int = -1


class DynamixelBus:
    def __init__(self, config: BusConfig):
        config.validate()
        self.config = config
        self.port = None
        self.ph = None
        self.servos: dict[int, ServoInfo] = {}
        # State of the joints and the gripper; the shadows are read too, for their alert bits.
        self.state_ids = list(config.joint_ids) + ([config.gripper_id] if config.gripper_id >= 0 else [])
        self.read_ids = list(config.joint_ids) + list(config.shadow_ids) + self.state_ids[len(config.joint_ids):]
        self.events: list[tuple[str, str]] = []   # (level, text) from open(), for the node to report
        self.transactions = 0

    # ------------------------------------------------------------------ link
    def open(self) -> None:
        """Open the port and set every servo up. DeviceNotFoundError if the port or a servo is missing."""
        import serial
        from dynamixel_sdk import PacketHandler

        self.close()
        port = _port_handler(self.config.port, self.config.latency_timer_ms)
        try:
            if not port.setBaudRate(self.config.baud):
                raise DeviceNotFoundError(f"baud rate {self.config.baud} is not supported by dynamixel-sdk")
        except (serial.SerialException, OSError) as e:
            raise DeviceNotFoundError(f"cannot open {self.config.port}: {e} (U2D2 unplugged? permissions: "
                                      f"dialout group; see docs/widowx.md)") from e
        self.port, self.ph = port, PacketHandler(2.0)
        try:
            self._ping_all()
            self._check_shadows()
            self._clear_errors_at_start()
            for dxl_id in self.config.all_ids:
                self._configure(dxl_id)
        except DeviceLostError as e:
            self.close()
            raise DeviceNotFoundError(str(e)) from e
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.port is not None:
            try:
                self.port.closePort()
            except Exception:
                pass
        self.port = None

    @property
    def is_open(self) -> bool:
        return self.port is not None

    def _retry(self, what: str, dxl_id: int, fn, tries: int = 3):
        """_call for idempotent transactions (reads, writes of a value): a status packet that
        missed the SDK's short timeout (2 x latency timer) on a busy host is asked for again."""
        for attempt in range(tries):
            try:
                return self._call(what, dxl_id, fn)
            except PortFailedError:
                raise
            except DeviceLostError:
                if attempt == tries - 1:
                    raise

    def _call(self, what: str, dxl_id: int, fn):
        """One SDK transaction; fn(port) returns (comm result, *rest) and this returns rest.
        DeviceLostError on any transport failure."""
        import termios

        import serial
        from dynamixel_sdk import COMM_SUCCESS

        if self.port is None:
            raise DeviceLostError("bus is closed")
        self.transactions += 1
        try:
            result, *rest = fn(self.port)
        except (serial.SerialException, OSError, termios.error, TypeError, IndexError) as e:
            # TypeError/IndexError: the SDK indexing a half-read packet of a dying port
            raise PortFailedError(f"{what} (servo {dxl_id}): port {self.config.port} failed: {e}") from e
        if result != COMM_SUCCESS:
            raise DeviceLostError(f"{what} (servo {dxl_id}): {self.ph.getTxRxResult(result)}")
        return rest

    def _write(self, dxl_id: int, addr: int, size: int, value: int, what: str) -> int:
        """Write one field; returns the status error byte (0 = accepted, ALERT bit = hardware error)."""
        fn = {1: self.ph.write1ByteTxRx, 2: self.ph.write2ByteTxRx, 4: self.ph.write4ByteTxRx}[size]
        (error,) = self._retry(what, dxl_id, lambda port: fn(port, dxl_id, addr, value & ((1 << 8 * size) - 1)))
        if error & ~ALERT_BIT:
            raise RuntimeError(f"servo {dxl_id} refused {what} = {value}: {self.ph.getRxPacketError(error & ~ALERT_BIT)}")
        return error

    def _read(self, dxl_id: int, addr: int, size: int, what: str, signed: bool = False) -> int:
        fn = {1: self.ph.read1ByteTxRx, 2: self.ph.read2ByteTxRx, 4: self.ph.read4ByteTxRx}[size]
        value, _ = self._retry(what, dxl_id, lambda port: _swap(fn(port, dxl_id, addr)))
        return _signed(value, 8 * size) if signed else value

    def _ping_all(self) -> None:
        from dynamixel_sdk import COMM_SUCCESS

        missing = []
        for dxl_id in self.config.all_ids:
            for _ in range(3):   # a status packet can miss the SDK's short timeout on a busy host
                try:
                    model, result, _ = self.ph.ping(self.port, dxl_id)
                except Exception as e:
                    raise DeviceNotFoundError(f"ping of servo {dxl_id} on {self.config.port} failed: {e}") from e
                if result == COMM_SUCCESS:
                    break
            if result != COMM_SUCCESS:
                missing.append(dxl_id)
                continue
            name, current = MODELS.get(model, (f"model {model}", True))
            self.servos[dxl_id] = ServoInfo(dxl_id, model, name, current)
        if missing:
            raise DeviceNotFoundError(f"servos {missing} do not answer on {self.config.port} at {self.config.baud} baud "
                                      f"(power on? ids and baud rate set with Dynamixel Wizard? see docs/widowx.md)")

    def _check_shadows(self) -> None:
        """A shadow gets its joint's goal ticks, so it must turn the other way (Drive Mode bit 0
        differs), or the two servos of one joint fight each other until one overloads."""
        for shadow, joint in zip(self.config.shadow_ids, self.config.shadow_of):
            a = self._read(joint, ADDR_DRIVE_MODE, 1, "drive mode read") & 1
            b = self._read(shadow, ADDR_DRIVE_MODE, 1, "drive mode read") & 1
            if a == b:
                raise DeviceNotFoundError(
                    f"servo {shadow} is set up as the shadow of servo {joint} but turns the same way (Drive Mode "
                    f"bit 0 = {b} on both): set it to reverse with Dynamixel Wizard, or fix shadow_ids/shadow_of")

    def _clear_errors_at_start(self) -> None:
        for dxl_id in self.config.all_ids:
            bits = self.hardware_error(dxl_id)
            if not bits:
                continue
            text = f"servo {dxl_id} starts with hardware error 0x{bits:02X} ({', '.join(decode_hardware_error(bits))})"
            if not self.config.reboot_on_error:
                raise DeviceNotFoundError(f"{text}; reboot it (reboot_on_error) or power-cycle the arm")
            self.events.append(("warn", f"{text}; rebooting it"))
            self.reboot(dxl_id)

    def wanted_mode(self, dxl_id: int) -> int:
        info = self.servos[dxl_id]
        if dxl_id == self.config.gripper_id:
            mode = self.config.gripper_mode
            return MODE_PWM if mode == MODE_CURRENT and not info.measures_current else mode
        mode = self.config.arm_mode
        return MODE_POSITION if mode == MODE_CURRENT_POSITION and not info.measures_current else mode

    def _configure(self, dxl_id: int) -> None:
        """Operating mode and limits (EEPROM: torque off only when they must change), then goal =
        present, profile, torque on (arm) / zero effort (gripper)."""
        info = self.servos[dxl_id]
        mode = self.wanted_mode(dxl_id)
        cfg = self.config
        gripper = dxl_id == cfg.gripper_id
        eeprom = {ADDR_OPERATING_MODE: (1, mode)}
        if info.measures_current:
            limit_ma = cfg.gripper_current_limit_ma if gripper else cfg.arm_current_limit_ma
            eeprom[ADDR_CURRENT_LIMIT] = (2, int(round(limit_ma / MA_PER_UNIT)))
        if gripper:
            eeprom[ADDR_PWM_LIMIT] = (2, cfg.gripper_pwm_limit)
        torque = self._read(dxl_id, ADDR_TORQUE_ENABLE, 1, "torque enable read")
        differs = {a: v for a, v in eeprom.items() if self._read(dxl_id, a, v[0], "config read") != v[1]}
        if differs and torque:
            self.events.append(("warn", f"servo {dxl_id}: torque off to change its configuration"))
            self._write(dxl_id, ADDR_TORQUE_ENABLE, 1, 0, "torque disable")
            torque = 0
        for addr, (size, value) in differs.items():
            self._write(dxl_id, addr, size, value, f"address {addr}")
        info.mode = mode
        if gripper:
            goal_addr = ADDR_GOAL_PWM if mode == MODE_PWM else ADDR_GOAL_CURRENT
            self._write(dxl_id, goal_addr, 2, 0, "gripper goal")   # no squeeze until commanded
        else:
            if info.measures_current and mode == MODE_CURRENT_POSITION:
                self._write(dxl_id, ADDR_GOAL_CURRENT, 2, int(round(cfg.arm_current_limit_ma / MA_PER_UNIT)),
                            "goal current")
            units = lambda v: int(round(v / RAD_S_PER_UNIT))  # noqa: E731
            self._write(dxl_id, ADDR_PROFILE_VELOCITY, 4, units(cfg.arm_profile_velocity), "profile velocity")
            # profile acceleration: 214.577 rev/min^2 per unit
            accel_units = int(round(cfg.arm_profile_acceleration * 60.0 ** 2 / (2 * math.pi) / 214.577))
            self._write(dxl_id, ADDR_PROFILE_ACCELERATION, 4, accel_units, "profile acceleration")
            if not torque:   # hold where it is when torque comes on: no jump to a stale goal
                present = self._read(dxl_id, ADDR_PRESENT_POSITION, 4, "present position", signed=True)
                self._write(dxl_id, ADDR_GOAL_POSITION, 4, present, "goal position")
        if not torque:
            self._write(dxl_id, ADDR_TORQUE_ENABLE, 1, 1, "torque enable")

    # ------------------------------------------------------------------ per cycle
    def read_state(self) -> BusState:
        """One sync read of 126..135 for the joints (and the gripper)."""
        from dynamixel_sdk import GroupSyncRead

        group = GroupSyncRead(self.port, self.ph, *STATE_BLOCK)
        for dxl_id in self.read_ids:
            group.addParam(dxl_id)
        self._call("sync read", self.read_ids[0], lambda port: (group.txPacket(),))
        n = len(self.state_ids)
        pos, vel, cur, load = np.empty(n), np.empty(n), np.full(n, np.nan), np.full(n, np.nan)
        index = {dxl_id: i for i, dxl_id in enumerate(self.state_ids)}
        alerts = []
        for dxl_id in self.read_ids:
            # readRx keeps each servo's error byte (hardware alert), which GroupSyncRead.rxPacket drops
            data, error = self._call("sync read", dxl_id, lambda port: _swap(self.ph.readRx(port, dxl_id, 10)))
            if len(data) != 10:
                raise DeviceLostError(f"sync read (servo {dxl_id}): short status packet")
            if error & ALERT_BIT:
                alerts.append(dxl_id)
            i = index.get(dxl_id)
            if i is None:
                continue   # a shadow: only its alert bit matters
            raw = bytes(data)
            c = int.from_bytes(raw[0:2], "little", signed=True)
            vel[i] = int.from_bytes(raw[2:6], "little", signed=True) * RAD_S_PER_UNIT
            pos[i] = (int.from_bytes(raw[6:10], "little", signed=True) - CENTER_TICKS) * RAD_PER_TICK
            if self.servos[dxl_id].measures_current:
                cur[i] = c * MA_PER_UNIT * 1e-3
            else:
                load[i] = c * 1e-3
        return BusState(tuple(self.state_ids), pos, vel, cur, load, tuple(alerts), time.monotonic())

    def write_goal_positions(self, q_rad) -> None:
        """One sync write of goal positions for joint_ids (shadows get their joint's goal)."""
        from dynamixel_sdk import GroupSyncWrite

        ticks = rad_to_ticks(q_rad)
        if ticks.shape != (len(self.config.joint_ids),):
            raise ValueError(f"need {len(self.config.joint_ids)} joint positions, got shape {ticks.shape}")
        goals = dict(zip(self.config.joint_ids, ticks.tolist()))
        goals.update({s: goals[m] for s, m in zip(self.config.shadow_ids, self.config.shadow_of)})
        group = GroupSyncWrite(self.port, self.ph, ADDR_GOAL_POSITION, 4)
        for dxl_id, value in goals.items():
            group.addParam(dxl_id, _le(value, 4))
        self._call("sync write", -1, lambda port: (group.txPacket(),))

    def write_gripper_effort(self, effort: float) -> None:
        """Gripper effort in [-1, 1] (+ closes): PWM fraction of its limit, or current fraction."""
        cfg = self.config
        if cfg.gripper_id < 0:
            raise RuntimeError("no gripper on this bus")
        if not math.isfinite(effort):
            raise ValueError(f"gripper effort must be finite, got {effort}")
        effort = max(-1.0, min(1.0, effort))
        if self.servos[cfg.gripper_id].mode == MODE_PWM:
            self._write(cfg.gripper_id, ADDR_GOAL_PWM, 2, int(round(effort * cfg.gripper_pwm_limit)), "goal PWM")
        else:
            units = int(round(effort * cfg.gripper_current_limit_ma / MA_PER_UNIT))
            self._write(cfg.gripper_id, ADDR_GOAL_CURRENT, 2, units, "goal current")

    # ------------------------------------------------------------------ faults
    def hardware_error(self, dxl_id: int) -> int:
        return self._read(dxl_id, ADDR_HARDWARE_ERROR, 1, "hardware error status read")

    def hardware_errors(self, ids=None) -> dict[int, int]:
        """{id: error bits} of the servos (all by default) whose Hardware Error Status is not 0."""
        out = {}
        for dxl_id in (self.config.all_ids if ids is None else ids):
            bits = self.hardware_error(dxl_id)
            if bits:
                out[dxl_id] = bits
        return out

    def reboot(self, dxl_id: int, settle_s: float = 0.1) -> None:
        """REBOOT clears the error; the servo comes back with torque off and RAM at defaults."""
        self._call("reboot", dxl_id, lambda port: self.ph.reboot(port, dxl_id))   # (result, error)
        time.sleep(settle_s)   # a real servo answers again after ~0.1 s
        deadline = time.monotonic() + 2.0
        while True:
            try:
                self._call("ping after reboot", dxl_id, lambda port: _swap(self.ph.ping(port, dxl_id)))
                return
            except DeviceLostError:
                if time.monotonic() > deadline:
                    raise

    def recover(self, dxl_id: int) -> None:
        """Reboot one servo and set it up again (goal = present, torque on)."""
        self.reboot(dxl_id)
        self._configure(dxl_id)

    def ids_following(self, dxl_id: int) -> list[int]:
        """The joint's servo and its shadows (they fail and recover together)."""
        return [dxl_id] + [s for s, m in zip(self.config.shadow_ids, self.config.shadow_of) if m == dxl_id]


__all__ = ["BusConfig", "BusState", "DynamixelBus", "PortFailedError", "decode_hardware_error", "ticks_to_rad", "rad_to_ticks",
           "HARDWARE_ERROR_BITS", "MODE_NAMES"]
