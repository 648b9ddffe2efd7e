"""detector_node as users run it (its own process, frames from another process), against a relay
node measured the same way and the bare runtime, in one run.

  python benchmarks/node_process_benchmark.py [--frames 40] [--size 640x480] [--gap-ms 20]
      [--backend onnxruntime|auto] [--transport CAMERA_FRAMES|LARGE_DATA|SHM|DEFAULT]
      [--model path.onnx] [--capture]

Rows (median and p10..p90 over --frames, one frame in flight, --gap-ms between frames):
  bare runtime      runner.run() on a preprocessed tensor, in this process, paced like the
                    frames (and back to back, for reference)
  pipeline          preprocess + run + decode + NMS, in this process
  relay round trip  image published -> an empty Detection2DArray back from a node that only
                    relays the header: what DDS and rclpy cost this image, with no work
  detector_node     image published -> its detections back
  node stages       detector_node's own per-stage p50 from /diagnostics
Then: detector_node - relay - the node's stages = what the node adds beyond its work.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time

import cv2
import numpy as np

from trt_infer_ros.bench.dds_environment import dds_environment, describe

RELAY_READY = "relay ready"


def relay(topic: str) -> None:
    """Answer every image with an empty Detection2DArray carrying its header."""
    import rclpy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    rclpy.init()
    node = rclpy.create_node("detector_node")     # same topic names as the real node
    pub = node.create_publisher(Detection2DArray, "~/detections", 10)
    node.create_subscription(Image, topic, lambda m: pub.publish(Detection2DArray(header=m.header)),
                             _qos())
    print(RELAY_READY, flush=True)
    try:
        rclpy.spin(node)
    except BaseException:                          # stopped by the benchmark
        pass


def _qos():
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    return QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


def ms(samples) -> str:
    a = 1000.0 * np.asarray(samples)
    return f"{np.median(a):7.2f} ms [{np.percentile(a, 10):.2f}..{np.percentile(a, 90):.2f}]"


def time_in_process(image, frames: int, backend: str, model: str, gap_s: float):
    """(bare paced, bare back to back, pipeline paced): runner.run() and pipeline() in this
    process. Paced runs wait `gap_s` between calls, as the node waits between frames: after a
    pause the runtime's threads sleep and its caches are cold, which back-to-back runs hide."""
    from trt_infer_ros.pipeline.gpu_pipeline import build_best_pipeline
    from trt_infer_ros.pipeline.preprocess import preprocess
    from trt_infer_ros.resources import default_model_path

    pipeline = build_best_pipeline(model or str(default_model_path()), backend=backend)
    tensor = preprocess(image, "bgr8", pipeline.adapter.input_spec)[0]
    for _ in range(5):
        pipeline.runner.run(tensor)

    def timed(call, pause):
        samples = []
        for _ in range(frames):
            start = time.perf_counter()
            call()
            samples.append(time.perf_counter() - start)
            time.sleep(pause)
        return samples

    back_to_back = timed(lambda: pipeline.runner.run(tensor), 0.0)
    bare = timed(lambda: pipeline.runner.run(tensor), gap_s)
    whole = timed(lambda: pipeline(image, "bgr8"), gap_s)
    pipeline.close()
    return bare, back_to_back, whole


READY_TIMEOUT_S = 180.0


def start_process(cmd: list, ready):
    """Start `cmd` and drain its output; wait until a line contains `ready` (when given), at most
    READY_TIMEOUT_S, and stop with the command's last lines if it never comes."""
    env = dict(os.environ, RCUTILS_LOGGING_USE_STDOUT="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    seen, ended, tail = threading.Event(), threading.Event(), []

    def drain() -> None:
        for line in proc.stdout:
            tail[:] = (tail + [line.rstrip()])[-5:]
            if ready and ready in line:
                seen.set()
        ended.set()
    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while ready and not (seen.wait(0.2) or ended.is_set() or time.monotonic() > deadline):
        pass
    if ready and not seen.is_set():
        proc.kill()
        raise SystemExit(f"{cmd[0]} did not say {ready!r} (exited, or not within "
                         f"{READY_TIMEOUT_S:g} s); its last lines:\n" + "\n".join(tail))
    return proc


def listener(name: str):
    """(context, node, executor) of a node of this process in a context of its own."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(name, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    return context, node, executor


def time_node(cmd: list, image, frames: int, gap_s: float, ready: str, stages: bool):
    """Round trips through the process `cmd` starts; and its /diagnostics stage p50s."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from trt_infer_ros.ros.image_conversion import array_to_image

    proc = start_process(cmd, ready)
    context, node, executor = listener("node_process_benchmark")
    answered = threading.Event()
    status = {}
    node.create_subscription(Detection2DArray, "/detector_node/detections",
                             lambda m: answered.set(), 10)
    node.create_subscription(
        DiagnosticArray, "/diagnostics",
        lambda m: status.update({kv.key: kv.value for s in m.status
                                 if s.name.startswith("detector_node") for kv in s.values}), 10)
    pub = node.create_publisher(Image, "/node_bench/image", _qos())
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    while pub.get_subscription_count() == 0:
        time.sleep(0.05)
    msg = array_to_image(image, "bgr8")
    samples = []
    for i in range(frames + 5):                    # the first 5 warm the path up
        answered.clear()
        start = time.perf_counter()
        pub.publish(msg)
        if answered.wait(5.0) and i >= 5:
            samples.append(time.perf_counter() - start)
        time.sleep(gap_s)
    if stages:
        time.sleep(1.2)                            # one more /diagnostics period
    proc.terminate()
    proc.wait()
    executor.shutdown(timeout_sec=1.0)
    spinner.join(timeout=2.0)
    rclpy.try_shutdown(context=context)
    return samples, {k[:-9]: float(v) for k, v in status.items() if k.endswith(" p50 (ms)")}


def time_capture(cmd: list, image, frames: int, tmp: str) -> list:
    """Capture in the node's process: a 30 fps video of `image` as detector_node's `source`;
    latency = detections received - the capture stamp they carry (same host clock)."""
    import rclpy
    from vision_msgs.msg import Detection2DArray

    path = os.path.join(tmp, "capture.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 30,
                             (image.shape[1], image.shape[0]))
    for _ in range(90):
        writer.write(image)
    writer.release()
    proc = start_process(cmd + ["-p", f"source:={path}"], ready=None)
    context, node, executor = listener("capture_benchmark")
    latencies = []

    def received(msg) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        latencies.append((time.time_ns() - stamp) / 1e9)
    node.create_subscription(Detection2DArray, "/detector_node/detections", received, 10)
    deadline = time.monotonic() + 120
    while len(latencies) < frames + 10 and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
    proc.terminate()
    proc.wait()
    executor.shutdown(timeout_sec=1.0)
    rclpy.try_shutdown(context=context)
    return latencies[10:]                      # the first frames warm the path up


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--size", default="640x480")
    p.add_argument("--gap-ms", type=float, default=20.0, help="pause between frames")
    p.add_argument("--transport", default=None,
                   help="DDS transport of every process here: a FASTDDS_BUILTIN_TRANSPORTS mode, "
                        "or CAMERA_FRAMES (config/fastdds_camera_frames.xml); default: as set")
    p.add_argument("--model", default="", help="ONNX model (default: the bundled CenterNet)")
    p.add_argument("--capture", action="store_true",
                   help="also: capture in the node's process from a 30 fps video file "
                        "(capture stamp -> detections received)")
    p.add_argument("--backend", default="onnxruntime",
                   help="detector_node's backend (auto: the GPU pipeline where there is one)")
    args = p.parse_args()
    from trt_infer_ros.resources import sample_images_dir

    if args.transport:
        env = dds_environment(args.transport)
        os.environ.clear()
        os.environ.update(env)
    width, height = (int(v) for v in args.size.split("x"))
    image = cv2.resize(cv2.imread(str(sample_images_dir() / "astronaut.jpg")), (width, height))
    bare, back_to_back, whole = time_in_process(image, args.frames, args.backend, args.model,
                                                args.gap_ms / 1e3)
    relay_rt, _ = time_node([sys.executable, __file__, "relay"], image, args.frames,
                            args.gap_ms / 1e3, RELAY_READY, stages=False)
    node_cmd = (["detector_node", "--ros-args", "-r", "image:=/node_bench/image", "-p",
                 f"backend:={args.backend}", "-p", "qos_reliability:=reliable"]
                + (["-p", f"model_path:={args.model}"] if args.model else []))
    node_rt, stages = time_node(node_cmd, image, args.frames, args.gap_ms / 1e3, "ready:",
                                stages=True)
    captured = []
    if args.capture:
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            captured = time_capture(node_cmd, image, args.frames, tmp)
    print(f"{args.size} bgr8, {args.frames} frames, {args.gap_ms:g} ms between frames, "
          f"backend {args.backend}, {describe()}")
    print(f"bare runtime        {ms(bare)}  (back to back: {ms(back_to_back).strip()})")
    print(f"pipeline            {ms(whole)}")
    print(f"relay round trip    {ms(relay_rt)}")
    print(f"detector_node       {ms(node_rt)}")
    if args.capture:
        print(f"capture in process  {ms(captured) if captured else 'no detections'}  (capture "
              f"stamp -> detections received, 30 fps video file)")
    print("node stages p50     " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
          + f" (sum {sum(stages.values()):.2f} ms)")
    node, relay_ms = statistics.median(node_rt), statistics.median(relay_rt)
    beyond_stages = 1000 * (node - relay_ms) - sum(stages.values())
    added = 1000 * (node - relay_ms - statistics.median(bare))
    print(f"detector_node - relay - node stages = {beyond_stages:.2f} ms")
    print(f"detector_node - relay - bare runtime = {added:.2f} ms (what the node adds to the "
          f"model); detector_node / bare = {node / statistics.median(bare):.2f}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "relay":
        relay("/node_bench/image")
    else:
        raise SystemExit(main())
