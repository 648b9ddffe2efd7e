"""backbone_node + head_node on a camera topic; optionally the bundled photos as that camera.

  ros2 launch trt_infer_ros split.launch.py camera_topic:=/camera/image_raw
  ros2 launch trt_infer_ros split.launch.py start_source:=true
  ros2 launch trt_infer_ros split.launch.py model_path:=/models/yolov8n.onnx dla_core:=0

Both nodes take params_file (default: config/split.yaml). model_path, model_type, input_size,
cut_tensors, backend and qos_reliability below override it for both nodes when given;
dla_core, backbone_model and transport for the backbone; head_model and labels for the head.
Without backbone_model/head_model the nodes split model_path into the cache on first start (or
reuse it).
Results: /head_node/detections, /head_node/label_info, /head_node/image.
"""
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from trt_infer_ros.launch_support import (camera_arguments, dds_profile, dds_profile_argument,
                                          given_overrides, image_source, override_arguments)

BOTH = {"model_path": "whole model ONNX (empty: params_file's)",
        "model_type": "output layout, auto or a family (empty: params_file's)",
        "input_size": "640 or WIDTHxHEIGHT for a model without a fixed size (empty: "
                      "params_file's)",
        "cut_tensors": "comma-separated cut tensors (empty: params_file's)",
        "backend": "auto, onnxruntime, tinygrad or tensorrt (empty: params_file's)",
        "qos_reliability": "image subscription: best_effort or reliable (empty: params_file's)"}
BACKBONE_ONLY = {"dla_core": "DLA core for the backbone, -1 for none (empty: params_file's)",
                 "backbone_model": "backbone ONNX or engine (empty: params_file's)",
                 "transport": "auto, shared_memory, cuda_ipc or inline (empty: params_file's)"}
HEAD_ONLY = {"head_model": "head ONNX or engine (empty: params_file's)",
             "labels": "class names file (empty: params_file's)"}


def _pair(context):
    params_file = LaunchConfiguration("params_file")
    camera = ("image", LaunchConfiguration("camera_topic"))
    both = given_overrides(context, BOTH)
    backbone = given_overrides(context, BACKBONE_ONLY, integers=("dla_core",))
    return [
        Node(package="trt_infer_ros", executable="backbone_node", name="backbone_node",
             output="screen", parameters=[params_file, {**both, **backbone}],
             remappings=[camera]),
        Node(package="trt_infer_ros", executable="head_node", name="head_node", output="screen",
             parameters=[params_file, {**both, **given_overrides(context, HEAD_ONLY)}],
             remappings=[camera, ("features", "/backbone_node/features")]),
    ]


def generate_launch_description():
    share = get_package_share_directory("trt_infer_ros")
    args = camera_arguments(share, "split.yaml", "backbone_node and head_node parameters")
    args += override_arguments({**BOTH, **BACKBONE_ONLY, **HEAD_ONLY}) + [dds_profile_argument()]
    return LaunchDescription(args + [dds_profile(), OpaqueFunction(function=_pair),
                                     image_source()])
