"""build_engine.launch.py: a failed build ends the launch as a failure. LaunchService.run (what
`ros2 launch` returns) gives 0 or 1 only, so the launch logs the node's status and meaning and
ends with 1. Runs where the upstream `launch` and `launch_ros` packages are importable."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("launch", reason="the upstream launch package is not installed "
                    "(../shared/tools/ros2_cli.sh installs it)")
pytest.importorskip("launch_ros", reason="the upstream launch_ros package is not installed")
pytest.importorskip("ament_index_python", reason="ament_index_python is not installed")

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "build_engine.launch.py"


def load_launch_file():
    spec = importlib.util.spec_from_file_location("build_engine_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Exited:
    def __init__(self, returncode):
        self.returncode = returncode


def test_success_shuts_the_launch_down():
    from launch.actions import Shutdown
    module = load_launch_file()
    (action,) = module.on_builder_exit(Exited(0), None)
    assert isinstance(action, Shutdown)


@pytest.mark.parametrize("status,meaning", [(2, "bad parameters"), (3, "TensorRT is not"),
                                            (130, "interrupted by SIGINT"),
                                            (-9, "killed by SIGKILL")])
def test_a_failed_build_raises_to_end_the_launch_with_1(status, meaning):
    module = load_launch_file()
    with pytest.raises(module.EngineBuildFailed, match=f"status {status}"):
        module.on_builder_exit(Exited(status), None)
    from trt_infer_ros.engine.cli import exit_meaning
    assert exit_meaning(status).startswith(meaning)


LAUNCH_CODE = """
import sys
import launch
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import AnyLaunchDescriptionSource
service = launch.LaunchService(argv=sys.argv[2:])
service.include_launch_description(launch.LaunchDescription([IncludeLaunchDescription(
    AnyLaunchDescriptionSource(sys.argv[1]),
    launch_arguments=[tuple(a.split(':=', 1)) for a in sys.argv[2:]])]))
sys.exit(service.run())
"""


def test_launch_service_returns_1_and_logs_the_status_when_the_build_fails(tmp_path):
    """What `ros2 launch trt_infer_ros build_engine.launch.py onnx:=...` runs, in a process."""
    missing = tmp_path / "missing.onnx"
    proc = subprocess.run([sys.executable, "-c", LAUNCH_CODE, str(LAUNCH_FILE),
                           f"onnx:={missing}"], capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    if "executable 'engine_builder_node' not found" in output:
        pytest.skip("trt_infer_ros is not installed where launch_ros looks (colcon or "
                    "scripts/setup_env.sh)")
    assert proc.returncode == 1, output
    assert "engine_builder_node failed with status 2: bad parameters" in output
    assert f"onnx: not found: '{missing}'" in output
