"""Precision / accelerator comparison for one model: every runner available here on the same
frames, with latency percentiles, throughput, power, achieved TOPS and TOPS/W, and agreement
with the FP32 reference (the edge engineer's GPU FP16 vs INT8 vs DLA decision).

Variants found here: onnxruntime FP32 and INT8 (QDQ, calibrated on the frames) on the CPU;
tinygrad FP32 on CUDA through the GPU pipeline where a GPU is present. TensorRT engines
(FP16/INT8, GPU or DLA) built with engine_builder_node join with
`--variant "GPU FP16=tensorrt:yolo_fp16.engine"` or `...:DLA0` where TensorRT runs.
Agreement: F1 of a variant's detections against the FP32 variant's on the same frames
(same class, IoU >= 0.5), 1.0 for the reference itself.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from trt_infer_ros.measure.ops_count import achieved_tops, tops_per_watt
from trt_infer_ros.measure.power import efficiency
from trt_infer_ros.measure.stats import summarize


@dataclass(frozen=True)
class Variant:
    label: str
    backend: str
    model_path: str
    device: Optional[str] = None
    precision: str = "fp32"
    gpu_pipeline: bool = False

    @classmethod
    def parse(cls, text: str) -> "Variant":
        """'LABEL=BACKEND:PATH[:DEVICE]'."""
        try:
            label, rest = text.split("=", 1)
            backend, path, *device = rest.split(":")
        except ValueError:
            raise ValueError(f"variant must be LABEL=BACKEND:PATH[:DEVICE], got {text!r}") from None
        device = device[0] if device else None
        lower = label.lower()
        precision = next((p for p in ("int8", "fp16", "fp32") if p in lower), "unknown")
        gpu = backend in ("tensorrt",) or (device or "").upper().startswith(("CUDA", "DLA"))
        return cls(label, backend, path, device, precision, gpu)


def quantize_int8(model_path: str, frames: list, out_path: str) -> str:
    """Static INT8 (QDQ, per-channel weights) calibrated on the benchmark's own frames."""
    import onnxruntime as ort
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    from trt_infer_ros.pipeline.detector import build_pipeline
    from trt_infer_ros.pipeline.preprocess import preprocess

    pipe = build_pipeline(model_path, backend="onnxruntime")
    spec = pipe.adapter.input_spec
    pipe.runner.close()
    name = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"]).get_inputs()[0].name
    feeds = [{name: preprocess(f, "bgr8", spec)[0]} for f in frames]

    class Frames(CalibrationDataReader):
        def __init__(self):
            self._it = iter(feeds)

        def get_next(self):
            return next(self._it, None)

    quantize_static(model_path, out_path, Frames(), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=["Conv", "MatMul", "Gemm"], per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out_path


def default_variants(model_path: str, frames: list, workdir: Path,
                     int8: bool = True) -> tuple[list, list]:
    """(variants, notes): what runs on this machine, and a sentence for what does not."""
    from trt_infer_ros.pipeline import gpu_pipeline

    variants = [Variant("onnxruntime FP32 CPU", "onnxruntime", model_path, "CPU", "fp32")]
    notes = []
    if int8:
        path = quantize_int8(model_path, frames, str(workdir / "model_int8_qdq.onnx"))
        variants.append(Variant("onnxruntime INT8 CPU", "onnxruntime", path, "CPU", "int8"))
    why = gpu_pipeline.unavailable_reason()
    if why is None:
        variants.append(Variant("tinygrad FP32 CUDA", "tinygrad", model_path, "CUDA", "fp32",
                                gpu_pipeline=True))
    else:
        notes.append(f"no GPU rows: {why}")
    try:
        import tensorrt  # noqa: F401
        notes.append("TensorRT is importable: add engines with --variant LABEL=tensorrt:PATH")
    except ImportError:
        notes.append("no TensorRT here: GPU FP16/INT8 engines and DLA are not measured")
    return variants, notes


def _build(variant: Variant):
    if variant.gpu_pipeline:
        from trt_infer_ros.pipeline.gpu_pipeline import build_gpu_pipeline
        return build_gpu_pipeline(variant.model_path, backend=variant.backend,
                                  device=variant.device, precision="fp32")
    from trt_infer_ros.pipeline.detector import build_pipeline
    device = None if variant.device in (None, "CPU") and variant.backend == "onnxruntime" \
        else variant.device
    return build_pipeline(variant.model_path, backend=variant.backend, device=device)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def agreement_f1(reference: list, candidate: list, iou: float = 0.5) -> Optional[float]:
    """F1 of `candidate` detections against `reference` ones over frames (greedy by score)."""
    tp = n_ref = n_cand = 0
    for ref, cand in zip(reference, candidate):
        n_ref += len(ref.scores)
        n_cand += len(cand.scores)
        if len(ref.scores) == 0 or len(cand.scores) == 0:
            continue
        ious = _iou(np.asarray(cand.boxes, float), np.asarray(ref.boxes, float))
        same = np.asarray(cand.class_ids)[:, None] == np.asarray(ref.class_ids)[None, :]
        ious = np.where(same, ious, 0.0)
        used = np.zeros(len(ref.scores), bool)
        for i in np.argsort(-np.asarray(cand.scores)):
            j = int(np.argmax(np.where(used, -1.0, ious[i])))
            if not used[j] and ious[i, j] >= iou:
                used[j] = True
                tp += 1
    if n_ref == 0 and n_cand == 0:
        return 1.0
    return 2.0 * tp / (n_ref + n_cand) if (n_ref + n_cand) else None


def run_variant(variant: Variant, frames: list, count: int, sampler, t_origin: float,
                macs: Optional[int], warmup: int = 3, min_seconds: float = 0.0) -> dict:
    """Time `count` frames, and more until `min_seconds` have passed: NVML's power reading is
    a moving average over about a second, so short runs read low."""
    row = {"label": variant.label, "backend": variant.backend, "device": variant.device,
           "precision": variant.precision, "model": variant.model_path}
    try:
        pipe = _build(variant)
    except Exception as err:
        row["error"] = f"{type(err).__name__}: {err}"
        return row
    try:
        for i in range(warmup):
            pipe(frames[i % len(frames)], "bgr8")
        row["detections"] = [pipe(f, "bgr8") for f in frames]
        lat = []
        t0 = time.monotonic()
        i = 0
        while i < count or time.monotonic() - t0 < min_seconds:
            start = time.perf_counter()
            pipe(frames[i % len(frames)], "bgr8")
            lat.append((time.perf_counter() - start) * 1e3)
            i += 1
        count = i
        t1 = time.monotonic()
        runner = pipe.runner
        row.update(runner=f"{runner.name} on {runner.device}", frames=count,
                   latency_ms=summarize(lat).as_dict(), samples_ms=lat,
                   throughput_fps=count / (t1 - t0), phase={"t0": t0 - t_origin,
                                                            "t1": t1 - t_origin})
        if sampler is not None and sampler.source == "nvml" and not variant.gpu_pipeline:
            row["power_note"] = "NVML measures the GPU only; this variant runs on the CPU"
        elif sampler is not None:
            row.update(efficiency(sampler.snapshot(), t0, t1, count))
        if macs:
            row["achieved_tops"] = achieved_tops(macs, row["throughput_fps"])
            row["tops_per_watt"] = tops_per_watt(row["achieved_tops"], row.get("mean_power_w"))
    finally:
        pipe.close()
    return row
