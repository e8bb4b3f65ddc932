"""The MuJoCo twins: scenes built in code (sim.scene, sim.widowx), one arm twin base
(sim.arm_twin) with the FR3 (sim.twin) and the WX250s (sim.widowx), and the twin node.

Offscreen rendering needs a GL backend chosen before mujoco is imported: MUJOCO_GL defaults to
"egl" here (Mesa renders on the CPU when there is no GPU); "osmesa" is the fallback.
"""
from __future__ import annotations

import os

GL_HELP = (
    "MuJoCo offscreen rendering needs an OpenGL backend. Install one and select it:\n"
    "  EGL (preferred):  apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri   and  MUJOCO_GL=egl\n"
    "  OSMesa:           apt-get install libosmesa6                             and  MUJOCO_GL=osmesa\n"
    "State-only tasks (obs='state') need no GL at all."
)


def mujoco_import():
    """Imports mujoco with MUJOCO_GL defaulting to egl, turning a bad backend into a clear error."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        import mujoco
    except RuntimeError as err:  # mujoco rejects an unknown MUJOCO_GL at import time
        if "MUJOCO_GL" in str(err):
            raise RuntimeError(f"{err}\n{GL_HELP}") from err
        raise
    return mujoco
