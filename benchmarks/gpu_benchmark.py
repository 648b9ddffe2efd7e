"""GPU path benchmark: one run prints every number GPU_NOTES.md reports.

  python benchmarks/gpu_benchmark.py [--model models/centernet_mobilenetv3_coco.onnx]
                                     [--yolo-size 640] [--frames 300] [--json out.json]

Sections (all on the current CUDA device, timed after warm-up, medians):
  copy        device-to-device copy bandwidth (bytes read + written), the memory ceiling
  preprocess  preprocessing kernel: achieved bandwidth (source + tensor bytes) vs that copy
  decode      GPU decode+NMS (graph replay, host wall incl. sync) vs numpy decode+NMS
  model/frame per model: bare model GPU time (its CUDA graph(s) alone, events), whole-frame GPU
              time (events), host time per frame eager vs graph (launch only, and launch+sync),
              end-to-end latency of pipeline(image) (host wall), CPU pipeline for reference
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from trt_infer_ros.cuda.buffers import DeviceBuffer  # noqa: E402
from trt_infer_ros.cuda.context import CudaContext  # noqa: E402
from trt_infer_ros.cuda.graph import capture, chain  # noqa: E402
from trt_infer_ros.cuda.stream import Event, Stream  # noqa: E402

RESULTS: dict = {}
ROWS: list[tuple[str, str]] = []


def row(name: str, value: str) -> None:
    ROWS.append((name, value))
    print(f"  {name:<58} {value}", flush=True)


def gpu_ms(ctx, stream, fn, reps=50, warmup=3) -> float:
    """Median GPU time of fn() (enqueues on stream), measured with events per repetition."""
    start, end = Event(ctx), Event(ctx)
    for _ in range(warmup):
        fn()
    stream.synchronize()
    times = []
    for _ in range(reps):
        start.record(stream)
        fn()
        end.record(stream)
        end.synchronize()
        times.append(start.elapsed_ms(end))
    return statistics.median(times)


def host_ms(fn, reps=50, warmup=5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def bench_copy(ctx, stream) -> float:
    from cuda.bindings import driver
    from trt_infer_ros.cuda.errors import check

    nbytes = 1 << 30
    a, b = DeviceBuffer(ctx, nbytes), DeviceBuffer(ctx, nbytes)
    a.fill_u8(7)
    ms = gpu_ms(ctx, stream, lambda: check(driver.cuMemcpyDtoDAsync(b.ptr, a.ptr, nbytes,
                                                                     stream.handle)), reps=20)
    a.close()
    b.close()
    gbs = 2 * nbytes / ms / 1e6
    RESULTS["copy_GBps"] = gbs
    row("device-to-device copy, 1 GiB (read+write)", f"{gbs:8.0f} GB/s")
    return gbs


def bench_preprocess(ctx, stream, copy_gbs: float) -> None:
    from trt_infer_ros.cuda.preprocess_kernel import GpuPreprocessor, SourceLayout
    from trt_infer_ros.models.spec import InputSpec
    from trt_infer_ros.pipeline.preprocess import compute_transform

    rng = np.random.default_rng(0)
    cases = [("1920x1080 bgr8 -> 640x640 letterbox NCHW fp32", 1920, 1080, "bgr8",
              InputSpec(width=640, height=640)),
             ("1280x720 bgr8 -> 512x512 stretch NHWC fp32 (centernet)", 1280, 720, "bgr8",
              InputSpec(width=512, height=512, layout="NHWC", resize="stretch", scale=1.0)),
             ("3840x2160 bgra8 -> 1280x1280 letterbox NCHW fp16", 3840, 2160, "bgra8",
              InputSpec(width=1280, height=1280, dtype="float16")),
             ("1280x1280 rgb8 -> 1280x1280 NCHW fp32 (no resize)", 1280, 1280, "rgb8",
              InputSpec(width=1280, height=1280))]
    RESULTS["preprocess"] = []
    for label, w, h, enc, spec in cases:
        transform, nw, nh = compute_transform(w, h, spec)
        layout = SourceLayout(w, h, w * {"bgr8": 3, "rgb8": 3, "bgra8": 4}[enc], enc)
        pre = GpuPreprocessor(ctx, spec, layout, (nw, nh), (int(transform.pad_x), int(transform.pad_y)))
        per_set = layout.nbytes + pre.output_nbytes
        sets = max(2, int(np.ceil(200e6 / per_set)))      # rotate through > 4x the 50 MB L2
        srcs, dsts = [], []
        for _ in range(sets):
            s = DeviceBuffer(ctx, layout.nbytes)
            s.upload(rng.integers(0, 256, layout.nbytes, dtype=np.uint8))
            srcs.append(s)
            dsts.append(DeviceBuffer(ctx, pre.output_nbytes))
        state = {"i": 0}

        def launch():
            i = state["i"] = (state["i"] + 1) % sets
            pre.enqueue(srcs[i].ptr, dsts[i].ptr, stream)

        batch = 20
        ms_stream = gpu_ms(ctx, stream, lambda: [launch() for _ in range(batch)], reps=15) / batch
        # the same launches replayed as one graph: fewer gaps between the short kernels
        g = capture(stream, lambda: [launch() for _ in range(sets * 2)])
        ge = g.instantiate()
        ms = gpu_ms(ctx, stream, lambda: ge.launch(stream), reps=15) / (sets * 2)
        ge.close()
        g.close()
        gbs = per_set / ms / 1e6
        RESULTS["preprocess"].append({"case": label, "us": ms * 1e3, "us_stream": ms_stream * 1e3,
                                      "bytes": per_set, "GBps": gbs,
                                      "fraction_of_copy": gbs / copy_gbs})
        row(f"preprocess {label}", f"{ms * 1e3:7.1f} us  {gbs:6.0f} GB/s = {gbs / copy_gbs:4.0%} of copy"
            f"  (floor {per_set / copy_gbs / 1e3:5.1f} us; {ms_stream * 1e3:5.1f} us as stream launches)")
        for b in srcs + dsts:
            b.close()


def yolov8_output(rng, n, nc):
    centres = rng.uniform(40, 600, size=(max(1, n // 40), 2))
    cxcy = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 6, size=(n, 2))
    wh = rng.uniform(8, 160, size=(n, 2))
    cls = rng.random((n, nc)) * 0.2                   # background: every class below 0.2
    hot = rng.choice(n, 300, replace=False)           # ~300 anchors with one confident class
    cls[hot, rng.integers(0, nc, 300)] = rng.uniform(0.2, 1.0, 300)
    return np.concatenate([cxcy, wh, cls], 1).T[None].astype(np.float32)


def bench_decode(ctx, stream) -> None:
    from trt_infer_ros.cuda.decode_kernel import GpuDecoder, head_layout
    from trt_infer_ros.models.nms import nms
    from trt_infer_ros.models.spec import ImageTransform
    from trt_infer_ros.models.yolo import YoloV8Adapter

    rng = np.random.default_rng(0)
    out = yolov8_output(rng, 8400, 80)
    adapter = YoloV8Adapter(num_classes=80)
    t = ImageTransform(0.5, 0.5, 0.0, 140.0, 1280, 720)
    dev = DeviceBuffer(ctx, out.nbytes)
    dev.upload(out)
    dec = GpuDecoder(ctx, head_layout("yolov8", out.shape, 80), np.float32)
    graph = capture(stream, lambda: dec.enqueue(dev.ptr, stream))
    exe = graph.instantiate()
    RESULTS["decode"] = []
    for thr in (0.25, 0.05):
        dec.set_params(thr, 0.45, 100, None, (0.5, 0.5, 0.0, 140.0, 1280, 720))

        def gpu_frame():
            exe.launch(stream)
            stream.synchronize()
            return dec.read()

        def cpu_frame():
            d = adapter.decode([out], thr)
            keep = nms(d.boxes, d.scores, d.class_ids, 0.45, 100)
            d = d.select(keep)
            return t.to_source(d.boxes), d.scores, d.class_ids, len(keep)

        got, want = gpu_frame(), cpu_frame()
        assert np.array_equal(got[1], want[1]), "GPU and CPU decode disagree"
        g_host = host_ms(gpu_frame, reps=100)
        g_dev = gpu_ms(ctx, stream, lambda: exe.launch(stream), reps=100)
        c_host = host_ms(cpu_frame, reps=20, warmup=2)
        RESULTS["decode"].append({"threshold": thr, "candidates": got[3], "kept": len(got[1]),
                                  "gpu_host_ms": g_host, "gpu_device_ms": g_dev,
                                  "cpu_numpy_ms": c_host})
        row(f"decode+NMS yolov8 [1,84,8400] thr {thr} ({got[3]} cand., {len(got[1])} kept)",
            f"GPU {g_host:6.3f} ms host ({g_dev:6.3f} ms GPU)  numpy {c_host:7.2f} ms  "
            f"x{c_host / g_host:5.1f}")
    # where the GPU time goes (eager, events between the stages)
    import ctypes

    from trt_infer_ros.cuda.buffers import copy_async, memset_u32_async
    from trt_infer_ros.cuda.decode_kernel import CLASS_SLICES, NMS_THREADS, DecodeParams
    ev = [Event(ctx) for _ in range(6)]
    n = dec.layout.n_anchors
    stages = [
        ("params H2D", lambda: copy_async(dec.params_dev.ptr, dec.params_host.ptr,
                                          ctypes.sizeof(DecodeParams), stream)),
        ("count reset", lambda: memset_u32_async(dec.count.ptr, 0, 1, stream)),
        ("decode_candidates", lambda: dec.k_candidates.launch(
            ((n + 31) // 32, 1, 1), (32, CLASS_SLICES, 1),
            [ctypes.c_uint64(dev.ptr), dec.out_layout, ctypes.c_uint64(dec.params_dev.ptr),
             ctypes.c_uint64(dec.keys.ptr), ctypes.c_uint64(dec.boxes.ptr),
             ctypes.c_uint64(dec.classes.ptr), ctypes.c_uint64(dec.count.ptr)], stream)),
        ("sort_nms", lambda: dec.k_nms.launch(
            (1, 1, 1), (NMS_THREADS, 1, 1),
            [ctypes.c_uint64(dec.keys.ptr), ctypes.c_uint32(dec.capacity),
             ctypes.c_uint64(dec.boxes.ptr), ctypes.c_uint64(dec.classes.ptr),
             ctypes.c_uint64(dec.count.ptr), ctypes.c_uint64(dec.params_dev.ptr),
             ctypes.c_uint64(dec.result_dev.ptr), ctypes.c_uint32(dec.shared_keys_bytes // 8)],
            stream, shared_bytes=dec.shared_keys_bytes)),
        ("result D2H", lambda: copy_async(dec.result_host.ptr, dec.result_dev.ptr,
                                          dec.result_nbytes, stream)),
    ]
    for thr in (0.25, 0.05):
        dec.set_params(thr, 0.45, 100, None, (0.5, 0.5, 0.0, 140.0, 1280, 720))
        samples = {name: [] for name, _ in stages}
        for _ in range(30):
            ev[0].record(stream)
            for i, (name, fn) in enumerate(stages):
                fn()
                ev[i + 1].record(stream)
            ev[-1].synchronize()
            for i, (name, _) in enumerate(stages):
                samples[name].append(ev[i].elapsed_ms(ev[i + 1]) * 1e3)
        parts = "  ".join(f"{k} {statistics.median(v):.1f}" for k, v in samples.items())
        RESULTS.setdefault("decode_stages_us", {})[str(thr)] = {
            k: statistics.median(v) for k, v in samples.items()}
        row(f"decode stages thr {thr} (us, eager)", parts)
    exe.close()
    graph.close()
    dec.close()
    dev.close()


def bench_model(label, model_path, adapter, frames: int, image: np.ndarray) -> None:
    from trt_infer_ros.backends.tinygrad_cuda_runner import TinygradCudaRunner
    from trt_infer_ros.pipeline.gpu_pipeline import GpuDetectionPipeline
    from trt_infer_ros.pipeline.settings import DetectionSettings

    t0 = time.perf_counter()
    runner = TinygradCudaRunner(str(model_path))
    row(f"[{label}] tinygrad CUDA load + JIT warm-up", f"{time.perf_counter() - t0:6.1f} s")
    ctx = runner.context
    stream = Stream(ctx)
    res = {"model": label}
    # keep every measurement near 2 s whatever the model's speed
    probe = gpu_ms(ctx, stream, lambda: runner.enqueue(stream), reps=3, warmup=1)
    frames = max(5, min(frames, int(2000 / max(probe, 1e-3))))
    reps = frames
    parts = runner.child_graphs()
    if parts:
        model_graph = chain(ctx, parts)
        model_exec = model_graph.instantiate()
        res["model_gpu_ms"] = gpu_ms(ctx, stream, lambda: model_exec.launch(stream), reps=reps)
        row(f"[{label}] bare model GPU time (its CUDA graph alone)", f"{res['model_gpu_ms']:7.3f} ms")
    res["model_eager_ms"] = gpu_ms(ctx, stream, lambda: runner.enqueue(stream), reps=reps)
    row(f"[{label}] bare model via TinyJit call (events)", f"{res['model_eager_ms']:7.3f} ms")
    settings = DetectionSettings(0.25, 0.45, 100)
    pipe = GpuDetectionPipeline(adapter, runner, settings)
    pipe(image, "bgr8")
    frame, _ = pipe.frame_for(image, "bgr8")
    res["frame_mode"] = frame.mode
    row(f"[{label}] frame graph mode", frame.mode + (f" ({frame.node_count} top-level nodes)"
                                                     if hasattr(frame, "node_count") else ""))
    res["frame_gpu_ms"] = gpu_ms(ctx, frame.stream, frame.launch, reps=reps)
    row(f"[{label}] whole frame GPU time, graph (events)", f"{res['frame_gpu_ms']:7.3f} ms")
    res["frame_gpu_eager_ms"] = gpu_ms(ctx, frame.stream, frame.run_eager, reps=reps)
    row(f"[{label}] whole frame GPU time, eager (events)", f"{res['frame_gpu_eager_ms']:7.3f} ms")

    def launch_only(fn):
        def timed():
            t = time.perf_counter()
            fn()
            dt = time.perf_counter() - t
            frame.synchronize()
            return dt
        for _ in range(2):
            timed()
        return statistics.median(timed() for _ in range(frames)) * 1e3

    res["host_launch_graph_ms"] = launch_only(frame.launch)
    res["host_launch_eager_ms"] = launch_only(frame.run_eager)
    row(f"[{label}] host time to launch a frame: eager vs graph",
        f"{res['host_launch_eager_ms']:7.3f} ms vs {res['host_launch_graph_ms']:7.3f} ms")
    res["host_frame_graph_ms"] = host_ms(lambda: (frame.launch(), frame.synchronize()), reps=frames,
                                         warmup=2)
    res["host_frame_eager_ms"] = host_ms(lambda: (frame.run_eager(), frame.synchronize()),
                                         reps=frames, warmup=2)
    row(f"[{label}] host time per frame (launch+sync): eager vs graph",
        f"{res['host_frame_eager_ms']:7.3f} ms vs {res['host_frame_graph_ms']:7.3f} ms")
    res["e2e_ms"] = host_ms(lambda: pipe(image, "bgr8"), reps=frames, warmup=2)
    base = res.get("model_gpu_ms", res["model_eager_ms"])
    row(f"[{label}] end-to-end pipeline(image) {image.shape[1]}x{image.shape[0]} vs bare model",
        f"{res['e2e_ms']:7.3f} ms vs {base:7.3f} ms (+{res['e2e_ms'] - base:.3f})")
    try:
        from trt_infer_ros.backends.onnxruntime_runner import OnnxRuntimeRunner
        from trt_infer_ros.pipeline.detector import DetectionPipeline

        cpu = DetectionPipeline(adapter, OnnxRuntimeRunner(str(model_path)), settings)
        res["cpu_pipeline_ms"] = host_ms(lambda: cpu(image, "bgr8"), reps=10, warmup=2)
        res["cpu_stage_ms"] = cpu.timings.as_dict()
        row(f"[{label}] CPU DetectionPipeline (onnxruntime CPU) for reference",
            f"{res['cpu_pipeline_ms']:7.2f} ms  ({cpu.timings})")
        cpu.close()
    except Exception as exc:   # reference only
        row(f"[{label}] CPU pipeline", f"not run: {exc}")
    RESULTS.setdefault("models", []).append(res)
    pipe.close()
    stream.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "models" / "centernet_mobilenetv3_coco.onnx"))
    ap.add_argument("--yolo-size", type=int, default=640)
    ap.add_argument("--small-size", type=int, default=160,
                    help="a second, small YOLOv8-shaped model where launch overhead shows (0: skip)")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--json", default=None)
    ap.add_argument("--skip-models", action="store_true")
    args = ap.parse_args()

    ctx = CudaContext.primary()
    stream = Stream(ctx)
    free, total = ctx.mem_info()
    print(f"device: {ctx.name} ({ctx.arch}), {total / 2**30:.0f} GiB", flush=True)
    RESULTS["device"] = ctx.name
    copy_gbs = bench_copy(ctx, stream)
    bench_preprocess(ctx, stream, copy_gbs)
    bench_decode(ctx, stream)
    if not args.skip_models:
        import cv2

        from synthetic_yolo import gflops, make_yolov8_shaped
        from trt_infer_ros.models.spec import InputSpec
        from trt_infer_ros.models.yolo import YoloV8Adapter

        photo = REPO / "data" / "images" / "astronaut.jpg"
        image = cv2.imread(str(photo)) if photo.is_file() else None
        image = cv2.resize(image, (1280, 720)) if image is not None else \
            np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
        if Path(args.model).is_file():
            from trt_infer_ros.models.registry import create_adapter
            try:
                bench_model("centernet", args.model, create_adapter("auto", args.model),
                            args.frames, image)
            except Exception as exc:
                row("[centernet]", f"failed: {type(exc).__name__}: {exc}")
        else:
            row("[centernet]", f"not run: {args.model} is missing")
        s = args.yolo_size
        path = make_yolov8_shaped("/tmp/yolov8_shaped.onnx", s, 80)
        bench_model(f"yolov8-shaped {s} ({gflops(s):.1f} GFLOP)", path,
                    YoloV8Adapter(InputSpec(width=s, height=s), num_classes=80), args.frames, image)
        if args.small_size:
            s = args.small_size
            path = make_yolov8_shaped(f"/tmp/yolov8_shaped_{s}.onnx", s, 80)
            bench_model(f"yolov8-shaped {s} ({gflops(s):.2f} GFLOP)", path,
                        YoloV8Adapter(InputSpec(width=s, height=s), num_classes=80), args.frames,
                        image)
    print("\nSUMMARY")
    for name, value in ROWS:
        print(f"| {name} | {value} |")
    if args.json:
        Path(args.json).write_text(json.dumps(RESULTS, indent=2, default=float))


if __name__ == "__main__":
    main()
