"""detector_node as users run it (its own process, frames from another process), against a relay
node measured the same way and the bare runtime, in one run.

  python benchmarks/node_process_benchmark.py [--frames 40] [--size 640x480] [--gap-ms 20]
      [--backend onnxruntime|auto] [--transport CAMERA_FRAMES|LARGE_DATA|SHM|DEFAULT]
      [--model path.onnx] [--capture]

Rows (median and p10..p90 over --frames, one frame in flight, --gap-ms between frames):
  bare runtime      runner.run() on a preprocessed tensor, in a process of its own, paced like the
                    frames (and back to back, for reference)
  pipeline          preprocess + run + decode + NMS, in this process
  relay round trip  image published -> an empty Detection2DArray back from a node that only
                    relays the header: what DDS and rclpy cost this image, with no work
  detector_node     image published -> its detections back
  node stages       detector_node's own per-stage p50 from /diagnostics
Then: detector_node - relay - the node's stages = what the node adds beyond its work.

Bare runtime (in a process of its own), relay and detector_node are measured in rounds (one
frame each per round, in that order, --gap-ms apart), so the three see the same load from the
other tenants of a shared machine; "node - relay - bare, per round" is the median of the
per-round differences.

--capture adds detector_node with a 30 fps video file as its `source`: capture stamp ->
detections received here, against the pipeline row and against that node's own stage p50s.
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

from trt_infer_ros.bench.dds_environment import TRANSPORTS, dds_environment, describe
from trt_infer_ros.bench.processes import STOP_TIMEOUT_S, stop_process

RELAY_READY = "relay ready"
BARE_READY = "bare ready"
RELAY_NAME = "relay"
IMAGE_TOPIC = "/node_bench/image"
RELAY_IMAGE_TOPIC = "/node_bench/relay_image"
WARM_UP_ROUNDS = 5


def relay(topic: str) -> None:
    """Answer every image with an empty Detection2DArray carrying its header."""
    import rclpy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    rclpy.init()
    node = rclpy.create_node(RELAY_NAME)
    pub = node.create_publisher(Detection2DArray, "~/detections", 10)
    node.create_subscription(Image, topic, lambda m: pub.publish(Detection2DArray(header=m.header)),
                             _qos())
    print(RELAY_READY, flush=True)
    try:
        rclpy.spin(node)
    except BaseException:                          # stopped by the benchmark
        pass


def bare_runtime(backend: str, model: str, width: int, height: int) -> None:
    """Time one runner.run() per line read from stdin and answer with its milliseconds: the bare
    runtime in a process of its own, so that the benchmark process is in the same state before
    each relay and detector_node round trip."""
    image = sample_frame(width, height)
    pipeline, tensor = open_pipeline(image, backend, model)
    print(BARE_READY, flush=True)
    for _ in sys.stdin:
        start = time.perf_counter()
        pipeline.runner.run(tensor)
        print(f"{(time.perf_counter() - start) * 1e3:.4f}", flush=True)
    pipeline.close()


class BareRuntime:
    """The bare_runtime() process: `()` runs the model once there and returns the seconds."""

    def __init__(self, backend: str, model: str, width: int, height: int) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, __file__, "bare", backend, model or "-", str(width), str(height)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        for line in self._proc.stdout:
            if BARE_READY in line:
                break
        else:
            raise SystemExit("the bare runtime process ended before it was ready")

    def __call__(self) -> float:
        self._proc.stdin.write("run\n")
        return float(self._proc.stdout.readline()) / 1e3

    def close(self) -> None:
        self._proc.stdin.close()
        self._proc.wait(timeout=STOP_TIMEOUT_S)


def sample_frame(width: int, height: int):
    from trt_infer_ros.resources import sample_images_dir
    return cv2.resize(cv2.imread(str(sample_images_dir() / "astronaut.jpg")), (width, height))


def _qos():
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    return QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


def ms(samples) -> str:
    a = 1000.0 * np.asarray(samples)
    return f"{np.median(a):7.2f} ms [{np.percentile(a, 10):.2f}..{np.percentile(a, 90):.2f}]"


def open_pipeline(image, backend: str, model: str):
    """The pipeline the node would build, warmed up, and the tensor its runner is timed on."""
    from trt_infer_ros.pipeline.gpu_pipeline import build_best_pipeline
    from trt_infer_ros.pipeline.preprocess import preprocess
    from trt_infer_ros.resources import default_model_path

    pipeline = build_best_pipeline(model or str(default_model_path()), backend=backend)
    tensor = preprocess(image, "bgr8", pipeline.adapter.input_spec)[0]
    for _ in range(5):
        pipeline.runner.run(tensor)
    return pipeline, tensor


def timed(call, frames: int, pause: float) -> list:
    """Seconds per call of `call()`, `pause` seconds apart. Paced calls wait as the node waits
    between frames: after a pause the runtime's threads sleep and its caches are cold, which
    back-to-back calls hide."""
    samples = []
    for _ in range(frames):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
        time.sleep(pause)
    return samples


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


class RoundTrip:
    """Publishes an image on `image_topic` and waits for the Detection2DArray on `answer_topic`."""

    def __init__(self, node, image_topic: str, answer_topic: str) -> None:
        from sensor_msgs.msg import Image
        from vision_msgs.msg import Detection2DArray

        self._answered = threading.Event()
        node.create_subscription(Detection2DArray, answer_topic,
                                 lambda m: self._answered.set(), 10)
        self._pub = node.create_publisher(Image, image_topic, _qos())

    def wait_for_subscriber(self) -> None:
        while self._pub.get_subscription_count() == 0:
            time.sleep(0.05)

    def __call__(self, msg):
        """Seconds from publishing `msg` to its answer; None when none came within 5 s."""
        self._answered.clear()
        start = time.perf_counter()
        self._pub.publish(msg)
        return time.perf_counter() - start if self._answered.wait(5.0) else None


def time_rounds(image, frames: int, gap_s: float, bare_call, node_cmd: list):
    """Per round, `gap_s` apart: the bare runtime, the relay's round trip, detector_node's round
    trip. Returns the three sample lists (rounds with all three answered) and detector_node's
    /diagnostics stage p50s."""
    import rclpy

    from trt_infer_ros.ros.image_conversion import array_to_image

    relay_proc = start_process([sys.executable, __file__, "relay"], RELAY_READY)
    node_proc = start_process(node_cmd, "ready:")
    context, node, executor = listener("node_process_benchmark")
    status = node_status(node)
    relay_trip = RoundTrip(node, RELAY_IMAGE_TOPIC, f"/{RELAY_NAME}/detections")
    node_trip = RoundTrip(node, IMAGE_TOPIC, "/detector_node/detections")
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    relay_trip.wait_for_subscriber()
    node_trip.wait_for_subscriber()
    msg = array_to_image(image, "bgr8")
    rounds = []
    for i in range(frames + WARM_UP_ROUNDS):       # the first rounds warm the paths up
        bare = bare_call()
        time.sleep(gap_s)
        relayed = relay_trip(msg)
        time.sleep(gap_s)
        detected = node_trip(msg)
        time.sleep(gap_s)
        if i >= WARM_UP_ROUNDS and relayed is not None and detected is not None:
            rounds.append((bare, relayed, detected))
    time.sleep(1.2)                                # one more /diagnostics period
    stop_process(node_proc)
    stop_process(relay_proc)
    executor.shutdown(timeout_sec=1.0)
    spinner.join(timeout=2.0)
    rclpy.try_shutdown(context=context)
    bare, relayed, detected = (list(column) for column in zip(*rounds)) if rounds else ([],) * 3
    return bare, relayed, detected, stage_p50s(status)


def node_status(node) -> dict:
    """detector_node's latest /diagnostics values, kept up to date in the returned dict."""
    from diagnostic_msgs.msg import DiagnosticArray

    status: dict = {}
    node.create_subscription(
        DiagnosticArray, "/diagnostics",
        lambda m: status.update({kv.key: kv.value for s in m.status
                                 if s.name.startswith("detector_node") for kv in s.values}), 10)
    return status


def stage_p50s(status: dict) -> dict:
    """{stage: p50 ms} from detector_node's diagnostics values."""
    return {k[:-9]: float(v) for k, v in status.items() if k.endswith(" p50 (ms)")}


def time_capture(cmd: list, image, frames: int, tmp: str):
    """Capture in the node's process: a 30 fps video of `image` as detector_node's `source`;
    latency = detections received - the capture stamp they carry (same host clock). Returns the
    latencies and the node's /diagnostics stage p50s."""
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
    status = node_status(node)
    latencies = []

    def received(msg) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        latencies.append((time.time_ns() - stamp) / 1e9)
    node.create_subscription(Detection2DArray, "/detector_node/detections", received, 10)
    deadline = time.monotonic() + 120
    while len(latencies) < frames + 10 and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
    end = time.monotonic() + 1.2                # one more /diagnostics period
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.1)
    stop_process(proc)
    executor.shutdown(timeout_sec=1.0)
    rclpy.try_shutdown(context=context)
    return latencies[10:], stage_p50s(status)  # the first frames warm the path up


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--size", default="640x480")
    p.add_argument("--gap-ms", type=float, default=20.0, help="pause between frames")
    p.add_argument("--transport", default=None, choices=TRANSPORTS,
                   help="DDS transport of every process here: a FASTDDS_BUILTIN_TRANSPORTS mode, "
                        "or CAMERA_FRAMES (config/fastdds_camera_frames.xml); default: as set")
    p.add_argument("--model", default="", help="ONNX model (default: the bundled CenterNet)")
    p.add_argument("--capture", action="store_true",
                   help="also: capture in the node's process from a 30 fps video file "
                        "(capture stamp -> detections received)")
    p.add_argument("--backend", default="onnxruntime",
                   help="detector_node's backend (auto: the GPU pipeline where there is one)")
    args = p.parse_args()
    if args.transport:
        env = dds_environment(args.transport)
        os.environ.clear()
        os.environ.update(env)
    width, height = (int(v) for v in args.size.split("x"))
    image = sample_frame(width, height)
    gap_s = args.gap_ms / 1e3
    pipeline, tensor = open_pipeline(image, args.backend, args.model)
    back_to_back = timed(lambda: pipeline.runner.run(tensor), args.frames, 0.0)
    whole = timed(lambda: pipeline(image, "bgr8"), args.frames, gap_s)
    pipeline.close()
    node_cmd = (["detector_node", "--ros-args", "-r", f"image:={IMAGE_TOPIC}", "-p",
                 f"backend:={args.backend}", "-p", "qos_reliability:=reliable"]
                + (["-p", f"model_path:={args.model}"] if args.model else []))
    bare_runtime_process = BareRuntime(args.backend, args.model, width, height)
    try:
        bare, relay_rt, node_rt, stages = time_rounds(image, args.frames, gap_s,
                                                      bare_runtime_process, node_cmd)
    finally:
        bare_runtime_process.close()
    if not node_rt:
        raise SystemExit("no round was answered by both the relay and detector_node")
    captured, capture_stages = [], {}
    if args.capture:
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            captured, capture_stages = time_capture(node_cmd, image, args.frames, tmp)
    print(f"{args.size} bgr8, {args.frames} frames, {args.gap_ms:g} ms between frames, "
          f"backend {args.backend}, {describe()}")
    print(f"bare runtime        {ms(bare)}  (back to back: {ms(back_to_back).strip()})")
    print(f"pipeline            {ms(whole)}")
    print(f"relay round trip    {ms(relay_rt)}")
    print(f"detector_node       {ms(node_rt)}")
    if args.capture:
        print(f"capture in process  {ms(captured) if captured else 'no detections'}  (capture "
              f"stamp -> detections received, 30 fps video file)")
        if captured:
            p50 = statistics.median(captured)
            print(f"capture - pipeline = {1000 * (p50 - statistics.median(whole)):.2f} ms; "
                  f"capture - its node's stages p50 (sum "
                  f"{sum(capture_stages.values()):.2f} ms) = "
                  f"{1000 * p50 - sum(capture_stages.values()):.2f} ms (hand-off, message, the "
                  f"detections' trip here)")
    print("node stages p50     " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
          + f" (sum {sum(stages.values()):.2f} ms)")
    node, relay_ms = statistics.median(node_rt), statistics.median(relay_rt)
    beyond_stages = 1000 * (node - relay_ms) - sum(stages.values())
    added = 1000 * (node - relay_ms - statistics.median(bare))
    print(f"detector_node - relay - node stages = {beyond_stages:.2f} ms")
    print(f"detector_node - relay - bare runtime = {added:.2f} ms (what the node adds to the "
          f"model); detector_node / bare = {node / statistics.median(bare):.2f}")
    per_round = np.asarray(node_rt) - np.asarray(relay_rt) - np.asarray(bare)
    print(f"node - relay - bare, per round = {ms(per_round).strip()}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "relay":
        relay(RELAY_IMAGE_TOPIC)
    elif len(sys.argv) > 1 and sys.argv[1] == "bare":
        bare_runtime(sys.argv[2], "" if sys.argv[3] == "-" else sys.argv[3], int(sys.argv[4]),
                     int(sys.argv[5]))
    else:
        raise SystemExit(main())
