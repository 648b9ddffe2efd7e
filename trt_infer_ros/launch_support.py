"""What the package's launch files share: the camera arguments, the optional image source, and
node parameters that a launch argument overrides only when it is given.

Imported by the files in launch/ (which ros2 launch loads by path, so shared code lives here).
"""
from __future__ import annotations

import os
from typing import Iterable

from launch.actions import (DeclareLaunchArgument, LogInfo, OpaqueFunction,
                            SetEnvironmentVariable, UnsetEnvironmentVariable)
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from trt_infer_ros.resources import fastdds_camera_profile


def override_arguments(descriptions: dict) -> list:
    """One launch argument per parameter, empty by default: empty keeps the params file's value."""
    return [DeclareLaunchArgument(name, default_value="", description=text)
            for name, text in descriptions.items()]


def given_overrides(context, names: Iterable[str], integers: Iterable[str] = ()) -> dict:
    """The parameters whose launch argument was given (non-empty), typed for the node: a launch
    argument is text, and an integer parameter refuses text."""
    values = {n: LaunchConfiguration(n).perform(context) for n in names}
    return {n: int(v) if n in integers else v for n, v in values.items() if v != ""}


def camera_arguments(share: str, params_file: str, params_description: str) -> list:
    """camera_topic, params_file and the image source's start_source, source and rate."""
    return [
        DeclareLaunchArgument("camera_topic", default_value="/camera/image_raw",
                              description="sensor_msgs/Image topic to detect on"),
        DeclareLaunchArgument("params_file",
                              default_value=os.path.join(share, "config", params_file),
                              description=params_description),
        DeclareLaunchArgument("start_source", default_value="false",
                              description="also start image_source_node publishing on "
                                          "camera_topic"),
        DeclareLaunchArgument("source", default_value="",
                              description="image directory or video for image_source_node "
                                          "(empty = bundled photos)"),
        DeclareLaunchArgument("rate", default_value="5.0",
                              description="image_source_node frames per second"),
    ]


CAMERA_FRAMES_PROFILE = "camera_frames"


def dds_profile_argument() -> DeclareLaunchArgument:
    return DeclareLaunchArgument(
        "dds_profile", default_value="",
        description="Fast DDS transport of the launched nodes: empty keeps the environment's; "
                    f"{CAMERA_FRAMES_PROFILE}: the package's profile for camera frames on one "
                    "host (config/fastdds_camera_frames.xml; 16 MiB of /dev/shm per process; "
                    "see the README, 'Camera frames between processes'); or the path of a "
                    "Fast DDS XML profiles file")


def dds_profile() -> OpaqueFunction:
    """The environment the nodes launched after it get for `dds_profile` (Fast DDS reads it when
    a process starts, so it is set here rather than by a parameter). The profile replaces any
    FASTDDS_BUILTIN_TRANSPORTS, as the transport benchmark sets them: the two never mix."""
    def actions(context) -> list:
        value = LaunchConfiguration("dds_profile").perform(context).strip()
        if not value:
            return []
        path = (str(fastdds_camera_profile()) if value == CAMERA_FRAMES_PROFILE
                else os.path.abspath(os.path.expanduser(value)))
        if not os.path.isfile(path):
            raise ValueError(f"dds_profile {value!r}: no such file {path!r}; give "
                             f"{CAMERA_FRAMES_PROFILE} or the path of a Fast DDS XML profiles "
                             "file")
        notes = [LogInfo(msg=f"Fast DDS profile {path} for the launched nodes")]
        rmw = context.environment.get("RMW_IMPLEMENTATION", "")
        if rmw and "fastrtps" not in rmw and "fastdds" not in rmw:
            notes.append(LogInfo(msg=f"RMW_IMPLEMENTATION is {rmw}: dds_profile configures Fast "
                                     "DDS only and has no effect on it"))
        return [SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", path),
                UnsetEnvironmentVariable("FASTDDS_BUILTIN_TRANSPORTS")] + notes
    return OpaqueFunction(function=actions)


def image_source() -> Node:
    """image_source_node on camera_topic, when start_source is true."""
    return Node(package="trt_infer_ros", executable="image_source_node", name="image_source_node",
                output="screen", condition=IfCondition(LaunchConfiguration("start_source")),
                parameters=[{"source": LaunchConfiguration("source"),
                             "rate": LaunchConfiguration("rate")}],
                remappings=[("image", LaunchConfiguration("camera_topic"))])
