"""image_source_node: replays a directory of images or a video file as a camera topic.

Topics: image (pub, sensor_msgs/Image; remap it to the camera topic you want to imitate),
/diagnostics (pub, diagnostic_msgs/DiagnosticArray, about 1 Hz: frames read and published,
rates against `rate`, read/publish latency).
"""
from __future__ import annotations

import time
from pathlib import Path

from rclpy.node import Node
from sensor_msgs.msg import Image

from trt_infer_ros.resources import sample_images_dir
from trt_infer_ros.ros.diagnostics import NodeDiagnostics
from trt_infer_ros.ros.frame_reader import check_source, convert_bgr, iterate_frames
from trt_infer_ros.ros.image_conversion import array_to_image
from trt_infer_ros.ros.parameters import ParamSpec, declare_all, help_text
from trt_infer_ros.ros.qos import RELIABILITY_CHOICES, image_qos
from trt_infer_ros.ros.spin import run_node

ENCODINGS = ("bgr8", "rgb8", "mono8")

IMAGE_SOURCE_PARAMETERS = (
    ParamSpec("source", "", "directory of images or a video file; empty = the bundled sample "
              "photos", read_only=True),
    ParamSpec("rate", 10.0, "frames per second", read_only=True, float_range=(0.01, 1000.0)),
    ParamSpec("loop", True, "start again after the last frame", read_only=True),
    ParamSpec("frame_id", "camera", "header.frame_id of every frame", read_only=True),
    ParamSpec("encoding", "bgr8", "published encoding", read_only=True, choices=ENCODINGS),
    ParamSpec("qos_reliability", "reliable", "publisher reliability (reliable also feeds "
              "best_effort readers)", read_only=True, choices=RELIABILITY_CHOICES),
)


class ImageSourceNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__("image_source_node", **node_kwargs)
        p = declare_all(self, IMAGE_SOURCE_PARAMETERS)
        source, rate, reliability = p["source"], p["rate"], p["qos_reliability"]
        self._loop, self._frame_id, self._encoding = p["loop"], p["frame_id"], p["encoding"]
        self._source = Path(source) if source else sample_images_dir()
        check_source(self._source)

        self._publisher = self.create_publisher(Image, "image", image_qos(reliability, 1))
        self._frames = iterate_frames(self._source)
        self.published = 0
        self.finished = False
        self._diagnostics = NodeDiagnostics(
            self, f"image source {self._source}", ("read", "publish"),
            expected_rate=lambda: 0.0 if self.finished else rate, logged=("rejected",))
        self._timer = self.create_timer(1.0 / rate, self._publish_next)
        self.get_logger().info(
            f"publishing {self._source} on {self._publisher.topic_name} at {rate:g} Hz "
            f"({self._encoding}, frame_id {self._frame_id!r}, "
            f"{'looping' if self._loop else 'once'})")

    def _publish_next(self) -> None:
        try:
            self._publish_one()
        except Exception as err:            # a timer callback must never end the node
            if not self.context.ok():
                return                      # shutting down: the publisher went before the timer
            self._diagnostics.count("rejected")
            self.get_logger().error(f"frame not published: {err!r}", throttle_duration_sec=5.0)

    def _publish_one(self) -> None:
        start = time.perf_counter()
        frame = next(self._frames, None)
        if frame is None and self._loop and self.published > 0:
            self._frames = iterate_frames(self._source)
            frame = next(self._frames, None)
        if frame is None:
            self._timer.cancel()
            self.finished = True
            self.get_logger().info(f"source exhausted after {self.published} frames")
            return
        self._diagnostics.count("in")
        msg = array_to_image(convert_bgr(frame, self._encoding), self._encoding)
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self._frame_id
        read = time.perf_counter()
        self._publisher.publish(msg)
        self.published += 1
        self._diagnostics.frame_done({"read": (read - start) * 1e3,
                                      "publish": (time.perf_counter() - read) * 1e3})


HELP = help_text("image_source_node", __doc__.strip(), IMAGE_SOURCE_PARAMETERS)


def main(args=None) -> int:
    return run_node(ImageSourceNode, "image_source_node", args, help_text=HELP)


if __name__ == "__main__":
    raise SystemExit(main())
