"""Pick and build the adapter for a model: by name, or by reading its ONNX graph."""
from __future__ import annotations

import re
from typing import Optional, Sequence, Union

from trt_infer_ros.models.adapter import ModelAdapter
from trt_infer_ros.models.centernet import CenterNetAdapter, centernet_input_spec
from trt_infer_ros.models.end2end import End2EndAdapter
from trt_infer_ros.models.graph_info import GraphInfo, inspect_onnx, probe_output_shapes
from trt_infer_ros.models.identify import (EXPECTED, Identification, ModelTypeError, identify,
                                           not_a_detector, possible_types, rtdetr_layout,
                                           shape_text)
from trt_infer_ros.models.labels import load_labels
from trt_infer_ros.models.rtdetr import SIZE_INPUT_HINTS, RtDetrAdapter, rtdetr_deploy_input_spec
from trt_infer_ros.models.yolo import (YoloV5Adapter, YoloV8Adapter, YoloXAdapter,
                                       yolo_input_spec, yolox_input_spec)
from trt_infer_ros.models.yolo_end2end import YoloEnd2EndAdapter

__all__ = ["MODEL_TYPES", "MODEL_TYPE_CHOICES", "GraphInfo", "create_adapter", "classify_graph",
           "detect_model_type", "inspect_onnx", "normalize_model_type", "parse_input_size"]

# Every model_type a user can name (the ROS parameter adds "auto" in front: MODEL_TYPE_CHOICES).
MODEL_TYPES = ("yolov8", "yolov8_seg", "yolov8_pose", "yolov8_obb", "yolov5", "yolox",
               "centernet", "end2end", "yolo_end2end", "rtdetr")
MODEL_TYPE_CHOICES = ("auto",) + MODEL_TYPES
# Other spellings users type; compared with "-", "_" and case ignored.
ALIASES = {"yolo11": "yolov8", "yolov11": "yolov8", "yolo8": "yolov8", "yolo12": "yolov8",
           "yolov12": "yolov8", "yolo5": "yolov5", "yolov5u": "yolov8",
           "yolov8seg": "yolov8_seg", "yolo11seg": "yolov8_seg", "segment": "yolov8_seg",
           "yolov8pose": "yolov8_pose", "yolo11pose": "yolov8_pose", "pose": "yolov8_pose",
           "yolov8obb": "yolov8_obb", "yolo11obb": "yolov8_obb", "obb": "yolov8_obb",
           "yolov10": "yolo_end2end", "yolo10": "yolo_end2end", "yolo26": "yolo_end2end",
           "yolov26": "yolo_end2end", "yoloend2end": "yolo_end2end", "nmsfree": "yolo_end2end",
           "rtdetrv2": "rtdetr", "dfine": "rtdetr", "detr": "rtdetr"}
DEFAULT_SIZE = {"centernet": 512}        # every other family defaults to 640 (no model file only)
_CHOICES = ", ".join(MODEL_TYPES)


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "")


_LOOKUP = {**{_key(t): t for t in MODEL_TYPES}, **ALIASES, "auto": "auto"}


def normalize_model_type(model_type: str) -> str:
    t = _LOOKUP.get(_key(model_type))
    if t is None:
        raise ValueError(f"unknown model_type {model_type!r}; choose one of: auto, {_CHOICES}")
    return t


def classify_graph(info: GraphInfo) -> str:
    """The model family whose output layout `info` matches; ModelTypeError when unclear."""
    return identify(info).model_type


def detect_model_type(onnx_path: str) -> str:
    """The model family of an ONNX file, read from its shapes, names and metadata."""
    info = inspect_onnx(onnx_path)
    try:
        return classify_graph(info)
    except ModelTypeError as exc:
        raise ModelTypeError(_auto_failed(onnx_path, info, exc)) from None


def _auto_failed(path, info: GraphInfo, exc: Exception) -> str:
    if not_a_detector(info):
        return f"{path}: {exc}; this package runs object detectors only (see README, 'Models')"
    return f"{path}: {exc}. Set the `model_type` parameter to one of: {_CHOICES}."


def parse_input_size(value) -> Optional[tuple[int, int]]:
    """(width, height) from 640, (640, 384), "640" or "640x384" (width x height); None or ""
    or 0 mean not given."""
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, int):
        w = h = value
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+)\s*(?:[xX,]\s*(\d+))?\s*", value)
        if not m:
            raise ValueError(f"input_size {value!r} is not a size: write e.g. 640 or 640x384 "
                             f"(width x height)")
        w, h = int(m.group(1)), int(m.group(2) or m.group(1))
    else:
        w, h = (int(v) for v in value)
    if w <= 0 or h <= 0:
        raise ValueError(f"input_size {value!r} must be positive, e.g. 640 or 640x384")
    return w, h


def _resolve_size(kind: str, info: Optional[GraphInfo], given) -> tuple[int, int, str]:
    """(width, height, where it came from): static input dims, the `input_size` argument, the
    model's metadata imgsz, or (no model file) the family default."""
    size = parse_input_size(given)
    if info is None:
        if size:
            return size[0], size[1], "input_size"
        d = DEFAULT_SIZE.get(kind, 640)
        return d, d, f"the {kind} default"
    h, w = info.input_hw
    if size:
        for want, static, axis in ((size[0], w, "width"), (size[1], h, "height")):
            if static is not None and want != static:
                raise ValueError(f"input_size {axis} {want} disagrees with the model's static "
                                 f"input shape {shape_text(info.input_shape)}; leave input_size "
                                 f"empty or export the model at that size")
    if h is not None and w is not None:
        return w, h, "the model's static input shape"
    meta = info.metadata
    if size:
        width, height, source = w or size[0], h or size[1], "input_size"
    elif meta.imgsz:
        width, height, source = w or meta.imgsz[1], h or meta.imgsz[0], "the model's metadata (imgsz)"
    else:
        raise ValueError(f"the model's input {shape_text(info.input_shape)} has a dynamic size and "
                         f"the file records none: set input_size, e.g. 640 or 640x384 "
                         f"(width x height)")
    stride = meta.stride or 32
    if width % stride or height % stride:
        raise ValueError(f"input size {width}x{height} is not a multiple of the model's stride "
                         f"{stride}: choose input_size as multiples of {stride}, e.g. 640x384")
    return width, height, source


def _concrete(path: Optional[str], info: Optional[GraphInfo], width: int, height: int,
              extra: dict) -> Optional[GraphInfo]:
    """`info` with output shapes from a probe run when the declared ones are dynamic."""
    if info is None or path is None:
        return info
    main = next((s for s in info.output_shapes if len(s) == 3), None)
    if main is not None and main[1] is not None and main[2] is not None:
        return info
    if any(len(s) == 2 for s in info.output_shapes) and len(info.output_shapes) == 1:
        return info                          # a classifier: refused by name, no need to run it
    try:
        shapes = probe_output_shapes(path, info, width, height, extra)
    except Exception:                        # a probe is a best effort; shapes stay declared
        return info
    info.output_shapes = [tuple(s) for s in shapes]
    return info


def _class_names(class_names, labels, info: Optional[GraphInfo], num_classes):
    """Explicit names > labels file > names stored in the model > defaults (by class count)."""
    source = "given"
    if class_names is None and labels:
        class_names, source = load_labels(labels), f"in labels file {labels}"
    if class_names is None and info is not None and info.metadata.names:
        class_names, source = info.metadata.names, "in the model's metadata"
    if class_names is not None and num_classes is not None and len(class_names) != num_classes:
        # More names than classes is as wrong as fewer: an extra first line ("background")
        # shifts every name by one.
        raise ValueError(f"{len(class_names)} class names {source} but the model has "
                         f"{num_classes} classes: give exactly one name per class, in class-id "
                         f"order (no background entry)")
    return None if class_names is None else list(class_names)


def _check_explicit(kind: str, path, info: GraphInfo) -> Identification:
    """The identification for an explicit model_type, refused when the graph does not fit it."""
    why_not = not_a_detector(info)
    if why_not:
        raise ModelTypeError(f"{path}: {why_not}; model_type {kind!r} cannot decode it "
                             f"(this package runs object detectors only)")
    found = possible_types(info)
    if kind in found:
        ident = Identification(kind, found[kind], reason="model_type parameter")
        if kind == "rtdetr":
            ident.layout = rtdetr_layout(info)
        return ident
    try:
        advice = (f"auto-detection chooses {identify(info).model_type!r}: set model_type to that "
                  f"or to auto")
    except ModelTypeError as exc:
        advice = f"auto-detection finds no family either ({exc})"
    raise ModelTypeError(f"{path}: model_type {kind!r} expects {EXPECTED[kind]}, but the model has "
                         f"outputs {', '.join(shape_text(s) for s in info.output_shapes)} with "
                         f"input {shape_text(info.input_shape)}; {advice}")


def create_adapter(model_type: str, model_path: Optional[str] = None,
                   input_size: Union[int, str, Sequence[int], None] = None,
                   class_names: Optional[Sequence[str]] = None,
                   input_spec_overrides: Optional[dict] = None,
                   labels: Optional[str] = None, check_outputs: bool = True) -> ModelAdapter:
    """Build the adapter for `model_type` ("auto" reads the family from `model_path`).

    With a model file the family is checked against its outputs (an explicit type that does not
    fit is refused), and the input size comes from its static input, else `input_size`
    (640, "640x384" = width x height, or (width, height)), else its metadata imgsz; a dynamic
    model with none of these is refused. Layout and dtype come from its input.
    `class_names` (a list) or `labels` (a labels file, see `load_labels`) override the names
    stored in the model. `input_spec_overrides` sets other InputSpec fields (e.g. color, scale).
    The adapter's `size_source` and `selection` say where the size and the family came from.
    `check_outputs=False` skips checking an explicit model_type against the outputs, for
    callers that only need its preprocessing (INT8 calibration of a partial graph).
    """
    kind = normalize_model_type(model_type)
    info = inspect_onnx(model_path) if model_path else None
    if kind == "auto" and info is None:
        raise ValueError("model_type 'auto' needs a model file to inspect")
    width, height, size_source = _resolve_size(kind, info, input_size)
    extra = _size_inputs(info, width, height)
    info = _concrete(model_path, info, width, height, extra)
    if info is None:
        ident = Identification(kind, reason="model_type parameter")
    elif kind == "auto":
        try:
            ident = identify(info)
        except ModelTypeError as exc:
            raise ModelTypeError(_auto_failed(model_path, info, exc)) from None
    elif check_outputs:
        ident = _check_explicit(kind, model_path, info)
    else:
        ident = Identification(kind, possible_types(info).get(kind, "detect"),
                               reason="model_type parameter (outputs not checked)")

    spec_args = dict(input_spec_overrides or {})
    if info is not None:
        if info.layout:
            spec_args.setdefault("layout", info.layout)
        spec_args.setdefault("dtype", info.input_dtype)
    adapter = _build(ident, info, width, height, spec_args, class_names, labels)
    adapter.size_source = size_source
    adapter.metadata = info.metadata if info is not None else None
    adapter.selection = (f"{adapter.model_type}"
                         f"{'' if ident.task == 'detect' else ' (' + ident.task + ')'} by "
                         f"{ident.reason}; input {width}x{height} from {size_source}")
    return adapter


def _size_inputs(info: Optional[GraphInfo], width: int, height: int) -> dict:
    """The deploy-form RT-DETR's target-size input for a probe run."""
    import numpy as np
    if info is None:
        return {}
    return {i.name: np.array([[width, height]], np.int64) for i in info.extra_inputs
            if any(h in i.name.lower() for h in SIZE_INPUT_HINTS)}


def _build(ident: Identification, info: Optional[GraphInfo], width: int, height: int,
           spec_args: dict, class_names, labels) -> ModelAdapter:
    kind, task = ident.model_type, ident.task
    out = next((s for s in info.output_shapes if len(s) == 3), ()) if info else ()
    meta = info.metadata if info else None
    meta_nc = len(meta.names) if meta and meta.names else None
    kpt = meta.kpt_shape if meta else None

    def names(nc):
        return _class_names(class_names, labels, info, nc)

    if kind.startswith("yolov8"):
        protos = next((s for s in info.output_shapes if len(s) == 4), None) if info else None
        mask_channels = protos[1] if protos and protos[1] else 32
        extra = {"detect": 0, "segment": mask_channels, "obb": 1,
                 "pose": (kpt[0] * kpt[1]) if kpt else 51}[task]
        nc = None
        if len(out) == 3:
            a, c = out[1], out[2]
            channels = a if a is not None and (c is None or a < c) else c
            nc = channels - 4 - extra if channels else None
        return YoloV8Adapter(yolo_input_spec(width, height, **spec_args), names(nc), nc, task=task,
                             kpt_shape=kpt, mask_channels=mask_channels)
    last = out[-1] if len(out) == 3 else None
    if kind == "yolov5":
        nc = last - 5 if last else None
        return YoloV5Adapter(yolo_input_spec(width, height, **spec_args), names(nc), nc)
    if kind == "yolox":
        # A decoding head exponentiates box sizes inside the graph; the raw head has no Exp.
        decoded = ("Exp" in info.ops) if info and info.ops else None
        nc = last - 5 if last else None
        return YoloXAdapter(yolox_input_spec(width, height, **spec_args), names(nc), nc,
                            decoded=decoded)
    if kind == "centernet":
        return CenterNetAdapter(centernet_input_spec(width, height, **spec_args), names(None))
    if kind == "yolo_end2end":
        return YoloEnd2EndAdapter(yolo_input_spec(width, height, **spec_args), names(meta_nc),
                                  meta_nc, task=task, kpt_shape=kpt)
    if kind == "rtdetr":
        layout = ident.layout or "scores"
        nc = last - 4 if layout == "scores" and last else meta_nc
        spec = (rtdetr_deploy_input_spec if layout == "deploy" else yolo_input_spec)(
            width, height, **spec_args)
        size_input = next((i.name for i in info.extra_inputs), None) if info else None
        return RtDetrAdapter(spec, names(nc), nc, layout=layout, size_input=size_input,
                             output_names=info.output_names if info else None)
    return End2EndAdapter(yolo_input_spec(width, height, **spec_args), names(None),
                          output_names=info.output_names if info else None)
