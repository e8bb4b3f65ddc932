#!/usr/bin/env bash
# Checks the system libraries robot_rl needs. As root (as in CI) it installs the missing ones
# with apt; otherwise it names them and the command to install them, and fails.
set -euo pipefail

declare -A WHY=(
  [libusb-1.0-0]="pyrealsense2 (RealSense cameras)"
  [libhidapi-hidraw0]="hidapi (SpaceMouse)"
  [libegl1]="EGL loader for offscreen MuJoCo rendering (MUJOCO_GL=egl)"
  [libegl-mesa0]="Mesa's EGL, which renders on the CPU when there is no GPU"
  [libgl1-mesa-dri]="Mesa's software rasteriser (llvmpipe) used through EGL"
  [libosmesa6]="OSMesa, the fallback when EGL cannot start (MUJOCO_GL=osmesa)"
)

missing=()
for pkg in "${!WHY[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing system libraries: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  exit 0
fi

echo "robot_rl needs these system libraries, which are missing:" >&2
for pkg in "${missing[@]}"; do echo "  $pkg: ${WHY[$pkg]}" >&2; done
echo "install them with:  sudo apt-get install ${missing[*]}" >&2
exit 1
