"""Detector on a camera topic, on a camera it captures itself, or on the bundled photos replayed
as that camera.

  ros2 launch trt_infer_ros detect.launch.py camera_topic:=/camera/image_raw
  ros2 launch trt_infer_ros detect.launch.py camera_topic:=/camera/image_raw
      image_transport:=compressed
  ros2 launch trt_infer_ros detect.launch.py source:=/dev/video0 frame_id:=front_camera
  ros2 launch trt_infer_ros detect.launch.py start_source:=true
  ros2 launch trt_infer_ros detect.launch.py model_path:=/models/yolov8n.onnx
      qos_reliability:=reliable
  ros2 launch trt_infer_ros detect.launch.py start_source:=true dds_profile:=camera_frames

`source` is captured by detector_node itself (a V4L2 device, GStreamer pipeline, video file or
RTSP URL), unless start_source:=true: then image_source_node replays it (a directory of images or
a video) on camera_topic.

detector_node's parameters come from params_file (default: the package's config/detector.yaml);
the detector arguments below override it only when given (non-empty).
"""
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from trt_infer_ros.launch_support import (camera_arguments, dds_profile, dds_profile_argument,
                                          given_overrides, image_source, override_arguments)

DETECTOR_OVERRIDES = {
    "model_path": "ONNX model or TensorRT engine (empty: params_file's)",
    "model_type": "output layout of the model (empty: params_file's)",
    "backend": "auto, onnxruntime, tinygrad or tensorrt (empty: params_file's)",
    "device": "CPU, CUDA, CUDA:<n>, DLA0 or DLA1 (empty: params_file's)",
    "precision": "auto, fp32 or fp16 for the GPU pipeline (empty: params_file's)",
    "labels": "class names file (empty: params_file's)",
    "qos_reliability": "image subscription: best_effort or reliable (empty: params_file's)",
    "image_transport": "raw subscribes to camera_topic, compressed to <camera_topic>/compressed "
                       "(empty: params_file's)",
    "frame_id": "header.frame_id of frames captured from source (empty: params_file's)",
    "camera_info_file": "calibration YAML published as ~/camera_info with frames captured from "
                        "source (empty: params_file's)",
}
SOURCE_DESCRIPTION = ("frames captured by detector_node itself: a V4L2 device (/dev/video0 or "
                      "0), a GStreamer pipeline, a video file or an RTSP URL; with "
                      "start_source:=true, the image directory or video image_source_node "
                      "replays on camera_topic (empty: params_file's source; bundled photos "
                      "for image_source_node)")
TRUE_WORDS = ("true", "1", "yes", "on")


def _detector(context):
    parameters = given_overrides(context, DETECTOR_OVERRIDES)
    replayed = LaunchConfiguration("start_source").perform(context).strip().lower() in TRUE_WORDS
    source = LaunchConfiguration("source").perform(context)
    if source and not replayed:
        parameters["source"] = source
    notes = []
    if replayed and parameters.get("image_transport") == "compressed":
        notes.append(LogInfo(msg="image_source_node publishes raw frames only: with "
                                 "image_transport:=compressed the detector waits for another "
                                 "publisher on <camera_topic>/compressed"))
    return notes + [Node(package="trt_infer_ros", executable="detector_node", name="detector_node",
                 output="screen",
                 parameters=[LaunchConfiguration("params_file"), parameters],
                 remappings=[("image", LaunchConfiguration("camera_topic"))])]


def _arguments(share: str) -> list:
    """The camera arguments, with `source` described for both of its users."""
    args = [a for a in camera_arguments(share, "detector.yaml", "detector_node parameters")
            if a.name != "source"]
    args.append(DeclareLaunchArgument("source", default_value="", description=SOURCE_DESCRIPTION))
    return args + override_arguments(DETECTOR_OVERRIDES) + [dds_profile_argument()]


def generate_launch_description():
    share = get_package_share_directory("trt_infer_ros")
    return LaunchDescription(_arguments(share) + [dds_profile(),
                                                  OpaqueFunction(function=_detector),
                                                  image_source()])
