"""head_node: feature tensors in (from backbone_node), exactly what detector_node publishes out.

Topics (remap as usual):
  features                  (sub, std_msgs/UInt8MultiArray)  tensor bundles; reliable, depth 2
  <features>/inline_request (pub, std_msgs/String)           asks the backbone for inline bytes
                                                             when its shared memory is not
                                                             reachable from here
  image                     (sub, sensor_msgs/Image)         only while ~/image has subscribers
                                                             (the overlay's pixels); QoS from
                                                             qos_reliability/qos_depth
  ~/detections, ~/label_info, ~/image                        as detector_node (DetectionOutput)

Parameters are detector_node's (same names, ranges, live tuning) plus the split's own. Bundles
that cannot be read (another version, truncated, a stale or foreign handle) or that hold other
tensors than this head takes (another cut, model or input size) are dropped with a throttled
warning that says which, and counted.
"""
from __future__ import annotations

import time

from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String, UInt8MultiArray

from trt_infer_ros.pipeline.split import CutMismatch
from trt_infer_ros.ros.class_filter import parse_class_filter
from trt_infer_ros.ros.detection_output import DetectionOutput
from trt_infer_ros.ros.detector_parameters import declare_detector_parameters
from trt_infer_ros.ros.diagnostics import NodeDiagnostics
from trt_infer_ros.ros.feature_messages import payload
from trt_infer_ros.ros.feature_qos import FEATURES_QOS, INLINE_REQUEST_SUFFIX
from trt_infer_ros.ros.frame_worker import FrameWorker
from trt_infer_ros.ros.image_conversion import image_for_model
from trt_infer_ros.ros.live_tuning import LiveTuning
from trt_infer_ros.ros.parameters import help_text
from trt_infer_ros.ros.qos import image_qos
from trt_infer_ros.ros.recent_images import RecentImages
from trt_infer_ros.ros.spin import run_node
from trt_infer_ros.ros.split_parameters import HEAD_PARAMETERS, load_head
from trt_infer_ros.ros.warm_up import warm_up
from trt_infer_ros.transport.bundle import BundleError
from trt_infer_ros.transport.host import host_id
from trt_infer_ros.transport.receiver import FeatureReceiver
from trt_infer_ros.transport.shm_ring import ForeignHandle

HEAD_STAGES = ("head", "publish")
OVERLAY_CHECK_S = 0.5
WORKER_STOP_S = 10.0


class HeadNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__("head_node", **node_kwargs)
        params = declare_detector_parameters(self, HEAD_PARAMETERS)
        self._stage = load_head(params, self.get_logger().info)
        blank = self._stage.blank_features()
        if blank is not None:
            warm_up(self, lambda: self._stage.run_model(blank))
        else:
            self.get_logger().info("no warm-up: the head's model file does not fix its input "
                                   "shapes, so the first bundle pays for the first run")
        class_names = list(self._stage.adapter.class_names)
        self._stage.settings.class_filter = parse_class_filter(params["class_filter"],
                                                               class_names)
        self._output = DetectionOutput(self, class_names, params["score_threshold"])
        self._tuning = LiveTuning(self, self._stage.settings, class_names, params["enable"],
                                  HEAD_PARAMETERS, on_applied=self._output.settings_changed)
        self._tuning.attach()
        self._receiver = FeatureReceiver()
        runner = self._stage.runner
        self._diagnostics = NodeDiagnostics(
            self, f"{runner.name} on {runner.device}", HEAD_STAGES,
            expected_rate=lambda: self.get_parameter("expected_rate").value,
            extra_counters={"dropped": "unreadable bundles dropped"})
        self._bundles = FrameWorker(self, self._process, self._diagnostics, "head",
                                    enabled=lambda: self._tuning.enabled)
        self._bundles.subscribe(UInt8MultiArray, "features", FEATURES_QOS)
        self._inline_pub = self.create_publisher(
            String, self._bundles.subscription.topic_name + INLINE_REQUEST_SUFFIX, 10)
        self._image_qos = image_qos(params["qos_reliability"], params["qos_depth"])
        self._images = RecentImages()
        self._image_sub = None
        self._overlay_timer = self.create_timer(OVERLAY_CHECK_S, self._follow_overlay)
        self.get_logger().info(
            f"ready: features from {self._bundles.subscription.topic_name}")

    def _follow_overlay(self) -> None:
        """Subscribe to the camera only while someone watches the overlay."""
        try:
            wanted = self._output.wants_overlay
            if wanted and self._image_sub is None:
                self._image_sub = self.create_subscription(Image, "image", self._images.put,
                                                           self._image_qos)
            elif not wanted and self._image_sub is not None:
                self.destroy_subscription(self._image_sub)
                self._image_sub = None
                self._images.clear()
        except Exception as err:
            self.get_logger().warning(f"overlay subscription: {err!r}", throttle_duration_sec=5.0)

    def _process(self, msg: UInt8MultiArray) -> None:
        """One bundle on the worker thread: open it, run the head, publish."""
        start = time.perf_counter()
        try:
            with self._receiver.open(payload(msg)) as received:
                bundle = received.bundle
                detections = self._stage(received.arrays, bundle.transform)
        except (BundleError, CutMismatch) as err:
            if not self.context.ok():
                return          # shutting down (the backbone may be going too): nothing to say
            self._diagnostics.count("dropped")
            if isinstance(err, ForeignHandle):
                self._inline_pub.publish(String(data=host_id()))
            self.get_logger().warning(f"dropped a feature bundle: {err}",
                                      throttle_duration_sec=5.0)
            return
        computed = time.perf_counter()
        header = Image().header
        header.stamp.sec, header.stamp.nanosec = bundle.stamp
        header.frame_id = bundle.frame_id
        image = self._images.get(bundle.stamp, bundle.frame_id) if self._image_sub else None
        if image is not None:
            self._output.publish(detections, header, *image_for_model(image))
        else:
            self._output.publish(detections, header)
        self._diagnostics.frame_done({"head": (computed - start) * 1e3,
                                      "publish": (time.perf_counter() - computed) * 1e3})

    def destroy_node(self) -> None:
        if hasattr(self, "_bundles"):
            self._bundles.stop(WORKER_STOP_S)
        if hasattr(self, "_receiver"):
            self._receiver.close()
        super().destroy_node()


HELP = help_text("head_node", __doc__.strip(), HEAD_PARAMETERS)


def main(args=None) -> int:
    return run_node(HeadNode, "head_node", args, help_text=HELP)


if __name__ == "__main__":
    raise SystemExit(main())
