"""Graph benchmark: trt_infer_ros_bench starts the nodes under test itself (as their own
processes, unchanged), plays the bundled photos at a fixed rate, searches the peak rate.

  ros2 launch trt_infer_ros bench.launch.py
  ros2 launch trt_infer_ros bench.launch.py graph:=split rate:=30 drop_limit:=0.01 output:=/tmp/b
  ros2 launch trt_infer_ros bench.launch.py params:="backend=onnxruntime device=CPU"

Results (result.json, summary.md, PNG plots) go to `output`; `trt_infer_ros_plot` redraws the
power/load/temperature timeline of a result.
"""
import os
import shutil

from ament_index_python.packages import get_package_prefix
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration

ARGUMENTS = {
    "graph": ("detector", "detector (detector_node) or split (backbone_node + head_node)"),
    "model_path": ("", "model under test (empty: the bundled CenterNet)"),
    "rate": ("10.0", "camera rate of the fixed-rate run (Hz)"),
    "frames": ("100", "measured frames per run"),
    "drop_limit": ("0.05", "largest fraction of unanswered frames a sustainable rate may have"),
    "search": ("true", "search the peak sustainable input rate"),
    "power": ("auto", "auto, tegrastats, nvml or none"),
    "params": ("", "node parameters, space separated NAME=VALUE"),
    "output": ("", "result directory (empty: bench_output/<graph>-<time>)"),
}


def _command() -> str:
    """Where `ros2 run` finds the package's executables (<prefix>/lib/trt_infer_ros), else PATH."""
    installed = os.path.join(get_package_prefix("trt_infer_ros"), "lib", "trt_infer_ros",
                             "trt_infer_ros_bench")
    return installed if os.access(installed, os.X_OK) else (shutil.which("trt_infer_ros_bench")
                                                            or "trt_infer_ros_bench")


def _bench(context):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    cmd = [_command(), "--graph", value["graph"], "--rate", value["rate"],
           "--frames", value["frames"], "--drop-limit", value["drop_limit"],
           "--power", value["power"]]
    if value["model_path"]:
        cmd += ["--model", value["model_path"]]
    if value["output"]:
        cmd += ["--output", value["output"]]
    if value["search"].lower() in ("false", "0", "no"):
        cmd.append("--no-search")
    for param in value["params"].split():
        cmd += ["--param", param]
    return [ExecuteProcess(cmd=cmd, output="screen", name="trt_infer_ros_bench",
                           on_exit=Shutdown(reason="benchmark finished"))]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, (default, text) in ARGUMENTS.items()] + [OpaqueFunction(function=_bench)])
