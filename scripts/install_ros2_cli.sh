#!/usr/bin/env bash
# Add the ROS 2 command line (ros2 launch / run / param / topic / node / pkg, launch_ros) to the
# project venv. A ROS distro install has it already; the PyPI wheels of ROS 2 that
# scripts/setup_env.sh installs do not, so this builds it from the upstream sources.
#
#   bash scripts/install_ros2_cli.sh               # after bash scripts/setup_env.sh
#   source scripts/env.sh && ros2 launch trt_infer_ros detect.launch.py start_source:=true
#
# Sources: the five upstream repositories below at ROS2_CLI_REF (default kilted, the release of
# the wheels), cloned from ROS2_CLI_URL, where {name} stands for the repository name; point it at
# local clones on a machine without network access (ROS2_CLI_URL=/srv/git/{name}).
# Needs git, cmake and a C++ compiler (setup_env.sh installs the last two): composition_interfaces,
# imported by launch_ros, is a message package and is built like vision_msgs.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEFAULT_URL="https://github.com/ros2/{name}.git"
URL="${ROS2_CLI_URL:-$DEFAULT_URL}"
REF="${ROS2_CLI_REF:-kilted}"

# shellcheck disable=SC1091
source "$REPO/scripts/env.sh"
VENV="${VIRTUAL_ENV:?run bash scripts/setup_env.sh first}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

for name in launch launch_ros ros2cli rosidl_runtime_py rcl_interfaces; do
    src="${URL//\{name\}/$name}"
    echo "[ros2 cli] $name ($REF) from $src"
    git clone -q --depth 1 --branch "$REF" "$src" "$WORK/$name" 2>/dev/null \
        || git clone -q "$src" "$WORK/$name"       # a local bare clone: any ref
    git -C "$WORK/$name" checkout -q "$REF"
done

# The pure-Python packages declare ROS dependencies by their colcon names (ament_index_python,
# ...), which exist in the venv only as ros-* wheels: install them without pip's resolver.
python -m pip install -q --disable-pip-version-check \
    osrf-pycommon importlib-metadata psutil argcomplete netifaces

echo "[ros2 cli] building composition_interfaces..."
cmake -S "$WORK/rcl_interfaces/composition_interfaces" -B "$WORK/build" \
    -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DPython3_EXECUTABLE="$VENV/bin/python" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
    >"$WORK/cmake.log" 2>&1 \
    && cmake --build "$WORK/build" -j "$(nproc)" >>"$WORK/cmake.log" 2>&1 \
    && cmake --install "$WORK/build" >>"$WORK/cmake.log" 2>&1 \
    || { tail -30 "$WORK/cmake.log" >&2; exit 1; }

for pkg in launch/launch launch/launch_xml launch/launch_yaml launch_ros/launch_ros \
           rosidl_runtime_py ros2cli/ros2cli ros2cli/ros2pkg ros2cli/ros2node \
           ros2cli/ros2service ros2cli/ros2param ros2cli/ros2topic ros2cli/ros2run \
           ros2cli/ros2interface launch_ros/ros2launch; do
    python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
        "$WORK/$pkg"
done
echo "[ros2 cli] installed: $(command -v ros2)"
