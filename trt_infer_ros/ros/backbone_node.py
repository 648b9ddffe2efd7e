"""backbone_node: sensor_msgs/Image in, each frame's feature tensors out (first half of a split
model; head_node runs the second).

Topics (remap as usual):
  image                      (sub, sensor_msgs/Image)        camera frames; QoS from
                                                             qos_reliability/qos_depth as
                                                             detector_node
  ~/features                 (pub, std_msgs/UInt8MultiArray) tensor bundles (README: "Split
                                                             pipeline"), reliable, depth 2
  ~/features/inline_request  (sub, std_msgs/String)          a head on another host asks for
                                                             inline bytes; depth 10

Each frame: preprocess, backbone model, then the features go into a shared-memory slot with a
handle in the message (same host) or inline in the message. Frames in flight are bounded: one
waiting image, `ring_slots` slots; when a slow head holds every slot the frame is skipped.
"""
from __future__ import annotations

import threading
import time

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String, UInt8MultiArray

from trt_infer_ros.ros.detector_parameters import declare_detector_parameters
from trt_infer_ros.ros.feature_messages import to_message
from trt_infer_ros.ros.feature_qos import FEATURES_QOS
from trt_infer_ros.ros.image_conversion import ImageConversionError, image_to_array
from trt_infer_ros.ros.latest_frame import LatestFrame
from trt_infer_ros.ros.lost_messages import LostMessageCounter
from trt_infer_ros.ros.parameters import check_updates, help_text
from trt_infer_ros.ros.qos import image_qos
from trt_infer_ros.ros.spin import run_node
from trt_infer_ros.ros.split_parameters import BACKBONE_PARAMETERS, load_backbone
from trt_infer_ros.transport.sender import FeatureSender

STATS_PERIOD_S = 10.0
WARMUP_FRAMES = 3
WORKER_STOP_S = 10.0


class BackboneNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__("backbone_node", **node_kwargs)
        params = declare_detector_parameters(self, BACKBONE_PARAMETERS)
        self._enabled = params["enable"]
        self._stage = load_backbone(params, self.get_logger().info)
        self._warm_up()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._sender = FeatureSender(params["transport"], params["ring_slots"],
                                     self.get_logger().info)
        self._features_pub = self.create_publisher(UInt8MultiArray, "~/features", FEATURES_QOS)
        self._inline_sub = self.create_subscription(
            String, "~/features/inline_request", self._on_inline_request, 10)
        self._frames = LatestFrame()
        self._lost = LostMessageCounter()
        self._image_sub = self.create_subscription(
            Image, "image", self._frames.put,
            image_qos(params["qos_reliability"], params["qos_depth"]),
            **self._lost.subscription_kwargs())
        self._stats = {"frames": 0, "bad": 0, "busy": 0, "latency_s": 0.0}
        self._stats_timer = self.create_timer(STATS_PERIOD_S, self._log_stats)
        self._worker = threading.Thread(target=self._work, name="backbone", daemon=True)
        self._worker.start()
        self.get_logger().info(f"ready: listening on {self._image_sub.topic_name}, features on "
                               f"{self._features_pub.topic_name} (transport "
                               f"{params['transport']})")

    def _warm_up(self) -> None:
        spec = self._stage.adapter.input_spec
        blank = np.zeros((spec.height, spec.width, 3), np.uint8)
        start = time.perf_counter()
        for _ in range(WARMUP_FRAMES):
            self._stage(blank, "bgr8")
        self.get_logger().info(f"warm-up done in {time.perf_counter() - start:.1f} s")

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        try:
            values, problem = check_updates(BACKBONE_PARAMETERS, parameters)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
            if "enable" in values:
                self._enabled = bool(values["enable"])
            return SetParametersResult(successful=True)
        except Exception as err:          # nothing may leave a callback
            return SetParametersResult(successful=False, reason=f"rejected: {err!r}"[:500])

    def _on_inline_request(self, msg: String) -> None:
        try:
            self._sender.inline_requested(msg.data[:200])
        except Exception as err:
            self.get_logger().warning(f"inline request ignored: {err!r}",
                                      throttle_duration_sec=5.0)

    def _work(self) -> None:
        while True:
            msg = self._frames.take()
            if msg is None:
                return
            if not self._enabled:
                continue
            try:
                self._process(msg)
            except Exception as err:
                if not self.context.ok():
                    return
                self.get_logger().error(f"publishing failed: {err!r}", throttle_duration_sec=5.0)

    def _process(self, msg: Image) -> None:
        start = time.perf_counter()
        try:
            features, transform = self._stage(image_to_array(msg), msg.encoding.lower())
        except ImageConversionError as err:
            self._stats["bad"] += 1
            self.get_logger().warning(f"dropped a frame: {err}", throttle_duration_sec=5.0)
            return
        except Exception as err:          # one bad frame must never stop the node
            self._stats["bad"] += 1
            self.get_logger().error(f"backbone failed on a frame: {err!r}",
                                    throttle_duration_sec=5.0)
            return
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        bundle = self._sender.encode(stamp, msg.header.frame_id, transform, features)
        if bundle is None:
            self._stats["busy"] += 1       # every slot still read by a slow head
            return
        self._features_pub.publish(to_message(bundle))
        self._stats["frames"] += 1
        self._stats["latency_s"] += time.perf_counter() - start

    def _log_stats(self) -> None:
        s = self._stats
        lost = self._lost.take()
        if not (s["frames"] or s["bad"] or s["busy"] or lost or self._frames.replaced):
            return
        mean_ms = 1000.0 * s["latency_s"] / max(s["frames"], 1)
        self.get_logger().info(
            f"{s['frames'] / STATS_PERIOD_S:.1f} frames/s, {mean_ms:.1f} ms per frame, "
            f"{self._frames.replaced} skipped for newer frames, {s['busy']} skipped while the "
            f"head held every slot, {lost} lost in transport, {s['bad']} rejected")
        s.update(frames=0, bad=0, busy=0, latency_s=0.0)
        self._frames.replaced = 0

    def destroy_node(self) -> None:
        if hasattr(self, "_worker"):
            self._frames.close()
            self._worker.join(timeout=WORKER_STOP_S)
        if hasattr(self, "_sender"):
            self._sender.close()
        super().destroy_node()


HELP = help_text("backbone_node", __doc__.strip(), BACKBONE_PARAMETERS)


def main(args=None) -> int:
    return run_node(BackboneNode, "backbone_node", args, help_text=HELP)


if __name__ == "__main__":
    raise SystemExit(main())
