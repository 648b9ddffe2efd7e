"""Detector on a camera topic; optionally the bundled photos replayed as that camera.

  ros2 launch trt_infer_ros detect.launch.py camera_topic:=/camera/image_raw
  ros2 launch trt_infer_ros detect.launch.py start_source:=true
  ros2 launch trt_infer_ros detect.launch.py model_path:=/models/yolov8n.onnx qos_reliability:=reliable

detector_node's parameters come from params_file (default: the package's config/detector.yaml);
the detector arguments below override it only when given (non-empty).
"""
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from trt_infer_ros.launch_support import (camera_arguments, given_overrides, image_source,
                                          override_arguments)

DETECTOR_OVERRIDES = {
    "model_path": "ONNX model or TensorRT engine (empty: params_file's)",
    "model_type": "output layout of the model (empty: params_file's)",
    "backend": "auto, onnxruntime, tinygrad or tensorrt (empty: params_file's)",
    "precision": "auto, fp32 or fp16 for the GPU pipeline (empty: params_file's)",
    "labels": "class names file (empty: params_file's)",
    "qos_reliability": "image subscription: best_effort or reliable (empty: params_file's)",
}


def _detector(context):
    return [Node(package="trt_infer_ros", executable="detector_node", name="detector_node",
                 output="screen",
                 parameters=[LaunchConfiguration("params_file"),
                             given_overrides(context, DETECTOR_OVERRIDES)],
                 remappings=[("image", LaunchConfiguration("camera_topic"))])]


def generate_launch_description():
    share = get_package_share_directory("trt_infer_ros")
    args = camera_arguments(share, "detector.yaml", "detector_node parameters")
    args += override_arguments(DETECTOR_OVERRIDES)
    return LaunchDescription(args + [OpaqueFunction(function=_detector), image_source()])
