"""The engine builder's accuracy gate: an INT8 engine must agree with the FP32 model.

`check_accuracy(options, engine_bytes, trt)` measures the agreement (mAP@0.5:0.95 with the FP32
detections as ground truth, onnxruntime running the FP32 ONNX) on `validation_images` or
`validation_bag`. Where TensorRT runs (the real module and a CUDA device), the engine just built
is what is measured. Elsewhere the measure is of the simulated model TensorRT would build: the
ONNX's own Q/DQ when it has them, else Q/DQ at the calibrated ranges (the calibration cache
when there is one, else computed from the calibration images), with `layer_precisions`
overrides kept in FP16/FP32; the log says which was measured.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Callable

import onnx

from trt_infer_ros.optimize.agreement import Agreement, detection_agreement
from trt_infer_ros.optimize.frames import load_frames
from trt_infer_ros.optimize.layers import quantizable_layers
from trt_infer_ros.optimize.qdq import build_model, has_qdq
from trt_infer_ros.optimize.simulate import CANDIDATE_SETTINGS, Detector

# the builder's calibration algorithms and the method that reproduces each here
METHOD_OF = {"entropy2": "entropy", "minmax": "minmax", "percentile": "percentile",
             "legacy": "percentile"}


@dataclass
class GateResult:
    agreement: Agreement
    target: float
    measured: str                 # what ran: the engine, or the simulated Q/DQ model

    @property
    def passed(self) -> bool:
        return self.agreement.map50_95 >= self.target

    def __str__(self) -> str:
        verdict = "meets" if self.passed else "misses"
        return (f"accuracy gate ({self.measured}): {self.agreement}; {verdict} accuracy_target "
                f"{self.target} (mAP@0.5:0.95 against FP32)")


def engine_runs_here(trt) -> bool:
    """The real TensorRT module with a CUDA device to run its engines on."""
    if getattr(trt, "__name__", "") != "tensorrt":
        return False
    try:
        from trt_infer_ros.cuda.context import cuda_unavailable_reason  # noqa: PLC0415
    except ImportError:
        return False
    return cuda_unavailable_reason() is None


def simulated_model(options, model: onnx.ModelProto, log: Callable[[str], None]):
    """The Q/DQ model TensorRT's INT8 build corresponds to."""
    from trt_infer_ros.engine import calibration_cache  # noqa: PLC0415
    from trt_infer_ros.engine.options import match_layer_precision  # noqa: PLC0415
    if has_qdq(model):
        return model, "the ONNX's own Q/DQ"
    layers = quantizable_layers(model)
    overrides = options.layer_overrides()
    plan = {layer.name: match_layer_precision(layer.name, overrides) or "int8"
            for layer in layers}
    data = calibration_cache.read_cache(options.calibration_cache)
    if data is not None:
        cache = calibration_cache.CalibrationCache.parse(data)
        amax = {name: cache.dynamic_range(name) for name in cache.scales}
        source = f"ranges of {options.calibration_cache}"
    else:
        from trt_infer_ros.models.registry import create_adapter  # noqa: PLC0415
        from trt_infer_ros.optimize.calibrate import collect  # noqa: PLC0415
        adapter = create_adapter(options.model_type or "auto", options.onnx)
        frames = load_frames(adapter, options.calibration_images, options.calibration_bag,
                             options.calibration_topic, options.calibration_count)
        method = METHOD_OF[options.calibration_algorithm]
        amax = collect(model, frames, [x.activation for x in layers], log).ranges(
            method, options.calibration_percentile)
        source = f"{method} ranges of {len(frames)} calibration images"
    return build_model(model, layers, plan, amax), source


def engine_detections(engine_bytes: bytes, adapter, frames) -> list:
    from trt_infer_ros.backends.tensorrt_runner import TensorRTRunner  # noqa: PLC0415
    from trt_infer_ros.pipeline.detector import finish_detections  # noqa: PLC0415
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "candidate.engine")
        with open(path, "wb") as f:
            f.write(engine_bytes)
        runner = TensorRTRunner(path)
        try:
            out = []
            for frame in frames:
                outputs = runner.run(frame.tensor.astype(runner.input_dtype, copy=False))
                out.append(finish_detections(adapter, outputs, frame.transform,
                                             CANDIDATE_SETTINGS)[0])
            return out
        finally:
            runner.close()


def check_accuracy(options, engine_bytes: bytes, trt,
                   log: Callable[[str], None]) -> GateResult:
    from trt_infer_ros.models.registry import create_adapter  # noqa: PLC0415
    model = onnx.load(options.onnx)
    adapter = create_adapter(options.model_type or "auto", options.onnx)
    frames = load_frames(adapter, options.validation_images, options.validation_bag,
                         options.validation_topic)
    detector = Detector(adapter, frames)
    reference = detector.detect(model)
    if engine_runs_here(trt):
        candidate = engine_detections(engine_bytes, adapter, frames)
        measured = "the TensorRT engine just built"
    else:
        simulated, source = simulated_model(options, model, log)
        candidate = detector.detect(simulated)
        measured = (f"simulated INT8 Q/DQ model on onnxruntime with {source}; TensorRT "
                    "cannot run its engine here")
    agreement = detection_agreement(reference, candidate)
    return GateResult(agreement, float(options.accuracy_target), measured)
