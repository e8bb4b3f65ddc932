#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py): <= 10 min on one GPU, one JSON line at the end.
#
# On a GPU machine with no network (the device tool's), robot_rl's pure-Python needs that its
# image lacks travel as wheels in .whl/ (made here once with bench/gpu_wheels.sh) and EGL's
# loader libraries in .gl/ (see the device README); both are unpacked when present:
#     bash bench/gpu_wheels.sh            # here, once: .whl/ for Python 3.12, x86-64
#     bash bench/gpu_check.sh             # there, carrying .whl (and .gl)
#     bash bench/gpu_check.sh --cpu       # here: the same steps reduced, on the CPU
set -euo pipefail
cd "$(dirname "$0")/.."
if ls .gl/*.deb >/dev/null 2>&1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
PY=${PYTHON:-python3}
cpu=0; [ "${1:-}" = "--cpu" ] && cpu=1
# --cpu runs here, in the project's venv; the wheels are for the device's Python 3.12.
[ $cpu = 1 ] && [ -x .venv/bin/python ] && PY=.venv/bin/python
if [ $cpu = 0 ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export MUJOCO_GL=${MUJOCO_GL:-egl} PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-egl}
exec "$PY" bench/gpu_check.py "$@"
