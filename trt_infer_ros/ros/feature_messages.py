"""Tensor bundles in std_msgs/UInt8MultiArray.

Why this type: it ships with every ROS 2 install (std_msgs), its uint8[] field maps to a byte
buffer without per-element conversion on either side, and `ros2 topic echo` still shows what it
is: layout.dim[0].label names the format and version ("trt_infer_ros/tensor_bundle/v1") and its
size the bundle's length. sensor_msgs/Image or PointCloud2 would claim a meaning the features
do not have. The image header travels inside the bundle (the message type has none).
"""
from __future__ import annotations

from std_msgs.msg import MultiArrayDimension, UInt8MultiArray

from trt_infer_ros.transport.bundle import VERSION

LABEL = f"trt_infer_ros/tensor_bundle/v{VERSION}"


def to_message(bundle) -> UInt8MultiArray:
    msg = UInt8MultiArray()
    msg.layout.dim = [MultiArrayDimension(label=LABEL, size=len(bundle), stride=len(bundle))]
    msg.data = bundle
    return msg


def payload(msg: UInt8MultiArray):
    """The bundle bytes of a message (a view, no copy)."""
    return memoryview(msg.data)
