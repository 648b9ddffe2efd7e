"""Split pipeline numbers: feature hand-off per frame, and pair vs whole-model throughput.

  python benchmarks/split_benchmark.py handoff     # inline DDS bytes vs shared memory
  python benchmarks/split_benchmark.py throughput  # backbone+head processes vs one pipeline
  python benchmarks/split_benchmark.py all --json out.json
  python benchmarks/split_benchmark.py ipc         # GPU: CUDA IPC vs shared memory

handoff: for the bundled CenterNet cut (its real feature shapes) and a YOLOv8n-shaped P3/P4/P5
cut, a producer process hands frames to a consumer process over real DDS (rclpy, reliable,
depth 2) at 10 Hz; per frame the time from "the backbone has its outputs" to "the head holds
numpy arrays of them" (CLOCK_MONOTONIC is shared by processes). inline = encode + DDS + decode.
shared memory: the runner's outputs are already in a leased slot (it wrote them there), so the
hand-off is slot acquire + commit and handle header (producer) + decode, lease, views and
release (consumer), and the handle message's trip through rclpy and DDS. The floor is that trip
alone: a message of the handle's length with no tensors, which any message pays.

throughput: the same photos through (a) DetectionPipeline, onnxruntime with 2 threads, and (b)
BackboneStage (1 thread) and HeadStage (1 thread) in two processes joined by the ring, at most
`ring_slots` frames in flight; frames per second and per-frame latency (median, p90).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
YOLO_SHAPES = {"p3": (1, 64, 80, 80), "p4": (1, 128, 40, 40), "p5": (1, 256, 20, 20)}
# the bundled CenterNet's suggested cut (centernet_shapes()), for machines without its ONNX tools
CENTERNET_CUT = {"wh": (1, 128, 128, 4), "heatmap": (1, 128, 128, 80),
                 "heatmap_max": (1, 128, 128, 80)}


def centernet_shapes() -> dict:
    from trt_infer_ros.engine.onnx_split import suggest_cut
    from trt_infer_ros.resources import default_model_path
    cut = suggest_cut(str(default_model_path()))
    return {name: tuple(cut.shapes[name]) for name in cut.tensors}


def _stats(ms: list) -> dict:
    ms = sorted(ms)
    return {"n": len(ms), "median_ms": round(statistics.median(ms), 3),
            "p10_ms": round(ms[len(ms) // 10], 3), "p90_ms": round(ms[len(ms) * 9 // 10], 3),
            "max_ms": round(ms[-1], 3)}


def _cell(stats: dict) -> str:
    return f"{stats['median_ms']:.3f} [{stats['p10_ms']:.3f}..{stats['p90_ms']:.3f}]"


# --- hand-off ---------------------------------------------------------------------------------

def _consumer(domain, ready, results, frames, mode):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import UInt8MultiArray
    from trt_infer_ros.ros.feature_qos import FEATURES_QOS
    from trt_infer_ros.transport.receiver import FeatureReceiver
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("handoff_consumer", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    receiver, got = FeatureReceiver(), {}

    def on_msg(msg):
        arrived = time.monotonic_ns()
        if mode == "floor":              # no bundle: send time and sequence in 16 bytes
            sent, seq = np.frombuffer(msg.data, "<u8", 2)
            got[int(seq)] = {"arrived": arrived, "sent": int(sent)}
            return
        t0 = time.perf_counter_ns()
        r = receiver.open(memoryview(msg.data))
        opened = time.perf_counter_ns()
        first = next(iter(r.arrays.values()))
        marker = float(first.flat[0])     # the head reads the tensors here
        t1 = time.perf_counter_ns()
        r.close()
        closed = time.perf_counter_ns()
        got[r.bundle.seq] = {"arrived": arrived, "lease_ms": ((opened - t0) + (closed - t1)) / 1e6,
                             "done": time.monotonic_ns(), "marker": marker}

    node.create_subscription(UInt8MultiArray, "features", on_msg, FEATURES_QOS)
    ready.set()
    deadline = time.monotonic() + 120
    while len(got) < frames and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
    results.put(got)
    receiver.close()
    node.destroy_node()
    rclpy.shutdown(context=context)


def handoff(shapes: dict, mode: str, frames: int = 40, domain: int = 77) -> dict:
    """mode "inline": the bytes in the message; "shm": the runner's outputs already in a leased
    slot, only the handle travels; "floor": a message as long as that handle, no tensors."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import UInt8MultiArray
    from trt_infer_ros.models.spec import ImageTransform
    from trt_infer_ros.ros.feature_messages import to_message
    from trt_infer_ros.ros.feature_qos import FEATURES_QOS
    from trt_infer_ros.transport.bundle import TensorSpec
    from trt_infer_ros.transport.sender import FeatureSender
    ctx = mp.get_context("spawn")
    ready, results = ctx.Event(), ctx.Queue()
    consumer = ctx.Process(target=_consumer, args=(domain, ready, results, frames, mode))
    consumer.start()
    ready.wait(60)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("handoff_producer", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    pub = node.create_publisher(UInt8MultiArray, "features", FEATURES_QOS)
    while pub.get_subscription_count() == 0:
        executor.spin_once(timeout_sec=0.05)
    time.sleep(0.5)
    sender = FeatureSender("inline" if mode == "inline" else "shared_memory", 4, lambda _: None)
    arrays = {k: np.random.default_rng(0).random(s, np.float32) for k, s in shapes.items()}
    specs = {k: TensorSpec(a.shape, a.dtype) for k, a in arrays.items()}
    transform = ImageTransform(1.0, 1.0, 0.0, 0.0, 640, 640)
    # the handle's length, for the floor message
    handle_len = len(sender.frame(specs).bundle((0, 0), "", transform, arrays))
    sent = {}
    for seq in range(2, frames + 7):
        t0 = time.monotonic_ns()
        if mode == "inline":
            bundle = sender.encode((0, 0), "", transform, arrays)
            row = {"start": t0}
        elif mode == "shm":
            with sender.frame(specs) as out:
                t1 = time.monotonic_ns()
                out.arrays[next(iter(specs))].flat[0] = seq     # the runner writes here
                t2 = time.monotonic_ns()
                bundle = out.bundle((0, 0), "", transform, out.arrays)
            t3 = time.monotonic_ns()
            row = {"start": t0, "acquire_ms": (t1 - t0) / 1e6, "commit_ms": (t3 - t2) / 1e6,
                   "published": t3}
        else:
            bundle = bytearray(handle_len)
            bundle[:16] = np.array([t0, seq], "<u8").tobytes()
            row = {"published": t0}
        sent[seq] = row
        pub.publish(to_message(bundle))
        executor.spin_once(timeout_sec=0.1)
    got = results.get(timeout=120)
    consumer.join(10)
    copy_ms, warm_ms = [], []
    if mode == "shm":
        # the same slot costs frame after frame, caches warm (one process, no DDS)
        from trt_infer_ros.transport.receiver import FeatureReceiver
        receiver = FeatureReceiver()
        for _ in range(200):
            t = time.perf_counter_ns()
            with sender.frame(specs) as out:
                bundle = out.bundle((0, 0), "", transform, out.arrays)
            receiver.open(bundle).close()
            warm_ms.append((time.perf_counter_ns() - t) / 1e6)
        receiver.close()
        # what runners that cannot write into a slot pay: one copy of their outputs
        for _ in range(20):
            t = time.perf_counter_ns()
            sender.encode((0, 0), "", transform, arrays)
            copy_ms.append((time.perf_counter_ns() - t) / 1e6)
    sender.close()
    node.destroy_node()
    rclpy.shutdown(context=context)
    out = {"mode": mode, "bytes": int(sum(a.nbytes for a in arrays.values())),
           "message_bytes": handle_len if mode != "inline" else None}
    rows = [(sent[k], v) for k, v in got.items() if k in sent]
    if mode == "shm":        # every frame the consumer read was the one its handle named
        assert all(v["marker"] == k for k, v in got.items() if k in sent)
    if mode == "inline":
        out["total"] = _stats([(g["done"] - s["start"]) / 1e6 for s, g in rows])
    elif mode == "floor":
        out["dds"] = _stats([(g["arrived"] - s["published"]) / 1e6 for s, g in rows])
    else:
        out["slot_acquire_lease_header"] = _stats(
            [s["acquire_ms"] + s["commit_ms"] + g["lease_ms"] for s, g in rows])
        out["acquire"] = _stats([s["acquire_ms"] for s, _ in rows])
        out["commit_header"] = _stats([s["commit_ms"] for s, _ in rows])
        out["lease"] = _stats([g["lease_ms"] for _, g in rows])
        out["dds"] = _stats([(g["arrived"] - s["published"]) / 1e6 for s, g in rows])
        out["total"] = _stats([(g["done"] - s["start"]) / 1e6 for s, g in rows])
        out["copy_into_slot"] = _stats(copy_ms)
        out["slot_costs_back_to_back"] = _stats(warm_ms)
    return out


# --- GPU: CUDA IPC vs shared memory, two plain processes ------------------------------------

def _ipc_consumer(conn):
    """Leases each handle it is sent; answers the lease + release time and the first value."""
    from trt_infer_ros.cuda.buffers import DeviceBuffer
    from trt_infer_ros.cuda.context import CudaContext
    from trt_infer_ros.transport.bundle import decode
    from trt_infer_ros.transport.cuda_ring import CudaRingReader
    from trt_infer_ros.transport.shm_ring import ShmRingReader
    context = CudaContext.primary()
    device, host, staging = CudaRingReader(context), ShmRingReader(), {}
    conn.send("ready")
    while True:
        raw = conn.recv()
        if raw is None:
            break
        t0 = time.perf_counter_ns()
        bundle = decode(raw)
        if bundle.kind == "cuda_ipc":     # a GPU head reads the device tensors in place
            lease = device.lease(bundle.location, bundle.tensors)
            first = next(iter(lease.tensors.values()))
            t1 = time.perf_counter_ns()
            marker = float(first.download().flat[0])      # checks the bytes (not timed)
            t2 = time.perf_counter_ns()
            lease.release()
            upload_ms = 0.0
        else:                             # a GPU head must upload the slot's tensors
            lease = host.lease(bundle.location, bundle.tensors)
            t1 = time.perf_counter_ns()
            up = time.perf_counter_ns()
            for name, a in lease.arrays.items():
                if name not in staging:
                    staging[name] = DeviceBuffer(context, a.nbytes)
                staging[name].upload(a)
            upload_ms = (time.perf_counter_ns() - up) / 1e6
            marker = float(next(iter(lease.arrays.values())).flat[0])
            t2 = time.perf_counter_ns()
            lease.release()
        t3 = time.perf_counter_ns()
        conn.send((((t1 - t0) + (t3 - t2)) / 1e6, upload_ms, marker))
    device.close()
    host.close()


def ipc_handoff(shapes: dict, frames: int = 100) -> dict:
    """Per frame, with the backbone's outputs on the GPU: CUDA IPC (slot acquire, event and
    header; lease with the event wait; nothing copied) vs shared memory (the outputs copied
    device -> slot, and the head's upload slot -> device)."""
    from trt_infer_ros.cuda.buffers import DeviceBuffer
    from trt_infer_ros.cuda.context import CudaContext
    from trt_infer_ros.cuda.errors import check
    from trt_infer_ros.models.spec import ImageTransform
    from trt_infer_ros.transport.bundle import TensorSpec, encode_handle, plan_layout
    from trt_infer_ros.transport.cuda_ring import CudaRingWriter
    from trt_infer_ros.transport.shm_ring import ShmRingWriter
    from cuda.bindings import driver
    context = CudaContext.primary()
    specs = {k: TensorSpec(s, np.dtype(np.float32)) for k, s in shapes.items()}
    infos, size = plan_layout(specs)
    outputs = DeviceBuffer(context, size)          # where a GPU runner left its outputs
    transform = ImageTransform(1.0, 1.0, 0.0, 0.0, 640, 640)
    ctx = mp.get_context("spawn")
    mine, theirs = ctx.Pipe()
    consumer = ctx.Process(target=_ipc_consumer, args=(theirs,))
    consumer.start()
    assert mine.recv() == "ready"
    device_ring, host_ring = CudaRingWriter(context, 4, size), ShmRingWriter(4, size)
    report = {"bytes": size}
    for kind in ("cuda_ipc", "shm"):
        rows = []
        for seq in range(1, frames + 6):
            value = float(seq)
            check(driver.cuMemsetD32(outputs.ptr, int(np.float32(value).view(np.uint32)),
                                     size // 4), "cuMemsetD32")    # the runner's outputs
            t0 = time.perf_counter_ns()
            if kind == "cuda_ipc":
                with device_ring.reserve(infos) as slot:
                    t1 = time.perf_counter_ns()
                    # a runner bound to the slot writes there; this stands in (not timed)
                    check(driver.cuMemcpyDtoD(slot.tensors[infos[0].name].ptr, outputs.ptr,
                                              size), "cuMemcpyDtoD")
                    t2 = time.perf_counter_ns()
                    location = slot.commit()
                copy_ms = 0.0
            else:
                with host_ring.reserve(infos) as slot:
                    t1 = t2 = time.perf_counter_ns()
                    outputs.download(slot.memory[:size])          # device -> slot: timed
                    t3 = time.perf_counter_ns()
                    copy_ms = (t3 - t2) / 1e6
                    t2 = t3
                    location = slot.commit()
            raw = encode_handle(seq, (0, 0), "", transform, infos, location)
            t4 = time.perf_counter_ns()
            mine.send(bytes(raw))
            lease_ms, upload_ms, marker = mine.recv()
            assert marker == value, (kind, marker, value)
            if seq > 5:
                rows.append((((t1 - t0) + (t4 - t2)) / 1e6 + lease_ms, copy_ms + upload_ms))
            time.sleep(0.02)
        report[kind] = {"slot_acquire_lease_header": _stats([r[0] for r in rows]),
                        "device_host_copies": _stats([r[1] for r in rows])}
    mine.send(None)
    consumer.join(30)
    device_ring.close()
    host_ring.close()
    outputs.close()
    return report


# --- throughput -------------------------------------------------------------------------------

def _photos():
    import cv2
    from trt_infer_ros.resources import sample_images_dir
    return [cv2.imread(str(p)) for p in sorted(sample_images_dir().glob("*.jpg"))]


def _runner(path, threads):
    from trt_infer_ros.backends.onnxruntime_runner import OnnxRuntimeRunner
    return OnnxRuntimeRunner(path, "CPU", intra_op_threads=threads)


def _head_process(model, head_path, cut, conn, slots):
    from trt_infer_ros.models.registry import create_adapter
    from trt_infer_ros.pipeline.split import HeadStage
    from trt_infer_ros.transport.receiver import FeatureReceiver
    head = HeadStage(create_adapter("auto", model), _runner(head_path, 1), input_names=cut)
    receiver = FeatureReceiver()
    conn.send("ready")
    while True:
        item = conn.recv()
        if item is None:
            break
        with receiver.open(item) as r:
            head(r.arrays, r.bundle.transform)
        conn.send(time.monotonic_ns())
    receiver.close()


def throughput(seconds: float = 15.0, slots: int = 3) -> dict:
    from trt_infer_ros.engine.split_cache import split_files
    from trt_infer_ros.models.registry import create_adapter
    from trt_infer_ros.pipeline.detector import DetectionPipeline
    from trt_infer_ros.pipeline.split import BackboneStage
    from trt_infer_ros.resources import default_model_path
    from trt_infer_ros.transport.sender import FeatureSender
    model = str(default_model_path())
    photos = _photos()
    files = split_files(model)

    whole = DetectionPipeline(create_adapter("auto", model), _runner(model, 2))
    for img in photos:
        whole(img, "bgr8")
    lat, start, n = [], time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        whole(photos[n % len(photos)], "bgr8")
        lat.append((time.perf_counter() - t) * 1e3)
        n += 1
    whole_fps = n / (time.perf_counter() - start)

    ctx = mp.get_context("spawn")
    mine, theirs = ctx.Pipe()
    head = ctx.Process(target=_head_process, args=(model, files.head, list(files.cut_tensors),
                                                   theirs, slots))
    head.start()
    backbone = BackboneStage(create_adapter("auto", model), _runner(files.backbone, 1))
    for img in photos:
        backbone(img, "bgr8")
    sender = FeatureSender("shared_memory", slots + 1, lambda _: None)
    assert mine.recv() == "ready"
    started, pair_lat, done, skipped = {}, [], 0, 0
    in_flight = []
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        # bounded: at most `slots` frames handed over and not yet finished by the head
        while len(in_flight) >= slots or (in_flight and mine.poll()):
            finished = mine.recv()
            pair_lat.append((finished - in_flight.pop(0)) / 1e6)
            done += 1
        t0 = time.monotonic_ns()
        features, transform = backbone(photos[n % len(photos)], "bgr8")
        bundle = sender.encode((0, n), "", transform, features)
        n += 1
        if bundle is None:
            skipped += 1
            continue
        mine.send(bytes(bundle))
        in_flight.append(t0)
    while in_flight:
        pair_lat.append((mine.recv() - in_flight.pop(0)) / 1e6)
        done += 1
    pair_fps = done / (time.perf_counter() - start)
    mine.send(None)
    head.join(10)
    sender.close()
    return {"detector_pipeline_2_threads": {"fps": round(whole_fps, 2), **_stats(lat)},
            "pair_1_thread_each": {"fps": round(pair_fps, 2), "skipped": skipped,
                                   **_stats(pair_lat)},
            "speedup": round(pair_fps / whole_fps, 3),
            "latency_ratio": round(statistics.median(pair_lat) / statistics.median(lat), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("handoff", "throughput", "all", "ipc"))
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--frames", type=int, default=40, help="hand-off frames per mode")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    report = {}
    if args.what in ("handoff", "all"):
        cuts = (("centernet", centernet_shapes()), ("yolov8n", YOLO_SHAPES))
        for name, shapes in cuts:
            for mode in ("inline", "shm", "floor"):
                report[f"handoff_{name}_{mode}"] = r = handoff(shapes, mode, args.frames)
                print(f"{name:9s} {mode:6s} {json.dumps(r)}", flush=True)
        rows = [("inline bytes over DDS, total", "inline", "total"),
                ("shared memory, total", "shm", "total"),
                ("  slot acquire + lease + header", "shm", "slot_acquire_lease_header"),
                ("  handle message over DDS", "shm", "dds"),
                ("slot acquire + lease + header, back to back", "shm",
                 "slot_costs_back_to_back"),
                ("DDS floor: same-size message, no tensors", "floor", "dds"),
                ("copy into a slot (runners that cannot write there)", "shm", "copy_into_slot")]
        print(f"\n{'hand-off per frame, ms, median [p10..p90]':52s} " +
              " ".join(f"{n:>24s}" for n, _ in cuts))
        for label, mode, key in rows:
            print(f"{label:52s} " + " ".join(
                f"{_cell(report[f'handoff_{n}_{mode}'][key]):>24s}" for n, _ in cuts))
    if args.what == "ipc":
        cuts = (("centernet", CENTERNET_CUT), ("yolov8n", YOLO_SHAPES))
        for name, shapes in cuts:
            report[f"ipc_{name}"] = r = ipc_handoff(shapes)
            print(f"{name:9s} {json.dumps(r)}", flush=True)
        print(f"\n{'GPU outputs, per frame, ms, median [p10..p90]':52s} " +
              " ".join(f"{n:>24s}" for n, _ in cuts))
        for kind in ("cuda_ipc", "shm"):
            for key, label in (("slot_acquire_lease_header", "slot acquire + lease + header"),
                               ("device_host_copies", "device<->host copies")):
                print(f"{kind + ': ' + label:52s} " + " ".join(
                    f"{_cell(report[f'ipc_{n}'][kind][key]):>24s}" for n, _ in cuts))
    if args.what in ("throughput", "all"):
        report["throughput"] = throughput(args.seconds)
        print(json.dumps(report["throughput"], indent=1), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
