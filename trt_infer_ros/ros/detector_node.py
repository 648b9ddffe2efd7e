"""detector_node: sensor_msgs/Image in, vision_msgs/Detection2DArray (+ annotated overlay) out.

Topics (remap as usual):
  image              (sub, sensor_msgs/Image)              camera frames (image_transport raw)
  image/compressed   (sub, sensor_msgs/CompressedImage)    instead, with image_transport compressed
  ~/image_raw, ~/camera_info (pub)                         with `source` set: the captured frames,
                                                           while someone subscribes
  ~/detections       (pub, vision_msgs/Detection2DArray)   reliable, depth 10: every result counts
  ~/image            (pub, sensor_msgs/Image)              overlay, drawn only while subscribed
  ~/label_info       (pub, vision_msgs/LabelInfo)          class map + threshold, transient local
  ~/masks            (pub, sensor_msgs/Image)              mono16 instance ids (segmentation)
  /diagnostics       (pub, diagnostic_msgs/DiagnosticArray) health, about 1 Hz
"""
from __future__ import annotations

import time

from rclpy.node import Node

from trt_infer_ros.ros.class_filter import parse_class_filter
from trt_infer_ros.ros.detection_output import DetectionOutput
from trt_infer_ros.ros.diagnostics import DETECTOR_STAGES, NodeDiagnostics, stage_times
from trt_infer_ros.ros.detector_parameters import (DETECTOR_PARAMETERS,
                                                   declare_detector_parameters, load_pipeline)
from trt_infer_ros.ros.frame_input import INPUT_PARAMETERS, FrameInput, detect, frame_from
from trt_infer_ros.ros.frame_worker import FrameWorker
from trt_infer_ros.ros.live_tuning import LiveTuning
from trt_infer_ros.ros.parameters import help_text
from trt_infer_ros.ros.qos import image_qos
from trt_infer_ros.ros.spin import run_node
from trt_infer_ros.ros.warm_up import blank_frame, warm_up

WORKER_STOP_S = 10.0   # the frame in flight finishes before the publishers go
DETECTOR_NODE_PARAMETERS = DETECTOR_PARAMETERS + INPUT_PARAMETERS


class DetectorNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__("detector_node", **node_kwargs)
        params = declare_detector_parameters(self, DETECTOR_NODE_PARAMETERS)
        self._pipeline = load_pipeline(params, self.get_logger().info)
        class_names = list(self._pipeline.adapter.class_names)
        self._pipeline.settings.class_filter = parse_class_filter(params["class_filter"],
                                                                  class_names)
        blank = blank_frame(self._pipeline.adapter.input_spec)
        warm_up(self, lambda: self._pipeline(blank, "bgr8"))
        self._output = DetectionOutput(self, class_names, params["score_threshold"])
        self._tuning = LiveTuning(self, self._pipeline.settings, class_names, params["enable"],
                                  on_applied=self._output.settings_changed)
        self._tuning.attach()
        runner = self._pipeline.runner
        self._diagnostics = NodeDiagnostics(
            self, f"{runner.name} on {runner.device}", DETECTOR_STAGES,
            expected_rate=lambda: self.get_parameter("expected_rate").value)
        self._diagnostics.set_value("model", params["model_path"])
        self._diagnostics.set_value("pipeline", getattr(self._pipeline, "selection", ""))
        self._frames = FrameWorker(self, self._process, self._diagnostics, "detector_inference",
                                   enabled=lambda: self._tuning.enabled)
        self._input = FrameInput(self, self._frames, params,
                                 image_qos(params["qos_reliability"], params["qos_depth"]),
                                 self._diagnostics)
        # JPEG frames stay encoded up to a pipeline that decodes them on the GPU.
        compressed = params["image_transport"] == "compressed" and not params["source"]
        self._jpeg_on_gpu = compressed and getattr(self._pipeline, "jpeg_on_gpu", False)
        if compressed:
            self.get_logger().info(getattr(self._pipeline, "jpeg_text", "")
                                   or "JPEG and PNG decoded on the CPU (OpenCV)")

        spec = self._pipeline.adapter.input_spec
        self.get_logger().info(
            f"ready: model {params['model_path']} ({self._pipeline.adapter.model_type}, "
            f"{spec.width}x{spec.height} {spec.layout}), backend {runner.name} on {runner.device}; "
            f"frames from {self._input.description} ({params['qos_reliability']}, "
            f"depth {params['qos_depth']})")

    def _process(self, msg) -> None:
        """One frame on the worker thread: convert (or decode), detect, publish."""
        start = time.perf_counter()
        frame = frame_from(msg, keep_jpeg=self._jpeg_on_gpu and not self._output.wants_overlay)
        converted = time.perf_counter()
        detections, frame = detect(self._pipeline, frame)
        inferred = time.perf_counter()
        self._output.publish(detections, frame.header, frame.image, frame.encoding)
        self._diagnostics.frame_done(stage_times((converted - start) * 1e3,
                                                 getattr(self._pipeline, "timings", None),
                                                 (time.perf_counter() - inferred) * 1e3))

    def destroy_node(self) -> None:
        # Also called by rclpy's shutdown on a node whose __init__ failed half-way.
        if hasattr(self, "_input"):
            self._input.close()
        if hasattr(self, "_frames"):
            self._frames.stop(WORKER_STOP_S)
        super().destroy_node()


HELP = help_text("detector_node", __doc__.strip(), DETECTOR_NODE_PARAMETERS)


def main(args=None) -> int:
    return run_node(DetectorNode, "detector_node", args, help_text=HELP)


if __name__ == "__main__":
    raise SystemExit(main())
