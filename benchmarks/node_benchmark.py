"""Bare runtime vs detector_node end to end, on the same model and photos, in one run.

  python benchmarks/node_benchmark.py [--backend onnxruntime] [--frames 50] [--model PATH]

bare runtime : runner.run() on an already preprocessed tensor (the model alone)
pipeline     : preprocess + run + decode + NMS in Python, no ROS
node e2e     : Image published -> Detection2DArray received, through DDS and detector_node
Each is the median over --frames frames cycling over the photos; one frame in flight at a time.
"""
from __future__ import annotations

import argparse
import statistics
import threading
import time
from pathlib import Path

import cv2
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from trt_infer_ros.pipeline.detector import build_pipeline
from trt_infer_ros.pipeline.preprocess import preprocess
from trt_infer_ros.resources import default_model_path, sample_images_dir
from trt_infer_ros.ros.detector_node import DetectorNode
from trt_infer_ros.ros.frame_reader import image_files
from trt_infer_ros.ros.image_conversion import array_to_image


def median_ms(samples):
    return 1000.0 * statistics.median(samples)


def time_bare_runtime(pipeline, photos, frames):
    tensors = [preprocess(p, "bgr8", pipeline.adapter.input_spec)[0] for p in photos]
    for t in tensors:                       # warm-up: first runs allocate and compile
        pipeline.runner.run(t)
    samples = []
    for i in range(frames):
        start = time.perf_counter()
        pipeline.runner.run(tensors[i % len(tensors)])
        samples.append(time.perf_counter() - start)
    return samples


def time_pipeline(pipeline, photos, frames):
    samples = []
    for i in range(frames):
        start = time.perf_counter()
        pipeline(photos[i % len(photos)], "bgr8")
        samples.append(time.perf_counter() - start)
    return samples


def time_node(args, photos, frames):
    """Publish one frame, wait for its detections, repeat. The executor spins in its own
    thread, as it does in a deployed node, so waiting costs the measurement nothing."""
    rclpy.init()
    executor = SingleThreadedExecutor()
    node = DetectorNode(parameter_overrides=[
        Parameter("backend", value=args.backend), Parameter("model_path", value=str(args.model)),
        Parameter("qos_reliability", value="reliable")])
    client = rclpy.create_node("benchmark_client")
    answered = threading.Event()
    received_at = []

    def on_detections(_msg):
        received_at.append(time.perf_counter())
        answered.set()

    client.create_subscription(Detection2DArray, "/detector_node/detections", on_detections, 10)
    publisher = client.create_publisher(Image, "image", 1)
    for n in (node, client):
        executor.add_node(n)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    messages = [array_to_image(p, "bgr8") for p in photos]
    samples = []
    try:
        while publisher.get_subscription_count() == 0:
            time.sleep(0.01)
        for i in range(frames + len(photos)):   # the first pass over the photos warms up
            answered.clear()
            sent = time.perf_counter()
            publisher.publish(messages[i % len(messages)])
            if not answered.wait(timeout=30.0):
                raise RuntimeError("detector_node did not answer within 30 s")
            if i >= len(photos):
                samples.append(received_at[-1] - sent)
    finally:
        executor.shutdown()
        spinner.join(timeout=5.0)
        node.destroy_node()
        client.destroy_node()
        rclpy.shutdown()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--images", type=Path, default=sample_images_dir())
    parser.add_argument("--frames", type=int, default=50)
    args = parser.parse_args()

    photos = [cv2.imread(str(p)) for p in image_files(args.images)]
    pipeline = build_pipeline(str(args.model), backend=args.backend)
    bare = median_ms(time_bare_runtime(pipeline, photos, args.frames))
    python_pipeline = median_ms(time_pipeline(pipeline, photos, args.frames))
    pipeline.runner.close()
    node = median_ms(time_node(args, photos, args.frames))

    print(f"model   {args.model.name}  backend {pipeline.runner.name} on {pipeline.runner.device}  "
          f"{len(photos)} photos, {args.frames} frames, median per frame")
    print(f"{'stage':<38}{'ms/frame':>10}{'x bare':>9}")
    for name, value in (("bare runtime (runner.run)", bare),
                        ("pipeline (pre + run + decode + NMS)", python_pipeline),
                        ("detector_node end to end (DDS)", node)):
        print(f"{name:<38}{value:>10.2f}{value / bare:>9.2f}")


if __name__ == "__main__":
    main()
