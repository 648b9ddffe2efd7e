"""Our whole frame with each GPU runner against the fastest bare model time of every runtime,
side by side in one run (the speed issue's table; benchmarks/GPU_NOTES.md keeps it).

  python benchmarks/gpu_runner_benchmark.py [--models a.onnx b.onnx ...] [--frames 200]
                                            [--repeats 3] [--json out.json]

Without --models: the bundled CenterNet and the YOLOv8-shaped graph of benchmarks/synthetic_yolo.py.
Ultralytics architectures (YOLOv8n, YOLO11n, YOLOv10n) come from
benchmarks/export_ultralytics.py, which builds them from their YAML definitions (random weights).

Per model, host wall medians (time.perf_counter around the call, including the wait):
  bare onnxruntime   the session alone: input and outputs bound on the device (I/O binding),
                     with its own CUDA graph where it captures (else without), one run
  bare tinygrad      tinygrad's captured CUDA graph(s) alone: launch + synchronize
  frame <runner>     GpuDetectionPipeline(1280x720 bgr8 image) -> Detections with that runner
  ...-fp16           the same on the model's fp16 copy (onnxruntime CUDA), with the result of the
                     detection check against float32 (pipeline/precision.py) on the bundled photos
Each figure is the median of --repeats rounds; the spread (min..max of the round medians) is
printed beside it. Ratios: the best float32 frame / the fastest float32 bare model, and the fp16
frame / the bare fp16 model.
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

from trt_infer_ros.pipeline.gpu_runner_choice import FP16_RUNNER  # noqa: E402


def rounds(fn, frames: int, repeats: int) -> tuple[float, float, float]:
    """(median, min, max) of `repeats` round medians."""
    from gpu_benchmark import host_ms       # benchmarks/ is on sys.path (above)

    values = [host_ms(fn, reps=frames) for _ in range(repeats)]
    return statistics.median(values), min(values), max(values)


def bare_onnxruntime(path: str, input_shape, frames: int, repeats: int):
    """The onnxruntime CUDA session alone, device I/O binding, its CUDA graph when it captures."""
    import onnxruntime as ort

    from trt_infer_ros.backends.onnxruntime_runner import image_input, numpy_dtype, open_session

    best = None
    for graph in ("1", "0"):
        try:
            sess = open_session(path, ort.SessionOptions(), [
                ("CUDAExecutionProvider", {"enable_cuda_graph": graph}), "CPUExecutionProvider"])
            inp = image_input(sess)
            x = np.random.default_rng(0).uniform(0, 1, input_shape).astype(numpy_dtype(inp.type))
            binding = sess.io_binding()
            binding.bind_ortvalue_input(inp.name, ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
            for o in sess.get_outputs():
                binding.bind_output(o.name, "cuda", 0)
            sess.run_with_iobinding(binding)            # output shapes, then fixed buffers
            shapes = [(v.shape(), numpy_dtype(v.data_type())) for v in binding.get_outputs()]
            binding.clear_binding_outputs()
            for o, (shape, dtype) in zip(sess.get_outputs(), shapes):
                binding.bind_ortvalue_output(o.name, ort.OrtValue.ortvalue_from_shape_and_type(
                    shape, dtype, "cuda", 0))
            result = rounds(lambda: sess.run_with_iobinding(binding), frames, repeats)
            label = "with its CUDA graph" if graph == "1" else "without CUDA graph"
            if best is None or result[0] < best[0][0]:
                best = (result, label)
        except Exception as exc:
            print(f"    onnxruntime enable_cuda_graph={graph}: {type(exc).__name__}: "
                  f"{str(exc)[:160]}", flush=True)
    return best


def bare_tinygrad(runner, frames: int, repeats: int):
    from trt_infer_ros.cuda.graph import chain
    from trt_infer_ros.cuda.stream import Stream

    stream = Stream(runner.context)
    parts = runner.child_graphs()
    if parts:
        exe = chain(runner.context, parts).instantiate()
        result = rounds(lambda: (exe.launch(stream), stream.synchronize()), frames, repeats)
        exe.close()
    else:
        result = rounds(lambda: (runner.enqueue(stream), stream.synchronize()), frames, repeats)
    stream.close()
    return result


def bench(label: str, path: str, frames: int, repeats: int, image) -> dict:
    from trt_infer_ros.models.registry import create_adapter
    from trt_infer_ros.pipeline.gpu_pipeline import GpuDetectionPipeline
    from trt_infer_ros.pipeline.gpu_runner_choice import (create_named_gpu_runner,
                                                          installed_gpu_runners)
    from trt_infer_ros.pipeline.settings import DetectionSettings

    adapter = create_adapter("auto", path)
    shape = adapter.input_spec.shape
    res = {"model": label, "bare": {}, "frame": {}, "mode": {}}
    print(f"[{label}] {path} input {list(shape)}", flush=True)
    if "onnxruntime" in installed_gpu_runners():
        got = bare_onnxruntime(path, shape, frames, repeats)
        if got:
            (res["bare"]["onnxruntime"], how) = got
            print(f"  bare onnxruntime ({how}) {fmt(got[0])}", flush=True)
    names = installed_gpu_runners()
    if "onnxruntime" in names:
        from trt_infer_ros.backends.float16 import float16_model_path

        got = bare_onnxruntime(float16_model_path(path), shape, frames, repeats)
        if got:
            (res["bare"][FP16_RUNNER], how) = got
            print(f"  bare onnxruntime fp16 copy ({how}) {fmt(got[0])}", flush=True)
        names = names + [FP16_RUNNER]
    for name in names:
        try:
            t0 = time.perf_counter()
            runner = create_named_gpu_runner(name, path, shape)
            load = time.perf_counter() - t0
        except Exception as exc:
            print(f"  {name}: not run: {type(exc).__name__}: {exc}", flush=True)
            continue
        if name == "tinygrad":
            res["bare"]["tinygrad"] = bare_tinygrad(runner, frames, repeats)
            print(f"  bare tinygrad (its CUDA graphs) {fmt(res['bare']['tinygrad'])}", flush=True)
        pipe = GpuDetectionPipeline(adapter, runner, DetectionSettings(0.25, 0.45, 100))
        try:
            pipe(image, "bgr8")
            frame, _ = pipe.frame_for(image, "bgr8")
            res["mode"][name] = frame.mode
            res["frame"][name] = rounds(lambda: pipe(image, "bgr8"), frames, repeats)
            print(f"  frame {name} ({frame.mode}, start-up {load:.1f} s) "
                  f"{fmt(res['frame'][name])}", flush=True)
            print(f"    host side of the frame: {stage_medians(pipe, image)}", flush=True)
            if name == FP16_RUNNER:
                res["fp16_check"] = fp16_check(pipe, path)
                print(f"    fp16 against float32 on the bundled photos: {res['fp16_check']}",
                      flush=True)
        finally:
            pipe.close()
    fp32 = [n for n in res["frame"] if n != FP16_RUNNER]
    bare32 = [n for n in res["bare"] if n != FP16_RUNNER]
    if fp32 and bare32:
        res["ratio"] = (min(res["frame"][n][0] for n in fp32)
                        / min(res["bare"][n][0] for n in bare32))
        print(f"  best float32 frame / fastest float32 bare = {res['ratio']:.2f}", flush=True)
    if FP16_RUNNER in res["frame"] and FP16_RUNNER in res["bare"]:
        res["ratio_fp16"] = res["frame"][FP16_RUNNER][0] / res["bare"][FP16_RUNNER][0]
        print(f"  fp16 frame / bare fp16 = {res['ratio_fp16']:.2f}", flush=True)
    return res


def fp16_check(pipe, path: str) -> str:
    from trt_infer_ros.pipeline.detector import build_pipeline
    from trt_infer_ros.pipeline.precision import check_images, check_precision

    reference = build_pipeline(path, backend="onnxruntime", device="CPU", settings=pipe.settings)
    try:
        return str(check_precision(pipe, reference, check_images()))
    finally:
        reference.runner.close()


def stage_medians(pipe, image, frames: int = 100) -> str:
    """Median per stage of GpuDetectionPipeline's own clock: staging (the image's upload queued,
    live settings), launch + wait, reading the result."""
    samples = []
    for _ in range(frames):
        pipe(image, "bgr8")
        samples.append(pipe.timings)
    parts = {"stage image": "preprocess", "launch+wait": "inference", "read result": "decode"}
    return ", ".join(f"{label} {statistics.median(getattr(t, key) for t in samples):.3f} ms"
                     for label, key in parts.items())


def fmt(r) -> str:
    return f"{r[0]:7.3f} ms [{r[1]:.3f}..{r[2]:.3f}]"


def table(results: list) -> str:
    runners = sorted({k for r in results for k in list(r["bare"]) + list(r["frame"])})
    head = (["model"] + [f"bare {n}" for n in runners] + [f"frame {n}" for n in runners]
            + ["best fp32 frame / fastest fp32 bare", "fp16 frame / bare fp16"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [r["model"]]
        cells += [f"{r['bare'][n][0]:.2f}" if n in r["bare"] else "-" for n in runners]
        cells += [f"{r['frame'][n][0]:.2f} ({r['mode'][n]})" if n in r["frame"] else "-"
                  for n in runners]
        cells.append(f"{r['ratio']:.2f}x" if "ratio" in r else "-")
        cells.append(f"{r['ratio_fp16']:.2f}x" if "ratio_fp16" in r else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import cv2

    from synthetic_yolo import make_yolov8_shaped
    from trt_infer_ros.cuda.context import CudaContext

    ctx = CudaContext.primary()
    print(f"device: {ctx.name} ({ctx.arch})", flush=True)
    models = args.models or [str(REPO / "models" / "centernet_mobilenetv3_coco.onnx"),
                             make_yolov8_shaped("/tmp/yolov8_shaped.onnx", 640, 80)]
    image = cv2.resize(cv2.imread(str(REPO / "data" / "images" / "astronaut.jpg")), (1280, 720))
    results = []
    for path in models:
        try:
            results.append(bench(Path(path).stem, path, args.frames, args.repeats, image))
        except Exception as exc:
            print(f"[{Path(path).stem}] failed: {type(exc).__name__}: {exc}", flush=True)
    print("\n" + table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
