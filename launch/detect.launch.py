"""Detector on a camera topic; optionally the bundled photos replayed as that camera.

  ros2 launch trt_infer_ros detect.launch.py camera_topic:=/camera/image_raw
  ros2 launch trt_infer_ros detect.launch.py start_source:=true
  ros2 launch trt_infer_ros detect.launch.py model_path:=/models/yolov8n.onnx qos_reliability:=reliable

detector_node's parameters come from params_file (default: the package's config/detector.yaml);
the detector arguments below override it only when given (non-empty).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

DETECTOR_OVERRIDES = {
    "model_path": "ONNX model or TensorRT engine (empty: params_file's)",
    "model_type": "output layout of the model (empty: params_file's)",
    "backend": "auto, onnxruntime, tinygrad or tensorrt (empty: params_file's)",
    "labels": "class names file (empty: params_file's)",
    "qos_reliability": "image subscription: best_effort or reliable (empty: params_file's)",
}


def _detector(context):
    overrides = {name: LaunchConfiguration(name).perform(context) for name in DETECTOR_OVERRIDES}
    overrides = {name: value for name, value in overrides.items() if value != ""}
    return [Node(package="trt_infer_ros", executable="detector_node", name="detector_node",
                 output="screen",
                 parameters=[LaunchConfiguration("params_file"), overrides],
                 remappings=[("image", LaunchConfiguration("camera_topic"))])]


def generate_launch_description():
    share = get_package_share_directory("trt_infer_ros")
    camera_topic = LaunchConfiguration("camera_topic")
    args = [
        DeclareLaunchArgument("camera_topic", default_value="/camera/image_raw",
                              description="sensor_msgs/Image topic to detect on"),
        DeclareLaunchArgument("params_file",
                              default_value=os.path.join(share, "config", "detector.yaml"),
                              description="detector_node parameters"),
        DeclareLaunchArgument("start_source", default_value="false",
                              description="also start image_source_node publishing on camera_topic"),
        DeclareLaunchArgument("source", default_value="",
                              description="image directory or video for image_source_node "
                                          "(empty = bundled photos)"),
        DeclareLaunchArgument("rate", default_value="5.0",
                              description="image_source_node frames per second"),
    ]
    args += [DeclareLaunchArgument(name, default_value="", description=text)
             for name, text in DETECTOR_OVERRIDES.items()]
    source = Node(package="trt_infer_ros", executable="image_source_node",
                  name="image_source_node", output="screen",
                  condition=IfCondition(LaunchConfiguration("start_source")),
                  parameters=[{"source": LaunchConfiguration("source"),
                               "rate": LaunchConfiguration("rate")}],
                  remappings=[("image", camera_topic)])
    return LaunchDescription(args + [OpaqueFunction(function=_detector), source])
