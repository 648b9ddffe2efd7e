#!/usr/bin/env bash
# Bootstrap the development environment of trt_infer_ros on a Debian/Ubuntu machine without ROS.
#
#   bash scripts/setup_env.sh          # idempotent; a second run takes seconds
#   SETUP_FORCE=1 bash scripts/setup_env.sh   # redo every step
#   PYTHON=/path/to/python3.11 bash scripts/setup_env.sh
#
# Steps (each only when needed):
#   1. system packages: clang (tinygrad CPU backend), cmake, make, a C++ compiler, Python headers
#   2. .venv at the repo root with Python 3.11
#   3. ROS 2 Kilted wheels (ros_compat/requirements-ros.txt) and the project's Python deps
#      (requirements.txt), pinned by ros_compat/constraints.txt
#   4. vision_msgs built from ros_compat/vision_msgs, only when `import vision_msgs.msg` fails
#   5. the project itself: editable install plus a share/ prefix (package.xml, launch/, config/,
#      ament index marker) so AMENT_PREFIX_PATH=.venv finds it like a colcon install
# A stamp (hash of the inputs) makes the next run a no-op until something changes.
set -euo pipefail
trap 'echo "[setup] ERROR: line $LINENO: $BASH_COMMAND (exit $?)" >&2' ERR

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
STAMP="$VENV/.setup-stamp"
PKG=trt_infer_ros

log() { echo "[setup] $*"; }
die() { echo "[setup] ERROR: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# 1. System packages (installed only when missing; apt-get update at most once).
# ---------------------------------------------------------------------------------------------
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo -n"
fi
APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "missing system packages ($*) and no apt-get to install them"
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update..."
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null \
            || die "apt-get update failed (need root or passwordless sudo)"
        APT_UPDATED=1
    fi
    log "installing system packages: $*"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
        || die "apt-get install $* failed"
}

missing=()
command -v clang >/dev/null 2>&1 || missing+=(clang)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v make >/dev/null 2>&1 || missing+=(make)
{ command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1; } || missing+=(g++)
command -v flock >/dev/null 2>&1 || missing+=(util-linux)
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
fi

# ---------------------------------------------------------------------------------------------
# 2. Python 3.11
# ---------------------------------------------------------------------------------------------
is_py311() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' >/dev/null 2>&1; }
find_python() {
    local cand
    for cand in "${PYTHON:-}" python3.11 /usr/bin/python3.11 /usr/local/bin/python3.11 python3 python; do
        [ -n "$cand" ] || continue
        if command -v "$cand" >/dev/null 2>&1 && is_py311 "$(command -v "$cand")"; then
            command -v "$cand"
            return 0
        fi
    done
    return 1
}
PY="$(find_python)" || die "Python 3.11 not found (tried \$PYTHON, python3.11, python3). The ROS 2 Kilted wheels are built for CPython 3.11: install it (Debian 12: apt-get install python3.11 python3.11-venv python3.11-dev) or set PYTHON=/path/to/python3.11."

PY="$("$PY" -c 'import sys; print(sys.executable)')"

# Headers are needed only to compile vision_msgs' Python extension; venv needs ensurepip.
py_pkgs=()
if ! "$PY" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    py_pkgs+=(python3.11-dev)
fi
if ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    py_pkgs+=(python3.11-venv)
fi
if [ "${#py_pkgs[@]}" -gt 0 ]; then
    apt_install "${py_pkgs[@]}"
fi

# One setup at a time per checkout: other scripts call this one concurrently.
exec 9>"$REPO/.venv.setup.lock"
flock 9

# ---------------------------------------------------------------------------------------------
# Stamp: everything that changes what this script produces.
# ---------------------------------------------------------------------------------------------
compute_stamp() {
    (
        cd "$REPO"
        "$PY" -c 'import sys; print(sys.version)'
        for f in scripts/setup_env.sh requirements.txt setup.py setup.cfg pyproject.toml package.xml; do
            if [ -f "$f" ]; then echo "== $f"; cat "$f"; fi
        done
        find ros_compat -type f -not -path '*/__pycache__/*' -print0 2>/dev/null | sort -z | xargs -0 -r sha256sum
        # The share/ prefix mirrors the files of these folders: a new file means a new link.
        find package.xml launch config resource models data -type f -not -path '*/__pycache__/*' 2>/dev/null | sort
    ) | sha256sum | cut -d' ' -f1
}
WANT="$(compute_stamp)"

venv_ok() { [ -x "$VENV/bin/python" ] && is_py311 "$VENV/bin/python"; }

if [ -z "${SETUP_FORCE:-}" ] && venv_ok && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
    log "environment up to date ($VENV)"
    exit 0
fi
rm -f "$STAMP"

# ---------------------------------------------------------------------------------------------
# 2b. The venv
# ---------------------------------------------------------------------------------------------
if ! venv_ok; then
    if [ -e "$VENV" ]; then
        log "removing unusable $VENV"
        rm -rf "$VENV"
    fi
    log "creating venv with $PY ($("$PY" -c 'import platform; print(platform.python_version())'))"
    "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

# ---------------------------------------------------------------------------------------------
# 3. Python packages
# ---------------------------------------------------------------------------------------------
pip_quiet() {
    # pip's own exit status; drop the noise of index folders that lack a package.
    "$VPY" -m pip "$@" 2>&1 | { grep -v -e 'is ignored: it is neither a file nor a directory' || true; }
}
log "installing ROS 2 wheels and Python deps (pinned)..."
pip_quiet install -q --disable-pip-version-check \
    -r "$REPO/ros_compat/requirements-ros.txt" \
    -r "$REPO/requirements.txt" \
    -c "$REPO/ros_compat/constraints.txt"

# The wheels' exported CMake files carry the wheel builder's Python and numpy include dirs.
PYINC="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
NPINC="$("$VPY" -c 'import numpy; print(numpy.get_include())')"
mapfile -t cmake_files < <(grep -rl --include='*.cmake' '/opt/python/cp311-cp311' "$VENV/share" 2>/dev/null || true)
if [ "${#cmake_files[@]}" -gt 0 ]; then
    log "pointing ${#cmake_files[@]} exported CMake files at this venv's Python and numpy headers"
    sed -i \
        -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NPINC#g" \
        -e "s#/opt/python/cp311-cp311/include/python3.11#$PYINC#g" \
        "${cmake_files[@]}"
fi

# Environment for the remaining steps (same as scripts/env.sh, without requiring the stamp).
export VIRTUAL_ENV="$VENV"
export PATH="$VENV/bin:$PATH"
export AMENT_PREFIX_PATH="$VENV"
export CMAKE_PREFIX_PATH="$VENV"

# ---------------------------------------------------------------------------------------------
# 4. vision_msgs: from the distro if there is one, else from ros_compat/vision_msgs
# ---------------------------------------------------------------------------------------------
MSG_SRC="$REPO/ros_compat/vision_msgs"
MSG_MARK="$VENV/share/vision_msgs/trt_infer_ros_compat.sha256"
MSG_HASH="$(cd "$MSG_SRC" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
build_msgs=0
if "$VPY" -c 'import vision_msgs.msg' >/dev/null 2>&1; then
    if [ -f "$MSG_MARK" ] && [ "$(cat "$MSG_MARK")" != "$MSG_HASH" ]; then
        log "ros_compat/vision_msgs changed: rebuilding it"
        build_msgs=1
    elif [ -f "$MSG_MARK" ]; then
        log "vision_msgs (built from ros_compat) is current"
    else
        log "vision_msgs found ($("$VPY" -c 'import vision_msgs, os; print(os.path.dirname(vision_msgs.__file__))')): not building ours"
    fi
else
    build_msgs=1
fi
if [ "$build_msgs" -eq 1 ]; then
    BUILD_DIR="$VENV/build/vision_msgs"
    mkdir -p "$BUILD_DIR"
    log "building vision_msgs from ros_compat/vision_msgs (about a minute)..."
    if ! {
        cmake -S "$MSG_SRC" -B "$BUILD_DIR" \
            -DCMAKE_PREFIX_PATH="$VENV" \
            -DCMAKE_INSTALL_PREFIX="$VENV" \
            -DPython3_EXECUTABLE="$VPY" \
            -DCMAKE_BUILD_TYPE=Release \
            -DBUILD_TESTING=OFF &&
        cmake --build "$BUILD_DIR" -j "$(nproc)" &&
        cmake --install "$BUILD_DIR"
    } >"$BUILD_DIR/build.log" 2>&1; then
        tail -n 40 "$BUILD_DIR/build.log" >&2
        die "vision_msgs build failed (full log: $BUILD_DIR/build.log)"
    fi
    echo "$MSG_HASH" >"$MSG_MARK"
    "$VPY" -c 'from vision_msgs.msg import Detection2DArray' \
        || die "vision_msgs was built but does not import"
    log "vision_msgs installed into $VENV"
fi

# ---------------------------------------------------------------------------------------------
# 5. The project: editable install (code changes apply at once) + share/ prefix for ament
# ---------------------------------------------------------------------------------------------
project_ok=1
if [ -f "$REPO/setup.py" ] || [ -f "$REPO/pyproject.toml" ]; then
    log "installing $PKG (editable)..."
    if ! pip_quiet install -q --disable-pip-version-check --no-deps -e "$REPO"; then
        project_ok=0
        echo "[setup] WARNING: 'pip install -e .' failed; tests still import $PKG from the checkout" >&2
    fi
else
    log "no setup.py/pyproject.toml yet: skipping the project install"
fi

# setup.py data_files are dropped by editable installs, so lay out the share/ prefix by hand:
# real directories holding one symlink per file into the checkout, as colcon's symlink install
# does. ros2launch and ament_index do not follow a symlinked directory, so whole-directory links
# break `ros2 launch trt_infer_ros detect.launch.py`; per-file links keep edits live.
SHARE="$VENV/share/$PKG"
mkdir -p "$VENV/share/ament_index/resource_index/packages"
: >"$VENV/share/ament_index/resource_index/packages/$PKG"
rm -rf "$SHARE"
mkdir -p "$SHARE"
for item in package.xml launch config resource models data; do
    [ -e "$REPO/$item" ] || continue
    if [ -f "$REPO/$item" ]; then
        ln -s "$REPO/$item" "$SHARE/$item"
        continue
    fi
    while IFS= read -r -d '' file; do
        rel="${file#"$REPO"/}"
        mkdir -p "$SHARE/$(dirname "$rel")"
        ln -s "$file" "$SHARE/$rel"
    done < <(find "$REPO/$item" -type f -not -path '*/__pycache__/*' -print0)
done
# `ros2 run` looks for executables in <prefix>/lib/<package>/.
"$VPY" - "$VENV" "$PKG" <<'EOF'
import os, sys
from importlib import metadata
venv, pkg = sys.argv[1], sys.argv[2]
libdir = os.path.join(venv, "lib", pkg)
try:
    eps = [ep for ep in metadata.distribution(pkg).entry_points if ep.group == "console_scripts"]
except metadata.PackageNotFoundError:
    eps = []
os.makedirs(libdir, exist_ok=True)
for ep in eps:
    in_bin, in_lib = os.path.join(venv, "bin", ep.name), os.path.join(libdir, ep.name)
    # pip puts console scripts in bin/ (PEP 660 editable) or, via setup.cfg, in lib/<pkg>/
    # (legacy develop): link whichever is missing to the real one, so both PATH and
    # `ros2 run` find every command.
    if os.path.isfile(in_bin) and not os.path.islink(in_bin):
        if os.path.lexists(in_lib):
            os.remove(in_lib)
        os.symlink(in_bin, in_lib)
    elif os.path.isfile(in_lib):
        if os.path.lexists(in_bin):
            os.remove(in_bin)
        os.symlink(in_lib, in_bin)
if eps:
    print(f"[setup] entry points: {' '.join(sorted(ep.name for ep in eps))}")
EOF

if [ "$project_ok" -eq 0 ] && [ "${CI:-}" = "true" ]; then
    die "project install failed"
fi
if [ "$project_ok" -eq 1 ]; then
    echo "$WANT" >"$STAMP"
fi
log "done: source scripts/env.sh to use $VENV"
