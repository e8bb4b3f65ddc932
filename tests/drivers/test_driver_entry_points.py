"""The console entry points, run as a user would with no device attached: each says what is
missing and exits with status 2 instead of publishing made-up data."""
from __future__ import annotations

import os
import subprocess
import sys

ENTRY_POINTS = {
    "robot_rl.drivers.spacemouse_node": ([], "no 3Dconnexion SpaceMouse found"),
    "robot_rl.drivers.realsense_node": (["-p", "serial_no:=123456"], "no RealSense camera with serial '123456'"),
    "robot_rl.drivers.robotiq_node": (["-p", "port:=/dev/ttyUSB_missing"], "serial port /dev/ttyUSB_missing does not exist"),
    "robot_rl.drivers.ft_node": (["-p", "port:=/dev/ttyUSB_missing"], "serial port /dev/ttyUSB_missing does not exist"),
    "robot_rl.drivers.keyboard_node": (["-p", "device:=/dev/null"], "not a terminal"),
}


def test_entry_points_fail_clearly_without_a_device():
    procs = {}
    try:
        for module, (params, _) in ENTRY_POINTS.items():  # started together: ~1 s each for imports
            procs[module] = subprocess.Popen([sys.executable, "-m", module, "--ros-args", *params],
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
        for module, proc in procs.items():
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 2, f"{module}: exit {proc.returncode}\n{err}"
            assert ENTRY_POINTS[module][1] in err, f"{module}: {err}"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
