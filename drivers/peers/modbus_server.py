"""A pymodbus server (TCP or RTU) on its own asyncio loop in a thread, with a stop path."""
from __future__ import annotations

import asyncio
import contextlib
import threading

from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import SimDevice


class ModbusServerThread:
    """Serves `device` over TCP (host, port) or RTU (a serial/pty path). stop() ends it."""

    def __init__(self, device: SimDevice, *, tcp: tuple[str, int] | None = None,
                 serial_port: str = "", baudrate: int = 115200):
        if (tcp is None) == (not serial_port):
            raise ValueError("give exactly one of tcp=(host, port) or serial_port=")
        self.device, self.tcp, self.serial_port, self.baudrate = device, tcp, serial_port, baudrate
        self._loop = asyncio.new_event_loop()
        self._server = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="modbus-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10.0) or self._error:
            self.stop()
            raise RuntimeError(f"modbus server did not start: {self._error}")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as e:  # surfaced to the constructor
            self._error = e
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        if self.tcp is not None:
            self._server = ModbusTcpServer(self.device, address=self.tcp)
        else:
            self._server = ModbusSerialServer(self.device, port=self.serial_port, baudrate=self.baudrate,
                                              bytesize=8, parity="N", stopbits=1, timeout=0.5)
        if not await self._server.listen():
            raise RuntimeError(f"cannot listen on {self.tcp or self.serial_port}")
        self._ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._server.serving

    def stop(self) -> None:
        if self._thread.is_alive() and self._server is not None:
            fut = asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop)
            try:
                fut.result(timeout=5.0)
            except Exception:
                pass
        self._thread.join(timeout=5.0)

    def __enter__(self) -> "ModbusServerThread":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
