"""backbone_node + head_node on a camera topic; optionally the bundled photos as that camera.

  ros2 launch trt_infer_ros split.launch.py camera_topic:=/camera/image_raw
  ros2 launch trt_infer_ros split.launch.py start_source:=true
  ros2 launch trt_infer_ros split.launch.py model_path:=/models/yolov8n.onnx dla_core:=0

Both nodes take params_file (default: config/split.yaml). model_path, cut_tensors and backend
below override it for both nodes when given; dla_core for the backbone. Without
backbone_model/head_model the nodes split model_path into the cache on first start (or reuse it).
Results: /head_node/detections, /head_node/label_info, /head_node/image.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

BOTH = {"model_path": "whole model ONNX (empty: params_file's)",
        "cut_tensors": "comma-separated cut tensors (empty: params_file's)",
        "backend": "auto, onnxruntime, tinygrad or tensorrt (empty: params_file's)",
        "qos_reliability": "image subscription: best_effort or reliable (empty: params_file's)"}
BACKBONE_ONLY = {"dla_core": "DLA core for the backbone, -1 for none (empty: params_file's)",
                 "backbone_model": "backbone ONNX or engine (empty: params_file's)",
                 "transport": "auto, shared_memory or inline (empty: params_file's)"}
HEAD_ONLY = {"head_model": "head ONNX or engine (empty: params_file's)"}


def _given(context, names):
    values = {n: LaunchConfiguration(n).perform(context) for n in names}
    out = {n: v for n, v in values.items() if v != ""}
    if "dla_core" in out:
        out["dla_core"] = int(out["dla_core"])
    return out


def _pair(context):
    params_file = LaunchConfiguration("params_file")
    camera = ("image", LaunchConfiguration("camera_topic"))
    both = _given(context, BOTH)
    return [
        Node(package="trt_infer_ros", executable="backbone_node", name="backbone_node",
             output="screen", parameters=[params_file, {**both, **_given(context, BACKBONE_ONLY)}],
             remappings=[camera]),
        Node(package="trt_infer_ros", executable="head_node", name="head_node", output="screen",
             parameters=[params_file, {**both, **_given(context, HEAD_ONLY)}],
             remappings=[camera, ("features", "/backbone_node/features")]),
    ]


def generate_launch_description():
    share = get_package_share_directory("trt_infer_ros")
    args = [
        DeclareLaunchArgument("camera_topic", default_value="/camera/image_raw",
                              description="sensor_msgs/Image topic to detect on"),
        DeclareLaunchArgument("params_file",
                              default_value=os.path.join(share, "config", "split.yaml"),
                              description="backbone_node and head_node parameters"),
        DeclareLaunchArgument("start_source", default_value="false",
                              description="also start image_source_node on camera_topic"),
        DeclareLaunchArgument("source", default_value="",
                              description="images or video for image_source_node (empty = "
                                          "bundled photos)"),
        DeclareLaunchArgument("rate", default_value="5.0",
                              description="image_source_node frames per second"),
    ]
    args += [DeclareLaunchArgument(n, default_value="", description=t)
             for n, t in {**BOTH, **BACKBONE_ONLY, **HEAD_ONLY}.items()]
    source = Node(package="trt_infer_ros", executable="image_source_node",
                  name="image_source_node", output="screen",
                  condition=IfCondition(LaunchConfiguration("start_source")),
                  parameters=[{"source": LaunchConfiguration("source"),
                               "rate": LaunchConfiguration("rate")}],
                  remappings=[("image", LaunchConfiguration("camera_topic"))])
    return LaunchDescription(args + [OpaqueFunction(function=_pair), source])
