"""trt_infer_ros_bench transport: sensor_msgs/Image between two Python processes.

  trt_infer_ros_bench transport [--sizes 640x480,1280x720,1920x1080,3840x2160]
      [--encodings bgr8,rgb8,mono8,jpeg,png] [--transports DEFAULT,LARGE_DATA,SHM,CAMERA_FRAMES]
      [--reliability reliable,best_effort] [--frames 30] [--gap-ms 33] [--burst-s 1.0]
      [--output DIR]

For each Fast DDS transport (FASTDDS_BUILTIN_TRANSPORTS, set on both processes; CAMERA_FRAMES is
this package's profile config/fastdds_camera_frames.xml) an echo process
answers every image with a small std_msgs/Header (the image's stamp, and its own receive time in
frame_id), and a sender process measures, per size x encoding x reliability:
- one-way latency: echo receive time - image stamp (same host clock), p50 and p90, frames
  published --gap-ms apart (a 30 Hz camera leaves 33 ms: the transport idles between frames);
- round trip: image published -> its answer received (one image in flight), p50 and p90;
- delivered rate: images published back to back for --burst-s, answers per second, and the
  fraction never answered (lost, or for best effort dropped by the transport).
Encodings jpeg and png send a bundled photo as sensor_msgs/CompressedImage on
<topic>/compressed (image_transport's defaults: JPEG quality 95, PNG level 9); their one-way
time includes decoding it as detector_node does (OpenCV), so they compare with raw bgr8.
Writes transport.json and prints a table.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from trt_infer_ros import cli_arguments as arguments
from trt_infer_ros.bench.dds_environment import TRANSPORTS, dds_environment
from trt_infer_ros.bench.processes import stop_process

ECHO = "echo"
SENDER = "sender"
READY = "transport-bench-ready"
DONE = "transport-bench-done"


def _qos(reliability: str, depth: int):
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      durability=DurabilityPolicy.VOLATILE,
                      reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable"
                      else ReliabilityPolicy.BEST_EFFORT)


def run_echo(reliabilities: list) -> None:
    """Answer each image on /transport_bench/<reliability>/image with a Header, and each
    compressed image on .../image/compressed once it is decoded as detector_node decodes it."""
    import rclpy
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import Header

    from trt_infer_ros.ros.frame_input import decode_compressed

    rclpy.init()
    node = rclpy.create_node("transport_bench_echo")
    for rel in reliabilities:
        ack = node.create_publisher(Header, f"/transport_bench/{rel}/ack", _qos("reliable", 100))

        def answer(msg: Image, ack=ack) -> None:
            ack.publish(Header(stamp=msg.header.stamp, frame_id=str(time.time_ns())))
        node.create_subscription(Image, f"/transport_bench/{rel}/image", answer, _qos(rel, 5))

        def decode_and_answer(msg: CompressedImage, ack=ack) -> None:
            decode_compressed(msg.format, msg.data)
            ack.publish(Header(stamp=msg.header.stamp, frame_id=str(time.time_ns())))
        node.create_subscription(CompressedImage, f"/transport_bench/{rel}/image/compressed",
                                 decode_and_answer, _qos(rel, 5))
    print(READY, flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, Exception):
        pass
    finally:
        rclpy.try_shutdown()


def run_sender(sizes: list, encodings: list, reliabilities: list, frames: int,
               burst_s: float, gap_s: float = 0.0) -> None:
    """Measure every combination; print one JSON line per combination."""
    import threading

    import numpy as np
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    rclpy.init()
    node = rclpy.create_node("transport_bench_sender")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    acks: list = []
    arrived = threading.Event()

    def on_ack(msg: Header) -> None:
        acks.append((time.time_ns(), msg))
        arrived.set()

    for rel in reliabilities:
        pubs = {"raw": node.create_publisher(Image, f"/transport_bench/{rel}/image",
                                             _qos(rel, 5))}
        if any(e in COMPRESSED for e in encodings):
            from sensor_msgs.msg import CompressedImage
            pubs["compressed"] = node.create_publisher(
                CompressedImage, f"/transport_bench/{rel}/image/compressed", _qos(rel, 5))
        node.create_subscription(Header, f"/transport_bench/{rel}/ack", on_ack,
                                 _qos("reliable", 100))
        deadline = time.monotonic() + 20
        # Both directions: the echo's answers published before it has matched us are lost.
        while ((any(p.get_subscription_count() == 0 for p in pubs.values())
                or node.count_publishers(f"/transport_bench/{rel}/ack") == 0)
               and time.monotonic() < deadline):
            time.sleep(0.05)
        for size in sizes:
            width, height = (int(v) for v in size.split("x"))
            for encoding in encodings:
                row = dict(size=size, encoding=encoding, reliability=rel)
                if encoding in COMPRESSED:
                    msg = _compressed_photo(width, height, encoding)
                    row["payload_bytes"] = len(msg.data)
                    pub = pubs["compressed"]
                else:
                    channels = RAW_CHANNELS[encoding]
                    msg = Image(width=width, height=height, encoding=encoding,
                                step=width * channels)
                    msg.data = np.random.default_rng(0).integers(
                        0, 255, width * height * channels, np.uint8).tobytes()
                    row["payload_bytes"] = len(msg.data)
                    pub = pubs["raw"]
                print(json.dumps(_measure(pub, msg, acks, arrived, frames, burst_s, gap_s, row)),
                      flush=True)
    print(DONE, flush=True)                  # the parent need not wait for the shutdown below
    executor.shutdown(timeout_sec=2.0)       # the spinning thread ends before rclpy does
    spinner.join(timeout=2.0)
    node.destroy_node()
    rclpy.try_shutdown()


COMPRESSED = ("jpeg", "png")
RAW_CHANNELS = {"bgr8": 3, "rgb8": 3, "mono8": 1}
ENCODINGS = tuple(RAW_CHANNELS) + COMPRESSED
RELIABILITIES = ("reliable", "best_effort")


def _compressed_photo(width: int, height: int, codec: str):
    """A bundled photo at width x height as sensor_msgs/CompressedImage, encoded the way
    image_transport's compressed plugin does by default (JPEG quality 95, PNG level 9)."""
    import cv2
    from sensor_msgs.msg import CompressedImage

    from trt_infer_ros.resources import sample_images_dir

    photo = cv2.resize(cv2.imread(str(sample_images_dir() / "astronaut.jpg")), (width, height))
    params = ([cv2.IMWRITE_JPEG_QUALITY, 95] if codec == "jpeg"
              else [cv2.IMWRITE_PNG_COMPRESSION, 9])
    ok, data = cv2.imencode("." + codec.replace("jpeg", "jpg"), photo, params)
    if not ok:
        raise RuntimeError(f"OpenCV cannot encode {codec} here")
    return CompressedImage(format=f"bgr8; {codec} compressed bgr8", data=data.tobytes())


def _stamp(ns: int):
    from builtin_interfaces.msg import Time
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _measure(pub, msg, acks, arrived, frames, burst_s, gap_s, row: dict) -> dict:
    import numpy as np

    one_way, round_trip, lost = [], [], 0
    for _ in range(frames + 3):                    # the first 3 warm the path up
        acks.clear()
        arrived.clear()
        sent = time.time_ns()
        msg.header.stamp = _stamp(sent)
        if not _publish(pub, msg) or not arrived.wait(1.0):
            lost += 1
            continue
        back, ack = acks[0]
        one_way.append((int(ack.frame_id) - sent) / 1e6)
        round_trip.append((back - sent) / 1e6)
        time.sleep(gap_s)
    one_way, round_trip = one_way[3:], round_trip[3:]
    acks.clear()
    sent_n, refused, start = 0, 0, time.monotonic()
    while time.monotonic() - start < burst_s:
        msg.header.stamp = _stamp(time.time_ns())
        if _publish(pub, msg):
            sent_n += 1
        else:
            refused += 1
    elapsed = time.monotonic() - start
    answered = _settle(acks)
    q = lambda xs, p: round(float(np.percentile(xs, p)), 3) if xs else None  # noqa: E731
    row.update(one_way_p50_ms=q(one_way, 50), one_way_p90_ms=q(one_way, 90),
               round_trip_p50_ms=q(round_trip, 50), round_trip_p90_ms=q(round_trip, 90),
               single_lost=lost, burst_refused=refused,
               burst_sent_hz=round(sent_n / elapsed, 1),
               delivered_hz=round(answered / elapsed, 1),
               burst_lost_fraction=round(1 - min(answered, sent_n) / max(sent_n, 1), 3))
    return row


def _settle(acks: list, quiet_s: float = 0.5, limit_s: float = 10.0) -> int:
    """Wait until the answers stop coming (the burst has drained from the writer's queue and the
    echo), so the next measurement starts on an idle path; returns how many arrived."""
    start = time.monotonic()
    count, last_change = len(acks), time.monotonic()
    while time.monotonic() - start < limit_s and time.monotonic() - last_change < quiet_s:
        time.sleep(0.05)
        if len(acks) != count:
            count, last_change = len(acks), time.monotonic()
    return count


def _publish(pub, msg) -> bool:
    """False when the middleware refuses the sample (its buffers are full)."""
    try:
        pub.publish(msg)
        return True
    except Exception:
        return False


def _child(role: str, transport: str, args: list) -> subprocess.Popen:
    env = dds_environment(transport)
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen([sys.executable, "-m", "trt_infer_ros.bench.transport", role]
                            + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def run(args) -> int:
    """The whole matrix; returns the exit status."""
    reliabilities = args.reliability.split(",")
    rows = []
    for transport in args.transports.split(","):
        echo, sender = _child(ECHO, transport, reliabilities), None
        try:
            if echo.stdout.readline().strip() != READY:
                print(f"transport {transport}: echo process did not start: "
                      f"{echo.stderr.read()[-500:]}", file=sys.stderr)
                return 1
            sender = _child(SENDER, transport, [args.sizes, args.encodings, args.reliability,
                                                str(args.frames), str(args.burst_s),
                                                str(args.gap_ms / 1e3)])
            finished = False
            for line in sender.stdout:             # each combination as soon as it is measured
                if line.strip() == DONE:
                    finished = True
                    break
                row = json.loads(line)
                row["transport"] = transport
                rows.append(row)
                print(_row_text(row), flush=True)
            if not finished:
                sender.wait(timeout=args.timeout_s)
                print(f"transport {transport}: sender failed: {sender.stderr.read()[-500:]}",
                      file=sys.stderr)
                return 1
        finally:
            for child in filter(None, (sender, echo)):
                stop_process(child)
    out_dir = Path(args.output or "bench_output/transport")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "transport.json").write_text(json.dumps(rows, indent=1))
    print(f"wrote {out_dir / 'transport.json'}")
    return 0


def _row_text(r: dict) -> str:
    return (f"{r['transport']:<10} {r['reliability']:<11} {r['size']:>9} {r['encoding']:<5} "
            f"one-way {r['one_way_p50_ms']} ms (p90 {r['one_way_p90_ms']}), round trip "
            f"{r['round_trip_p50_ms']} ms (p90 {r['round_trip_p90_ms']}), "
            f"{r['delivered_hz']} Hz delivered of {r['burst_sent_hz']} sent "
            f"({100 * r['burst_lost_fraction']:.0f}% lost)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trt_infer_ros_bench transport", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=arguments.sizes,
                   default="640x480,1280x720,1920x1080,3840x2160")
    p.add_argument("--encodings", type=arguments.names(ENCODINGS, "unknown encoding"),
                   default="bgr8,mono8", help=", ".join(ENCODINGS))
    p.add_argument("--transports", type=arguments.names(TRANSPORTS, "unknown transport"),
                   default="DEFAULT,LARGE_DATA,SHM,CAMERA_FRAMES", help=", ".join(TRANSPORTS))
    p.add_argument("--reliability", type=arguments.names(RELIABILITIES, "unknown reliability"),
                   default="reliable,best_effort")
    p.add_argument("--frames", type=arguments.number(int, 1), default=30,
                   help="single frames per combination")
    p.add_argument("--gap-ms", type=arguments.number(float, 0), default=33.0,
                   help="pause between single frames (33: a 30 Hz camera)")
    p.add_argument("--burst-s", type=arguments.number(float, 0, low_inclusive=False),
                   default=1.0, help="back-to-back publishing time")
    p.add_argument("--timeout-s", type=arguments.number(float, 0, low_inclusive=False),
                   default=900.0)
    p.add_argument("--output", default=None)
    return p


if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role == ECHO:
        run_echo(sys.argv[2:])
    elif role == SENDER:
        sizes, encodings, rels, frames, burst, gap = sys.argv[2:8]
        run_sender(sizes.split(","), encodings.split(","), rels.split(","), int(frames),
                   float(burst), float(gap))
    else:
        raise SystemExit(run(parser().parse_args()))
