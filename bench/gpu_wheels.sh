#!/usr/bin/env bash
# Wheels for bench/gpu_check.sh on the device machine (Python 3.12, x86-64, no network there):
# what robot_rl's learner, twin and CLI import that the device image does not hold. Run here.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> "$(git rev-parse --git-common-dir)/info/exclude"
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${plat[@]}" -d .whl \
  mujoco==4.0.0 mujoco-core==4.0.0 mujoco-studio==4.0.0 gymnasium==1.4.0 farama-notifications==0.0.6 glfw==2.11.0 pyopengl==3.1.10 websockets==17.4
ls -la .whl
