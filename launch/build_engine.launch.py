"""Build a TensorRT engine offline with engine_builder_node, then exit with its status.

  ros2 launch trt_infer_ros build_engine.launch.py onnx:=/path/model.onnx precision:=fp16
  ros2 launch trt_infer_ros build_engine.launch.py onnx:=/path/model.onnx precision:=int8 \
      calibration_images:=/data/calib dla_core:=0
  ros2 launch trt_infer_ros build_engine.launch.py params_file:=/path/my_build.yaml

Every parameter lives in params_file (default: the package's config/build.yaml); the launch
arguments below override it only when given (non-empty).

Exit status: `ros2 launch` returns 0 or 1 only (LaunchService.run ends with 1 when an exception
ends the launch, else 0), so a failed build cannot pass its own status through. When
engine_builder_node exits non-zero this launch logs "engine_builder_node failed with status N:
<meaning>" and raises, which makes `ros2 launch` exit with 1. For the exact status (2 bad
parameters, 3 no TensorRT, ...) run the node itself with `ros2 run`.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.logging import get_logger
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from trt_infer_ros.engine.cli import exit_meaning
from trt_infer_ros.launch_support import given_overrides, override_arguments

OVERRIDES = {
    "onnx": "ONNX model to build",
    "engine": "engine output path (empty: derived in cache_dir)",
    "cache_dir": "directory for derived engine paths",
    "precision": "fp32, fp16, int8 or best",
    "dla_core": "DLA core, -1 for the GPU",
    "calibration_images": "directory of INT8 calibration images",
    "calibration_bag": "rosbag2 with calibration images",
    "calibration_topic": "image topic in calibration_bag",
    "calibration_cache": "INT8 calibration cache file",
    "timing_cache": "timing cache file (read and written back)",
    "input_shape": "static input shape, e.g. 1x3x640x640",
    "model_type": "adapter whose preprocessing calibration uses",
}


class EngineBuildFailed(RuntimeError):
    """Ends the launch as a failure: ros2 launch's only non-zero exit status (1) comes from an
    exception raised while the launch runs."""


def on_builder_exit(event, context):
    """Shut down after a successful build; end the launch as failed after any other status."""
    status = event.returncode
    if status == 0:
        return [Shutdown(reason="engine_builder_node finished")]
    message = f"engine_builder_node failed with status {status}: {exit_meaning(status)}"
    get_logger("build_engine.launch").error(message)
    raise EngineBuildFailed(f"the engine build failed (status {status}); ros2 launch exits with 1")


def _builder(context):
    overrides = given_overrides(context, OVERRIDES, integers=("dla_core",))
    return [Node(package="trt_infer_ros", executable="engine_builder_node",
                 name="engine_builder_node", output="screen",
                 parameters=[LaunchConfiguration("params_file"), overrides],
                 on_exit=on_builder_exit)]


def generate_launch_description():
    share = get_package_share_directory("trt_infer_ros")
    args = [DeclareLaunchArgument("params_file",
                                  default_value=os.path.join(share, "config", "build.yaml"),
                                  description="engine_builder_node parameters")]
    args += override_arguments(OVERRIDES)
    return LaunchDescription(args + [OpaqueFunction(function=_builder)])
