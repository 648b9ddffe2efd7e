"""The per-frame detection path: preprocess -> runner -> decode -> class filter -> NMS."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from trt_infer_ros.backends.factory import create_runner
from trt_infer_ros.backends.runner import Runner
from trt_infer_ros.models.adapter import ModelAdapter
from trt_infer_ros.models.model_file import check_model_file
from trt_infer_ros.models.nms import nms, rotated_nms
from trt_infer_ros.models.registry import MODEL_TYPES, create_adapter
from trt_infer_ros.models.spec import Detections, ImageTransform
from trt_infer_ros.pipeline.preprocess import InputBuffer, preprocess
from trt_infer_ros.pipeline.settings import DetectionSettings
from trt_infer_ros.pipeline.timing import FrameTimings, StageClock


class DetectionPipeline:
    """Turns one image into detections in source pixels.

    `settings` is read on every call, so changing it (e.g. from a ROS parameter callback)
    applies from the next frame. `timings` holds the stage times of the last frame.
    `nonfinite_dropped` counts detections dropped since start because a number in them was
    NaN or infinite (a broken or mis-typed model; never passed on).
    """

    def __init__(self, adapter: ModelAdapter, runner: Runner,
                 settings: Optional[DetectionSettings] = None) -> None:
        self.adapter = adapter
        self.runner = runner
        self.settings = settings if settings is not None else DetectionSettings()
        self.timings = FrameTimings()
        self.nonfinite_dropped = 0
        self.selection = f"CPU-side pipeline: {getattr(adapter, 'selection', adapter.model_type)}"
        self._extra_inputs = extra_inputs_for(adapter, runner)
        self._input = InputBuffer(adapter.input_spec)    # one frame in flight: one tensor
        spec, shape = adapter.input_spec, tuple(runner.input_shape)
        if len(shape) == 4 and all(d > 0 for d in shape) and shape != spec.shape:
            raise ValueError(f"the model input is {list(shape)} but the {adapter.model_type} "
                             f"preprocessing produces {list(spec.shape)}")

    def __call__(self, image: np.ndarray, encoding: str) -> Detections:
        clock = StageClock()
        tensor, transform = prepare_input(self.adapter, self.runner, image, encoding, self._input)
        clock.lap("preprocess")
        if self._extra_inputs:
            outputs = self.runner.run(tensor, self._extra_inputs)
        else:
            outputs = self.runner.run(tensor)
        clock.lap("inference")
        result, dropped = finish_detections(self.adapter, outputs, transform, self.settings, clock)
        self.nonfinite_dropped += dropped
        self.timings = clock.finish()
        return result

    def close(self) -> None:
        self.runner.close()


def prepare_input(adapter: ModelAdapter, runner: Runner, image: np.ndarray, encoding: str,
                  buffer: Optional[InputBuffer] = None) -> tuple[np.ndarray, ImageTransform]:
    """The runner's input tensor for one image, and the source -> input transform; written into
    `buffer` when given (valid until its next use), else a new array."""
    if buffer is not None:
        tensor, transform = buffer(image, encoding)
    else:
        tensor, transform = preprocess(image, encoding, adapter.input_spec)
    if tensor.dtype != runner.input_dtype:
        # e.g. an engine built with fp16 I/O from an fp32 ONNX graph
        tensor = tensor.astype(runner.input_dtype)
    return tensor, transform


def finish_detections(adapter: ModelAdapter, outputs, transform: ImageTransform,
                      settings: DetectionSettings,
                      clock: Optional[StageClock] = None) -> tuple[Detections, int]:
    """Model outputs -> final detections in source pixels (decode, filter, NMS, letterbox
    undone), and how many were dropped for a non-finite number."""
    clock = clock or StageClock()
    dets, dropped = decode_candidates(adapter, outputs, settings)
    clock.lap("decode")
    dets = select_final(adapter, dets, settings)
    clock.lap("nms")
    result = dets.to_source(transform)
    clock.lap("postprocess")
    return result, dropped


def decode_candidates(adapter: ModelAdapter, outputs,
                      settings: DetectionSettings) -> tuple[Detections, int]:
    """The model's detections above the score threshold, of the classes the filter keeps, and
    how many were dropped for holding a non-finite number."""
    dets = adapter.decode(outputs, settings.score_threshold)
    finite = dets.finite_rows()
    dropped = int(finite.size - np.count_nonzero(finite))
    if dropped:
        dets = dets.select(finite)
    if settings.class_filter is not None:
        dets = dets.select(np.isin(dets.class_ids, np.fromiter(settings.class_filter, np.int64)))
    return dets, dropped


def select_final(adapter: ModelAdapter, dets: Detections,
                 settings: DetectionSettings) -> Detections:
    """NMS, per class or across classes (`agnostic_nms`), or for models whose outputs are
    final detections the best first, capped at max_detections. Oriented boxes use ProbIoU."""
    classes = None if settings.agnostic_nms else dets.class_ids
    if adapter.nms_inside:
        keep = np.argsort(-dets.scores, kind="stable")[:max(settings.max_detections, 0)]
        if settings.agnostic_nms and len(keep):
            # Models with NMS inside ran it per class: suppress across classes among the kept.
            kept = dets.select(keep)
            return kept.select(_nms(kept, None, settings))
        return dets.select(keep)
    return dets.select(_nms(dets, classes, settings))


def _nms(dets: Detections, classes, settings: DetectionSettings) -> np.ndarray:
    if dets.angles is not None:
        return rotated_nms(dets.boxes, dets.angles, dets.scores, classes,
                           settings.nms_iou_threshold, settings.max_detections)
    return nms(dets.boxes, dets.scores, classes, settings.nms_iou_threshold,
               settings.max_detections)


def extra_inputs_for(adapter: ModelAdapter, runner: Runner) -> dict:
    """Inputs besides the image the model needs (RT-DETR deploy: the target size), checked
    against what the runner can feed."""
    extra = adapter.extra_inputs() if hasattr(adapter, "extra_inputs") else {}
    if extra and not getattr(runner, "accepts_extra_inputs", False):
        raise ValueError(f"this model needs inputs besides the image ({', '.join(extra)}), which "
                         f"the {runner.name} runner cannot feed: use backend onnxruntime")
    return extra


def build_pipeline(model_path: str, model_type: str = "auto", backend: str = "auto",
                   settings: Optional[DetectionSettings] = None,
                   device: Optional[str] = None, **adapter_kwargs) -> DetectionPipeline:
    """Wire adapter (registry) and runner (factory) for one model file.

    For ONNX files the adapter reads the graph. For a TensorRT engine it reads the ONNX named
    in the engine's sidecar when that file exists; otherwise `model_type` must be named and the
    input size, layout and dtype come from the runner.
    `adapter_kwargs` go to `create_adapter` (input_size, class_names, input_spec_overrides).
    """
    if Path(model_path).suffix.lower() == ".onnx":
        check_model_file(model_path)      # one clear sentence before any runtime's own text
    runner = create_runner(backend, model_path, device=device)
    try:
        return DetectionPipeline(adapter_for(model_path, model_type, runner, **adapter_kwargs),
                                 runner, settings)
    except Exception:
        runner.close()
        raise


def adapter_for(model_path: str, model_type: str, runner: Runner,
                **adapter_kwargs) -> ModelAdapter:
    """The adapter for `model_path` as `runner` runs it (outputs in the runner's order)."""
    onnx_path, model_type = _graph_for(model_path, model_type)
    if onnx_path is not None:
        adapter = create_adapter(model_type, onnx_path, **adapter_kwargs)
    elif model_type.strip().lower() == "auto":
        raise ValueError(f"{model_path}: model_type 'auto' needs the ONNX graph (none found "
                         f"beside the engine); set the `model_type` parameter to one of "
                         f"{', '.join(MODEL_TYPES)}")
    else:
        adapter = create_adapter(model_type, None, **spec_from_runner(runner, adapter_kwargs))
    if hasattr(adapter, "set_output_names"):
        adapter.set_output_names(runner.output_names)
    return adapter


def _graph_for(model_path: str, model_type: str) -> tuple[Optional[str], str]:
    """The ONNX graph describing `model_path`, and the model type to use.

    An engine's sidecar (`<engine>.json`, written by the engine builder) names the ONNX it
    was built from and, when given at build time, the model type.
    """
    if Path(model_path).suffix.lower() == ".onnx":
        return model_path, model_type
    try:
        with open(str(model_path) + ".json", encoding="utf-8") as f:
            sidecar = json.load(f)
    except (OSError, ValueError):
        return None, model_type
    recorded_type = (sidecar.get("build_settings") or {}).get("model_type") or ""
    if model_type.strip().lower() == "auto" and recorded_type:
        model_type = recorded_type
    onnx_path = sidecar.get("onnx_path") or ""
    return (onnx_path if Path(onnx_path).is_file() else None), model_type


def spec_from_runner(runner: Runner, adapter_kwargs: dict) -> dict:
    kwargs = dict(adapter_kwargs)
    shape = tuple(runner.input_shape)
    overrides = dict(kwargs.pop("input_spec_overrides", None) or {})
    if len(shape) == 4:
        nhwc = shape[3] == 3 and shape[1] != 3
        h, w = (shape[1], shape[2]) if nhwc else (shape[2], shape[3])
        if h > 0 and w > 0:
            kwargs.setdefault("input_size", (w, h))
        overrides.setdefault("layout", "NHWC" if nhwc else "NCHW")
    overrides.setdefault("dtype", "float16" if np.dtype(runner.input_dtype) == np.float16 else "float32")
    kwargs["input_spec_overrides"] = overrides
    return kwargs
