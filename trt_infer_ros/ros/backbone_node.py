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

import time

from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from std_msgs.msg import String, UInt8MultiArray

from trt_infer_ros.ros.detector_parameters import declare_detector_parameters
from trt_infer_ros.ros.diagnostics import NodeDiagnostics
from trt_infer_ros.ros.feature_messages import to_message
from trt_infer_ros.ros.feature_qos import FEATURES_QOS
from trt_infer_ros.ros.frame_input import INPUT_PARAMETERS, FrameInput, frame_from
from trt_infer_ros.ros.frame_worker import FrameWorker
from trt_infer_ros.ros.parameters import check_updates, help_text
from trt_infer_ros.ros.qos import image_qos
from trt_infer_ros.ros.spin import run_node
from trt_infer_ros.ros.split_parameters import BACKBONE_PARAMETERS, load_backbone
from trt_infer_ros.ros.warm_up import blank_frame, warm_up
from trt_infer_ros.transport.sender import FeatureSender

WORKER_STOP_S = 10.0
BACKBONE_STAGES = ("backbone", "send")
BACKBONE_NODE_PARAMETERS = BACKBONE_PARAMETERS + INPUT_PARAMETERS


class BackboneNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__("backbone_node", **node_kwargs)
        params = declare_detector_parameters(self, BACKBONE_NODE_PARAMETERS)
        self._enabled = params["enable"]
        self._stage = load_backbone(params, self.get_logger().info)
        blank = blank_frame(self._stage.adapter.input_spec)
        warm_up(self, lambda: self._stage(blank, "bgr8"))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # CUDA IPC pays only when the runner leaves its outputs on the device.
        self._sender = FeatureSender(params["transport"], params["ring_slots"],
                                     self.get_logger().info,
                                     getattr(self._stage.runner, "outputs_on_device", False))
        self._features_pub = self.create_publisher(UInt8MultiArray, "~/features", FEATURES_QOS)
        self._inline_sub = self.create_subscription(
            String, "~/features/inline_request", self._on_inline_request, 10)
        runner = self._stage.runner
        self._diagnostics = NodeDiagnostics(
            self, f"{runner.name} on {runner.device}", BACKBONE_STAGES,
            expected_rate=lambda: self.get_parameter("expected_rate").value,
            extra_counters={"busy": "skipped while the head held every slot"})
        self._frames = FrameWorker(self, self._process, self._diagnostics, "backbone",
                                   enabled=lambda: self._enabled)
        self._input = FrameInput(self, self._frames, params,
                                 image_qos(params["qos_reliability"], params["qos_depth"]),
                                 self._diagnostics)
        self.get_logger().info(f"ready: frames from {self._input.description}, "
                               f"features on {self._features_pub.topic_name} (transport "
                               f"{params['transport']})")

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        try:
            values, problem = check_updates(BACKBONE_NODE_PARAMETERS, parameters)
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

    def _process(self, msg) -> None:
        """One frame on the worker thread: convert, backbone, hand the features on."""
        start = time.perf_counter()
        frame = frame_from(msg)
        # The runner writes its outputs straight into a shared-memory slot where it can.
        with self._sender.frame(self._stage.output_specs) as out:
            if out.skipped:
                self._diagnostics.count("busy")    # every slot still read by a slow head
                return
            features, transform = self._stage(frame.image, frame.encoding, out.arrays)
            computed = time.perf_counter()
            stamp = (frame.header.stamp.sec, frame.header.stamp.nanosec)
            bundle = out.bundle(stamp, frame.header.frame_id, transform, features)
        if bundle is None:
            self._diagnostics.count("busy")
            return
        self._features_pub.publish(to_message(bundle))
        self._diagnostics.frame_done({"backbone": (computed - start) * 1e3,
                                      "send": (time.perf_counter() - computed) * 1e3})

    def destroy_node(self) -> None:
        if hasattr(self, "_input"):
            self._input.close()
        if hasattr(self, "_frames"):
            self._frames.stop(WORKER_STOP_S)
        if hasattr(self, "_sender"):
            self._sender.close()
        super().destroy_node()


HELP = help_text("backbone_node", __doc__.strip(), BACKBONE_NODE_PARAMETERS)


def main(args=None) -> int:
    return run_node(BackboneNode, "backbone_node", args, help_text=HELP)


if __name__ == "__main__":
    raise SystemExit(main())
