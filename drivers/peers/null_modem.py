"""A virtual null-modem cable: two pseudo-terminals whose masters are bridged by a thread.

Each end is a real tty path (/dev/pts/N) that pyserial opens like a USB-serial adapter, the
way `socat pty,raw pty,raw` would do it. `unplug()` drops the bytes in flight (a cable pulled
mid-run), `plug()` restores the link; `close()` ends the bridge thread and closes both ptys.
"""
from __future__ import annotations

import os
import select
import threading
import tty

from robot_rl.closing import Closing


class NullModem(Closing):
    def __init__(self) -> None:
        self._masters, self._slaves, self.paths = [], [], []
        for _ in range(2):
            master, slave = os.openpty()
            tty.setraw(master)
            tty.setraw(slave)
            self._masters.append(master)
            self._slaves.append(slave)  # kept open so the far end never sees a hang-up
            self.paths.append(os.ttyname(slave))
        self.connected = threading.Event()
        self.connected.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._bridge, name="null-modem", daemon=True)
        self._thread.start()

    @property
    def a(self) -> str:
        return self.paths[0]

    @property
    def b(self) -> str:
        return self.paths[1]

    def _bridge(self) -> None:
        a, b = self._masters
        peer = {a: b, b: a}
        while not self._stop.is_set():
            ready, _, _ = select.select([a, b], [], [], 0.05)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if data and self.connected.is_set():
                    os.write(peer[fd], data)

    def unplug(self) -> None:
        self.connected.clear()

    def plug(self) -> None:
        self.connected.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        for fd in self._masters + self._slaves:
            try:
                os.close(fd)
            except OSError:
                pass
