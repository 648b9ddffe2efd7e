"""The demo: bundled photos replayed as a camera topic, detected, printed and drawn.

  python -m trt_infer_ros.demo [--images DIR] [--output DIR] [--backend auto] [--score 0.3]

Runs image_source_node, detector_node and a small listener in one process over real DDS.
The listener prints every Detection2DArray and writes each annotated overlay to --output.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from trt_infer_ros.resources import sample_images_dir
from trt_infer_ros.ros.detector_node import DetectorNode
from trt_infer_ros.ros.frame_reader import image_files
from trt_infer_ros.ros.image_conversion import image_to_array
from trt_infer_ros.ros.image_source_node import ImageSourceNode


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=sample_images_dir(),
                        help="directory of photos to replay (default: bundled photos)")
    parser.add_argument("--output", type=Path, default=Path("demo_output"),
                        help="where annotated images are written (default: ./demo_output)")
    parser.add_argument("--backend", default="auto",
                        choices=("auto", "onnxruntime", "tinygrad", "tensorrt"))
    parser.add_argument("--model", default="", help="model path (default: bundled CenterNet)")
    parser.add_argument("--score", type=float, default=0.3, help="score threshold")
    parser.add_argument("--rate", type=float, default=2.0, help="frames per second")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait in all")
    return parser.parse_args(argv)


class Listener:
    """Prints detections and saves overlays, naming each after the photo it came from."""

    def __init__(self, node, names: list[str], output: Path) -> None:
        self.names, self.output = names, output
        self.detections: list[Detection2DArray] = []
        self.overlays = 0
        node.create_subscription(Detection2DArray, "/detector_node/detections",
                                 self.on_detections, 10)
        node.create_subscription(Image, "/detector_node/image", self.on_overlay, 10)

    def on_detections(self, msg: Detection2DArray) -> None:
        name = self.names[len(self.detections)] if len(self.detections) < len(self.names) else "?"
        self.detections.append(msg)
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        print(f"{name}: {len(msg.detections)} detections (frame_id={msg.header.frame_id}, "
              f"stamp={stamp:.3f})")
        for det in msg.detections:
            hyp, box = det.results[0].hypothesis, det.bbox
            x1 = box.center.position.x - box.size_x / 2
            y1 = box.center.position.y - box.size_y / 2
            print(f"    {hyp.class_id:<14} {hyp.score:.2f}  x1={x1:.0f} y1={y1:.0f} "
                  f"w={box.size_x:.0f} h={box.size_y:.0f}")

    def on_overlay(self, msg: Image) -> None:
        index = self.overlays
        self.overlays += 1
        stem = Path(self.names[index]).stem if index < len(self.names) else f"frame_{index:03d}"
        path = self.output / f"{stem}_detections.jpg"
        cv2.imwrite(str(path), np.ascontiguousarray(image_to_array(msg)))
        print(f"    wrote {path}")

    def done(self) -> bool:
        return len(self.detections) >= len(self.names) and self.overlays >= len(self.names)


def spin_until(executor, done, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    return done()


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    names = [p.name for p in image_files(args.images)] if args.images.is_dir() else []
    if not names:
        print(f"no images in {args.images}", file=sys.stderr)
        return 1
    args.output.mkdir(parents=True, exist_ok=True)
    rclpy.init()
    executor = MultiThreadedExecutor()
    nodes = []
    try:
        # Reliable, deep queues: a demo must show every photo, unlike a live camera.
        detector = DetectorNode(parameter_overrides=[
            Parameter("backend", value=args.backend), Parameter("model_path", value=args.model),
            Parameter("score_threshold", value=args.score),
            Parameter("qos_reliability", value="reliable"), Parameter("qos_depth", value=10)])
        listener_node = rclpy.create_node("demo_listener")
        listener = Listener(listener_node, names, args.output)
        nodes += [detector, listener_node]
        for node in nodes:
            executor.add_node(node)
        # Start the camera only once the listener is matched, so no photo goes unseen.
        spin_until(executor, lambda: listener_node.count_publishers("/detector_node/image") > 0
                   and detector.count_subscribers("/detector_node/image") > 0, 10.0)
        source = ImageSourceNode(parameter_overrides=[
            Parameter("source", value=str(args.images)), Parameter("loop", value=False),
            Parameter("rate", value=args.rate), Parameter("frame_id", value="demo_camera")])
        nodes.append(source)
        executor.add_node(source)
        if not spin_until(executor, listener.done, args.timeout):
            print(f"timed out: {len(listener.detections)}/{len(names)} frames detected",
                  file=sys.stderr)
            return 1
        print(f"done: {len(names)} photos, annotated images in {args.output}/")
        return 0
    finally:
        for node in nodes:
            node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
