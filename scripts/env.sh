# shellcheck shell=bash
# Source me:  source scripts/env.sh
# Activates the project venv (made by scripts/setup_env.sh) and sets the ROS 2 environment that a
# `source /opt/ros/<distro>/setup.bash` would set for the pip-wheel install of ROS 2 Kilted.

_trt_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -x "$_trt_repo/.venv/bin/python" ]; then
    echo "[env] $_trt_repo/.venv is missing: run bash scripts/setup_env.sh first" >&2
    unset _trt_repo
    return 1 2>/dev/null || exit 1
fi

# shellcheck disable=SC1091
VIRTUAL_ENV_DISABLE_PROMPT="${VIRTUAL_ENV_DISABLE_PROMPT:-1}" source "$_trt_repo/.venv/bin/activate"

# Prepend $1 to the colon list named $2 unless it is already there.
_trt_prepend() {
    local cur="${!2:-}"
    case ":$cur:" in
        *":$1:"*) ;;
        *) export "$2=$1${cur:+:$cur}" ;;
    esac
}

# The wheels never set AMENT_PREFIX_PATH; the venv is the install prefix (share/<pkg>, ament index).
_trt_prepend "$VIRTUAL_ENV" AMENT_PREFIX_PATH
_trt_prepend "$VIRTUAL_ENV" CMAKE_PREFIX_PATH

# Shared libraries of the wheels: <venv>/lib (message packages, vision_msgs) and the bundled
# site-packages/ros_*.libs. The wheels' bootstrap .pth re-executes every python process to set
# this; with it set here and the guard variable on, python starts once.
_trt_site="$VIRTUAL_ENV/lib/python3.11/site-packages"
for _trt_d in "$_trt_site"/ros_*.libs; do
    [ -d "$_trt_d" ] && _trt_prepend "$_trt_d" LD_LIBRARY_PATH
done
_trt_prepend "$VIRTUAL_ENV/lib" LD_LIBRARY_PATH
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1

# Middleware: Fast DDS (the only RMW shipped as wheels). LARGE_DATA moves big messages (images,
# feature tensors) over shared memory/TCP instead of fragmented UDP: 640x480 in ~3 ms vs 14-47 ms.
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export FASTDDS_BUILTIN_TRANSPORTS="${FASTDDS_BUILTIN_TRANSPORTS:-LARGE_DATA}"
# Discovery stays on this host unless the user says otherwise (Jazzy+ replacement for
# ROS_LOCALHOST_ONLY, which is deprecated there). ROS_DOMAIN_ID is left to the user;
# scripts/test.sh picks a free-looking one per run.
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"

unset _trt_repo _trt_site _trt_d
unset -f _trt_prepend
