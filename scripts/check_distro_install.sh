#!/usr/bin/env bash
# Check the ROS 2 install path (scripts/install_ros_deps.sh) on a stand-in of a distro's Python:
#
#   bash scripts/check_distro_install.sh humble|noble [pytest args...]
#
#   humble: Python 3.10, numpy 1.21.5, OpenCV 4.5.4, pip 22.0.2 (Ubuntu 22.04's apt versions)
#   noble:  Python 3.12, numpy 1.26.4, OpenCV 4.6.0, pip 24.0   (Ubuntu 24.04: Jazzy, Kilted)
#
# .venv-distro-<name>/system holds wheels of apt's numpy, OpenCV and PyYAML; the venv (made with
# --system-site-packages) sees it through a .pth file after its own site-packages, where a real
# venv sees /usr/lib/python3/dist-packages. The check then runs install_ros_deps.sh in the venv,
# asserts numpy and cv2 are the apt stand-ins still, and runs the tests: those needing rclpy,
# CUDA or TensorRT skip. Both folders are kept for the next run until this script or the pins
# change. Without the Python version it prints SKIP and exits 0. PYTHON=/path picks the Python.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
name="${1:-}"
shift || true

log() { echo "[check_distro:$name] $*"; }
die() { echo "[check_distro:$name] FAIL: $*" >&2; exit 1; }

case "$name" in
    humble) pyver=3.10 pip_version=22.0.2 numpy_version=1.21.5 cv2_version=4.5.4
            apt_wheels=(numpy==1.21.5 opencv-python-headless==4.5.4.60 pyyaml==6.0.1) ;;
    noble)  pyver=3.12 pip_version=24.0 numpy_version=1.26.4 cv2_version=4.6.0
            apt_wheels=(numpy==1.26.4 opencv-python-headless==4.6.0.66 pyyaml==6.0.1) ;;
    *) echo "usage: $0 humble|noble [pytest args...]" >&2; exit 2 ;;
esac
# Ubuntu 22.04 has PyYAML 5.4.1, which has no Python 3.10 wheel; the code uses no API it lacks.

works() { [ -n "$1" ] && "$1" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$pyver'.split('.'))))" 2>/dev/null; }
find_python() {
    local cand
    for cand in "${PYTHON:-}" "python$pyver" "/usr/bin/python$pyver" \
                "$(pyenv root 2>/dev/null)"/versions/"$pyver".*/bin/"python$pyver"; do
        if works "$cand"; then command -v "$cand"; return 0; fi
    done
    return 1
}
if ! PY="$(find_python)"; then
    log "SKIP: no Python $pyver here (set PYTHON=/path/to/python$pyver)"
    exit 0
fi

DIR="$REPO/.venv-distro-$name"
VENV="$DIR/venv"
SYSTEM="$DIR/system"
stamp="$(cat "${BASH_SOURCE[0]}" "$REPO/scripts/install_ros_deps.sh" "$REPO/ros_compat/distro-$name.txt" \
         | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$DIR/stamp" 2>/dev/null)" != "$stamp" ]; then
    log "building the stand-in with $PY"
    rm -rf "$DIR"
    "$PY" -m venv --system-site-packages "$VENV"
    "$VENV/bin/python" -m pip install -q --target "$SYSTEM" "${apt_wheels[@]}"
    "$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))' \
        | { read -r site; echo "$SYSTEM" >"$site/distro-system.pth"; }
    "$VENV/bin/python" -m pip install -q "pip==$pip_version"
    echo "$stamp" >"$DIR/stamp"
fi

# A clean environment: nothing of the project's own .venv or a sourced ROS setup.
unset PYTHONPATH PYTHONHOME AMENT_PREFIX_PATH VIRTUAL_ENV
# shellcheck disable=SC1091
source "$VENV/bin/activate"
probe() { python -c 'import numpy, cv2; print(numpy.__version__, numpy.__file__, cv2.__version__, cv2.__file__)'; }
before="$(probe)" || die "the stand-in does not import numpy and cv2"
read -r nv nf cv _ <<<"$before"
[ "$nv $cv" = "$numpy_version $cv2_version" ] || die "stand-in has numpy $nv, OpenCV $cv (want $numpy_version, $cv2_version)"
[[ "$nf" == "$SYSTEM"/* ]] || die "numpy comes from $nf, not the apt stand-in"
log "before: numpy $nv, OpenCV $cv from $SYSTEM"

bash "$REPO/scripts/install_ros_deps.sh"

after="$(probe)" || die "import numpy/cv2 fails after install_ros_deps.sh"
[ "$before" = "$after" ] || die "numpy/OpenCV changed: before '$before', after '$after'"
# The one mismatch allowed: onnxruntime's numpy floor (ros_compat/distro-humble-nodeps.txt).
broken="$(python -m pip check 2>&1 | grep -v -E '^No broken|^onnxruntime [0-9.]+ has requirement numpy' || true)"
[ -z "$broken" ] || die "pip check: $broken"
log "after: numpy $nv, OpenCV $cv, same files; pip check: no other broken requirement"

# Test tools only, with the same numpy pin.
python -m pip install -q -c <(echo "numpy==$nv") pytest==9.2.0 mcap==1.6.0
cd "$REPO"
log "tests: python -m pytest test/ -q -p no:cacheprovider $*"
PYTHONPATH="$REPO" python -m pytest test/ -q -p no:cacheprovider "$@"
