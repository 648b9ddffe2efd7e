"""Pick and build the adapter for a model: by name, or by reading its ONNX graph."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

from trt_infer_ros.models.adapter import ModelAdapter
from trt_infer_ros.models.centernet import CenterNetAdapter, centernet_input_spec
from trt_infer_ros.models.end2end import End2EndAdapter
from trt_infer_ros.models.yolo import (YoloV5Adapter, YoloV8Adapter, YoloXAdapter, grid_size,
                                       yolo_input_spec, yolox_input_spec)

MODEL_TYPES = ("yolov8", "yolov5", "yolox", "centernet", "end2end")
ALIASES = {"yolo11": "yolov8", "yolov11": "yolov8", "yolo8": "yolov8", "yolo5": "yolov5"}
DEFAULT_SIZE = {"centernet": 512}        # every other family defaults to 640
_CHOICES = ", ".join(MODEL_TYPES)

Dims = tuple[Optional[int], ...]          # None where a dimension is dynamic


@dataclass
class GraphInfo:
    """What the registry needs from an ONNX graph: I/O names, shapes, dtypes, op types."""

    input_name: str
    input_shape: Dims
    input_dtype: str                      # "float32" or "float16"
    output_names: list[str]
    output_shapes: list[Dims]
    ops: set[str] = field(default_factory=set)

    @property
    def layout(self) -> Optional[str]:
        s = self.input_shape
        if len(s) == 4 and s[1] == 3 and s[3] != 3:
            return "NCHW"
        if len(s) == 4 and s[3] == 3 and s[1] != 3:
            return "NHWC"
        return None

    @property
    def input_hw(self) -> tuple[Optional[int], Optional[int]]:
        if self.layout == "NHWC":
            return self.input_shape[1], self.input_shape[2]
        if self.layout == "NCHW":
            return self.input_shape[2], self.input_shape[3]
        return None, None


def _dims(value_info) -> Dims:
    dims = value_info.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims)


def inspect_onnx(onnx_path: str) -> GraphInfo:
    """Read I/O shapes (running shape inference when outputs are not declared) and op types.

    Without the onnx package the I/O comes from onnxruntime, which every install has; op types
    are then unknown (empty), which only matters for telling a decoded YOLOX head from a raw
    one, and that adapter then decides from the first frame's values.
    """
    try:
        import onnx
    except ImportError:
        return _inspect_with_onnxruntime(onnx_path)

    model = onnx.load(str(onnx_path), load_external_data=False)
    graph = model.graph
    if any(None in _dims(o) or not _dims(o) for o in graph.output):
        try:
            graph = onnx.shape_inference.infer_shapes(model).graph
        except Exception:                  # inference is a best effort; declared dims remain
            pass
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ValueError(f"{onnx_path}: expected one image input, found {[i.name for i in inputs]}")
    elem = inputs[0].type.tensor_type.elem_type
    return GraphInfo(
        input_name=inputs[0].name,
        input_shape=_dims(inputs[0]),
        input_dtype="float16" if elem == onnx.TensorProto.FLOAT16 else "float32",
        output_names=[o.name for o in graph.output],
        output_shapes=[_dims(o) for o in graph.output],
        ops={n.op_type for n in graph.node},
    )


def _inspect_with_onnxruntime(onnx_path: str) -> GraphInfo:
    try:
        import onnxruntime
    except ImportError:
        raise ValueError("reading an ONNX model needs onnxruntime or onnx: install onnxruntime "
                         "(README, 'Install')") from None
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def dims(shape) -> Dims:
        return tuple(d if isinstance(d, int) and d > 0 else None for d in shape)

    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise ValueError(f"{onnx_path}: expected one image input, found {[i.name for i in inputs]}")
    return GraphInfo(
        input_name=inputs[0].name,
        input_shape=dims(inputs[0].shape),
        input_dtype="float16" if inputs[0].type == "tensor(float16)" else "float32",
        output_names=[o.name for o in outputs],
        output_shapes=[dims(o.shape) for o in outputs],
    )


def _grid_counts(h: Optional[int], w: Optional[int]) -> set[int]:
    """Anchor-point counts of 3-scale (P5) and 4-scale (P6) heads for this input size."""
    if not h or not w:
        return set()
    return {grid_size(w, h, (8, 16, 32)), grid_size(w, h, (8, 16, 32, 64))}


def classify_graph(info: GraphInfo) -> str:
    """The model family whose output layout `info` matches; ValueError when unclear."""
    names = [n.lower() for n in info.output_names]
    if "EfficientNMS_TRT" in info.ops or "BatchedNMSDynamic_TRT" in info.ops or (
            len(info.output_shapes) >= 4 and any("num" in n for n in names)):
        return "end2end"
    out = info.output_shapes[0] if info.output_shapes else ()
    if len(out) != 3 or (out[1] is None and out[2] is None):
        raise ValueError(f"output {info.output_names[:1]} has shape {list(out)}; expected "
                         f"[1, A, B] (or the four outputs of an NMS layer)")
    a, b = out[1], out[2]
    if b is None:                      # dynamic anchor count: only [1, 4+nc, N] has N last
        if a >= 5:
            return "yolov8"
        raise ValueError(f"output shape {list(out)} fits no known family")
    grids = _grid_counts(*info.input_hw)
    if a is not None and a < b and a >= 5 and (not grids or b in grids):
        return "yolov8"                                 # [1, 4+nc, N]
    if b == 6 and (a is None and any("detection" in n for n in names) or
                   a is not None and a not in grids | {x * 3 for x in grids}):
        return "centernet"                              # [1, N, 6] final boxes
    if b >= 6 and grids and a is not None:
        if a in {x * 3 for x in grids}:
            return "yolov5"                             # 3 anchors per grid cell
        if a in grids:
            return "yolox"                              # anchor-free, one row per cell
    guesses = "yolov5 or yolox" if b >= 6 else "none of them"
    raise ValueError(f"cannot tell the model family from output shape {list(out)} with input "
                     f"{list(info.input_shape)} (could be {guesses})")


def detect_model_type(onnx_path: str) -> str:
    """The model family of an ONNX file, read from its input/output shapes and names."""
    try:
        return classify_graph(inspect_onnx(onnx_path))
    except ValueError as exc:
        raise ValueError(f"{onnx_path}: {exc}. Set the `model_type` parameter to one of: "
                         f"{_CHOICES}.") from None


def normalize_model_type(model_type: str) -> str:
    t = model_type.strip().lower().replace("-", "").replace("_", "")
    t = ALIASES.get(t, t)
    if t not in MODEL_TYPES and t != "auto":
        raise ValueError(f"unknown model_type {model_type!r}; choose one of: auto, {_CHOICES}")
    return t


def _size(input_size: Union[int, Sequence[int], None]) -> tuple[Optional[int], Optional[int]]:
    """(width, height) from an int or a (width, height) pair."""
    if input_size is None:
        return None, None
    if isinstance(input_size, int):
        return input_size, input_size
    w, h = input_size
    return int(w), int(h)


def create_adapter(model_type: str, model_path: Optional[str] = None,
                   input_size: Union[int, Sequence[int], None] = None,
                   class_names: Optional[Sequence[str]] = None,
                   input_spec_overrides: Optional[dict] = None) -> ModelAdapter:
    """Build the adapter for `model_type` ("auto" reads the family from `model_path`).

    With a model file, input size, layout and dtype come from its input where static;
    `input_size` (int or (width, height)) fills dynamic dimensions and must agree with static
    ones. `input_spec_overrides` sets other InputSpec fields (e.g. color, scale, mean, std).
    """
    kind = normalize_model_type(model_type)
    info = inspect_onnx(model_path) if model_path else None
    if kind == "auto":
        if model_path is None:
            raise ValueError("model_type 'auto' needs a model file to inspect")
        kind = detect_model_type(model_path)

    width, height = _size(input_size)
    spec_args = dict(input_spec_overrides or {})
    if info is not None:
        h, w = info.input_hw
        for given, static, axis in ((width, w, "width"), (height, h, "height")):
            if given is not None and static is not None and given != static:
                raise ValueError(f"input_size {axis} {given} disagrees with the model's static "
                                 f"input shape {list(info.input_shape)}")
        width, height = width or w, height or h
        if info.layout:
            spec_args.setdefault("layout", info.layout)
        spec_args.setdefault("dtype", info.input_dtype)
    width = width or DEFAULT_SIZE.get(kind, 640)
    height = height or DEFAULT_SIZE.get(kind, 640)

    out = info.output_shapes[0] if info and info.output_shapes else ()
    last = out[-1] if len(out) == 3 else None
    if kind == "yolov8":
        channels_first = len(out) == 3 and out[1] and (out[2] is None or out[1] < out[2])
        nc = out[1] - 4 if channels_first else None
        return YoloV8Adapter(yolo_input_spec(width, height, **spec_args), class_names, nc)
    if kind == "yolov5":
        return YoloV5Adapter(yolo_input_spec(width, height, **spec_args), class_names,
                             last - 5 if last else None)
    if kind == "yolox":
        # A decoding head exponentiates box sizes inside the graph; the raw head has no Exp.
        decoded = ("Exp" in info.ops) if info and info.ops else None
        return YoloXAdapter(yolox_input_spec(width, height, **spec_args), class_names,
                            last - 5 if last else None, decoded=decoded)
    if kind == "centernet":
        return CenterNetAdapter(centernet_input_spec(width, height, **spec_args), class_names)
    return End2EndAdapter(yolo_input_spec(width, height, **spec_args), class_names,
                          output_names=info.output_names if info else None)
