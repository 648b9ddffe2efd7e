#!/usr/bin/env bash
# Install the Python packages that a ROS 2 install lacks (onnxruntime, onnx, bag reading), at
# versions that accept the distro's own numpy. Run it after `rosdep install`:
#
#   bash scripts/install_ros_deps.sh [--with-tinygrad]
#
# Where: the active venv (made with `python3 -m venv --system-site-packages`, so rclpy and apt's
# numpy, OpenCV and PyYAML stay visible); without one, `pip install --user` where the system
# allows it (Ubuntu 22.04). Ubuntu 24.04 refuses pip outside a venv (externally-managed-environment).
# Which versions: ros_compat/distro-humble*.txt for Python 3.10 (Ubuntu 22.04),
# ros_compat/distro-noble.txt for Python 3.12 (Ubuntu 24.04: Jazzy, Kilted).
# numpy and OpenCV are never installed or upgraded: apt's cv2 is built against apt's numpy, and a
# pip numpy in front of it breaks `import cv2`. The script checks both are the same afterwards.
# PYTHON=/path/to/python3 picks another interpreter.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"

log() { echo "[install_ros_deps] $*"; }
die() { echo "[install_ros_deps] ERROR: $*" >&2; exit 1; }

with_tinygrad=0
for arg in "$@"; do
    case "$arg" in
        --with-tinygrad) with_tinygrad=1 ;;
        -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown argument: $arg" ;;
    esac
done

pyver="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" || die "$PY does not run"
case "$pyver" in
    3.10) distro=humble ;;
    3.12) distro=noble ;;
    *) die "Python $pyver: tested pins exist for 3.10 (Ubuntu 22.04, Humble) and 3.12 (Ubuntu 24.04, Jazzy, Kilted)" ;;
esac
REQS="$REPO/ros_compat/distro-$distro.txt"

# numpy and cv2 as apt installed them: version and file, compared again at the end.
probe() {
    "$PY" -c 'import numpy, cv2; print(numpy.__version__, numpy.__file__, cv2.__version__, cv2.__file__)'
}
before="$(probe)" || die "numpy and OpenCV must import first; they come from apt: \
rosdep install --from-paths src --ignore-src -y (python3-numpy, python3-opencv)"
read -r numpy_version numpy_file cv2_version _ <<<"$before"

# A numpy installed by pip in this venv or in ~/.local hides apt's: the pin below would keep it.
"$PY" - "$numpy_file" <<'PYEOF' || die "numpy $numpy_version at $numpy_file was installed by pip over the distro's; remove it (pip uninstall numpy) and run this again"
import os, site, sys
path = os.path.realpath(sys.argv[1])
mine = [site.getusersitepackages()] + ([sys.prefix] if sys.prefix != sys.base_prefix else [])
sys.exit(any(path.startswith(os.path.realpath(p) + os.sep) for p in mine))
PYEOF

target=()
if "$PY" -c 'import sys; sys.exit(sys.prefix != sys.base_prefix)'; then
    if "$PY" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
        die "this Python takes pip packages only in a venv. Make one that sees the ROS packages:
    python3 -m venv --system-site-packages ~/ros2_ws/venv && touch ~/ros2_ws/venv/COLCON_IGNORE
    source ~/ros2_ws/venv/bin/activate
then run this script again (README: With a ROS 2 install)."
    fi
    target=(--user)
    log "no venv active: installing with pip --user"
fi

pkgs=(-r "$REQS")
if [ "$with_tinygrad" -eq 1 ]; then
    [ "$distro" != humble ] || die "tinygrad 0.12 and later need Python 3.11; Humble's is 3.10"
    pkgs+=(tinygrad==0.14.0)
fi

# Constraints: numpy stays at the installed version, and any OpenCV wheel is impossible, so pip
# fails instead of installing a second numpy or cv2 if some package asked for one.
guard="$(mktemp)"
trap 'rm -f "$guard"' EXIT
cat >"$guard" <<GUARD
numpy==$numpy_version
opencv-python<0
opencv-python-headless<0
opencv-contrib-python<0
opencv-contrib-python-headless<0
GUARD

log "Python $pyver, numpy $numpy_version, OpenCV $cv2_version: installing $(basename "$REQS")"
"$PY" -m pip install "${target[@]}" -c "$guard" "${pkgs[@]}"
# Wheels whose declared numpy floor is above the distro's although they run on it.
NODEPS="$REPO/ros_compat/distro-$distro-nodeps.txt"
if [ -f "$NODEPS" ]; then
    "$PY" -m pip install "${target[@]}" --no-deps -r "$NODEPS"
fi

after="$(probe)" || die "import numpy/cv2 fails after the install"
[ "$before" = "$after" ] || die "numpy or OpenCV changed: before '$before', after '$after'"
log "done; numpy $numpy_version and OpenCV $cv2_version untouched"
"$PY" -c 'import onnx, onnxruntime; print("[install_ros_deps] onnxruntime", onnxruntime.__version__, "onnx", onnx.__version__)'
