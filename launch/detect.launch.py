"""Detector on a camera topic; optionally the bundled photos replayed as that camera.

  ros2 launch trt_infer_ros detect.launch.py camera_topic:=/camera/image_raw
  ros2 launch trt_infer_ros detect.launch.py start_source:=true
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory("trt_infer_ros")
    camera_topic = LaunchConfiguration("camera_topic")
    return LaunchDescription([
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
        Node(package="trt_infer_ros", executable="detector_node", name="detector_node",
             output="screen",
             parameters=[LaunchConfiguration("params_file")],
             remappings=[("image", camera_topic)]),
        Node(package="trt_infer_ros", executable="image_source_node", name="image_source_node",
             output="screen", condition=IfCondition(LaunchConfiguration("start_source")),
             parameters=[{"source": LaunchConfiguration("source"),
                          "rate": LaunchConfiguration("rate")}],
             remappings=[("image", camera_topic)]),
    ])
