"""Suite-wide settings that must hold however pytest is started (make test or plain pytest).

MuJoCo picks its GL backend at import; on a headless machine GLFW aborts the process (exit
134), so offscreen EGL is the default here, as the Makefile sets it. A value set by the
caller wins (tests/sim/test_twin_render.py runs other backends in subprocesses).
"""
import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
