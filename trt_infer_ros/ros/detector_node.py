"""detector_node: sensor_msgs/Image in, vision_msgs/Detection2DArray (+ annotated overlay) out.

Topics (remap as usual):
  image              (sub, sensor_msgs/Image)              camera frames
  ~/detections       (pub, vision_msgs/Detection2DArray)   reliable, depth 10: every result counts
  ~/image            (pub, sensor_msgs/Image)              overlay, drawn only while subscribed
  ~/label_info       (pub, vision_msgs/LabelInfo)          class map, once, transient local
  ~/masks            (pub, sensor_msgs/Image)              mono16 instance ids (segmentation)
  /diagnostics       (pub, diagnostic_msgs/DiagnosticArray) health, about 1 Hz
"""
from __future__ import annotations

import threading
import time

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image

from trt_infer_ros.ros.class_filter import parse_class_filter
from trt_infer_ros.ros.detection_output import DetectionOutput
from trt_infer_ros.ros.diagnostics import DETECTOR_STAGES, NodeDiagnostics, stage_times
from trt_infer_ros.ros.detector_parameters import (DETECTOR_PARAMETERS,
                                                   declare_detector_parameters, load_pipeline)
from trt_infer_ros.ros.image_conversion import ImageConversionError, image_to_array
from trt_infer_ros.ros.latest_frame import LatestFrame
from trt_infer_ros.ros.live_tuning import LiveTuning
from trt_infer_ros.ros.lost_messages import LostMessageCounter
from trt_infer_ros.ros.parameters import help_text
from trt_infer_ros.ros.qos import image_qos
from trt_infer_ros.ros.spin import run_node

STATS_PERIOD_S = 10.0
WARMUP_FRAMES = 3      # TinyJit compiles on the 1st call and captures on the 2nd
WORKER_STOP_S = 10.0   # the frame in flight finishes before the publishers go


class DetectorNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__("detector_node", **node_kwargs)
        params = declare_detector_parameters(self)
        self._pipeline = load_pipeline(params, self.get_logger().info)
        class_names = list(self._pipeline.adapter.class_names)
        self._pipeline.settings.class_filter = parse_class_filter(params["class_filter"],
                                                                  class_names)
        self._warm_up()
        self._tuning = LiveTuning(self, self._pipeline.settings, class_names, params["enable"])
        self._tuning.attach()
        self._output = DetectionOutput(self, class_names, params["score_threshold"])
        qos = image_qos(params["qos_reliability"], params["qos_depth"])
        runner = self._pipeline.runner
        self._diagnostics = NodeDiagnostics(
            self, f"{runner.name} on {runner.device}", DETECTOR_STAGES,
            expected_rate=lambda: self.get_parameter("expected_rate").value)
        self._diagnostics.set_value("model", params["model_path"])
        self._diagnostics.set_value("pipeline", getattr(self._pipeline, "selection", ""))
        self._frames = LatestFrame()
        self._lost = LostMessageCounter(
            on_lost=lambda n: self._diagnostics.count("lost", n))
        self._image_sub = self.create_subscription(Image, "image", self._on_image, qos,
                                                   **self._lost.subscription_kwargs())

        self._stats = {"frames": 0, "bad": 0, "latency_s": 0.0}
        self._stats_timer = self.create_timer(STATS_PERIOD_S, self._log_stats)
        self._worker = threading.Thread(target=self._work, name="detector_inference", daemon=True)
        self._worker.start()

        runner = self._pipeline.runner
        spec = self._pipeline.adapter.input_spec
        self.get_logger().info(
            f"ready: model {params['model_path']} ({self._pipeline.adapter.model_type}, "
            f"{spec.width}x{spec.height} {spec.layout}), backend {runner.name} on {runner.device}; "
            f"listening on {self._image_sub.topic_name} ({params['qos_reliability']}, "
            f"depth {params['qos_depth']})")

    def _warm_up(self) -> None:
        """Pay for compilation and allocation before the first camera frame, not on it."""
        spec = self._pipeline.adapter.input_spec
        blank = np.zeros((spec.height, spec.width, 3), np.uint8)
        self.get_logger().info("warming up the model (a first run may compile it)...")
        start = time.perf_counter()
        for _ in range(WARMUP_FRAMES):
            self._pipeline(blank, "bgr8")
        self.get_logger().info(f"warm-up done in {time.perf_counter() - start:.1f} s")

    # -- per frame ----------------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        self._diagnostics.count("in")
        if self._frames.put(msg):
            self._diagnostics.count("skipped")

    def _work(self) -> None:
        while True:
            msg = self._frames.take()
            if msg is None:
                return
            if not self._tuning.enabled:
                continue
            try:
                self._process(msg)
            except Exception as err:
                if not self.context.ok():
                    return          # shutting down: the publishers are already gone
                self.get_logger().error(f"publishing failed: {err!r}", throttle_duration_sec=5.0)

    def _process(self, msg: Image) -> None:
        start = time.perf_counter()
        try:
            image = image_to_array(msg)
            encoding = msg.encoding.lower()
            converted = time.perf_counter()
            detections = self._pipeline(image, encoding)
        except ImageConversionError as err:
            self._reject(f"dropped a frame: {err}", warning=True)
            return
        except Exception as err:  # one bad frame must never stop the node
            self._reject(f"inference failed on a frame: {err!r}", warning=False)
            return
        inferred = time.perf_counter()
        self._output.publish(detections, msg.header, image, encoding)
        done = time.perf_counter()
        self._stats["frames"] += 1
        self._stats["latency_s"] += done - start
        self._diagnostics.frame_done(stage_times((converted - start) * 1e3,
                                                 getattr(self._pipeline, "timings", None),
                                                 (done - inferred) * 1e3))

    def _reject(self, why: str, warning: bool) -> None:
        self._stats["bad"] += 1
        self._diagnostics.count("rejected")
        log = self.get_logger().warning if warning else self.get_logger().error
        log(why, throttle_duration_sec=5.0)

    def _log_stats(self) -> None:
        frames = self._stats["frames"]
        if frames == 0 and self._stats["bad"] == 0 and self._lost.pending == 0:
            return
        mean_ms = 1000.0 * self._stats["latency_s"] / max(frames, 1)
        lost = self._lost.take()
        self.get_logger().info(
            f"{frames / STATS_PERIOD_S:.1f} frames/s, {mean_ms:.1f} ms per frame, "
            f"{self._frames.replaced} skipped for newer frames, {lost} lost in transport, "
            f"{self._stats['bad']} rejected")
        if lost:
            self.get_logger().warning(
                f"{lost} frames were lost before they reached this node; see the README "
                "('Frames lost in transport') for the DDS transport and QoS that avoid it",
                throttle_duration_sec=60.0)
        self._stats.update(frames=0, bad=0, latency_s=0.0)
        self._frames.replaced = 0

    def destroy_node(self) -> None:
        # Also called by rclpy's shutdown on a node whose __init__ failed half-way.
        if hasattr(self, "_worker"):
            self._frames.close()
            self._worker.join(timeout=WORKER_STOP_S)
        super().destroy_node()


HELP = help_text("detector_node", __doc__.strip(), DETECTOR_PARAMETERS)


def main(args=None) -> int:
    return run_node(DetectorNode, "detector_node", args, help_text=HELP)


if __name__ == "__main__":
    raise SystemExit(main())
