#!/usr/bin/env bash
# Run the detection demo in the project venv:  bash scripts/demo.sh [demo args...]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO/scripts/setup_env.sh"
# shellcheck disable=SC1091
source "$REPO/scripts/env.sh"
cd "$REPO"
exec python -m trt_infer_ros.demo "$@"
