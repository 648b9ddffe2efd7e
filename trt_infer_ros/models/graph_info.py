"""What the model registry reads from an ONNX file: I/O names, shapes, dtypes, op types and the
metadata an exporter wrote into it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from trt_infer_ros.models.metadata import ModelMetadata, parse_metadata
from trt_infer_ros.models.model_file import ModelFileError, check_model_file, unreadable_onnx

Dims = tuple[Optional[int], ...]          # None where a dimension is dynamic


@dataclass
class TensorInfo:
    name: str
    shape: Dims
    dtype: str                            # numpy dtype name: "float32", "int64", ...


@dataclass
class GraphInfo:
    """The image input (the 4-D one), any other inputs, the outputs, op types and metadata."""

    input_name: str
    input_shape: Dims
    input_dtype: str                      # "float32" or "float16"
    output_names: list[str]
    output_shapes: list[Dims]
    ops: set[str] = field(default_factory=set)
    output_dtypes: list[str] = field(default_factory=list)
    extra_inputs: list[TensorInfo] = field(default_factory=list)
    metadata: ModelMetadata = field(default_factory=ModelMetadata)

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


_ONNX_DTYPES = {1: "float32", 10: "float16", 7: "int64", 6: "int32", 2: "uint8", 11: "float64",
                9: "bool"}
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
               "tensor(int32)": "int32", "tensor(uint8)": "uint8", "tensor(double)": "float64",
               "tensor(bool)": "bool"}


def _onnx_dtype(elem_type: int) -> str:
    """The numpy-style name of an ONNX element type; other types by their ONNX name ("int8",
    "bfloat16") so a refusal names what the model really has."""
    if elem_type in _ONNX_DTYPES:
        return _ONNX_DTYPES[elem_type]
    import onnx
    try:
        return onnx.TensorProto.DataType.Name(elem_type).lower()
    except ValueError:
        return f"element type {elem_type}"


def _ort_dtype(ort_type: str) -> str:
    return _ORT_DTYPES.get(ort_type, ort_type.removeprefix("tensor(").removesuffix(")"))


def _dims(value_info) -> Dims:
    dims = value_info.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims)


def inspect_onnx(onnx_path: str) -> GraphInfo:
    """Read I/O shapes (running shape inference when outputs are not declared), op types and
    metadata_props. Unreadable files raise ModelFileError with one sentence saying what to do.

    Without the onnx package the I/O and metadata come from onnxruntime, which every install
    has; op types are then unknown (empty), which only matters for tie-breaks between layouts
    that shapes alone cannot tell apart (named in the error when it happens).
    """
    check_model_file(onnx_path)
    try:
        import onnx
    except ImportError:
        return _inspect_with_onnxruntime(onnx_path)
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:
        raise unreadable_onnx(onnx_path, exc) from None
    graph = model.graph
    if not graph.node and not graph.input and not graph.output:
        raise unreadable_onnx(onnx_path, ValueError("no graph in the file"))
    declared = {o.name: _dims(o) for o in graph.output}
    inferred: dict = {}
    if any(None in dims or not dims for dims in declared.values()):
        try:
            inferred = {o.name: _dims(o) for o in
                        onnx.shape_inference.infer_shapes(model).graph.output}
        except Exception:                  # inference is a best effort; declared dims remain
            pass
    initializers = {i.name for i in graph.initializer}
    inputs = [TensorInfo(i.name, _dims(i), _onnx_dtype(i.type.tensor_type.elem_type))
              for i in graph.input if i.name not in initializers]
    outputs = [TensorInfo(o.name, _fill(declared[o.name], inferred.get(o.name)),
                          _onnx_dtype(o.type.tensor_type.elem_type))
               for o in graph.output]
    meta = parse_metadata({p.key: p.value for p in model.metadata_props})
    return _graph_info(onnx_path, inputs, outputs, {n.op_type for n in graph.node}, meta)


def _fill(declared: Dims, inferred: Optional[Dims]) -> Dims:
    """Declared output dims, with dynamic ones filled from shape inference. What the file
    declares wins: onnx versions differ in whether inference may override it."""
    if not declared:
        return inferred or declared
    if inferred is None or len(inferred) != len(declared):
        return declared
    return tuple(d if d is not None else i for d, i in zip(declared, inferred))


def _inspect_with_onnxruntime(onnx_path: str) -> GraphInfo:
    session = ort_session(onnx_path)

    def dims(shape) -> Dims:
        return tuple(d if isinstance(d, int) and d > 0 else None for d in shape)

    inputs = [TensorInfo(i.name, dims(i.shape), _ort_dtype(i.type))
              for i in session.get_inputs()]
    outputs = [TensorInfo(o.name, dims(o.shape), _ort_dtype(o.type))
               for o in session.get_outputs()]
    meta = parse_metadata(dict(session.get_modelmeta().custom_metadata_map or {}))
    return _graph_info(onnx_path, inputs, outputs, set(), meta)


def ort_session(onnx_path: str):
    """A CPU onnxruntime session, with unreadable files explained in one sentence."""
    try:
        import onnxruntime
    except ImportError:
        raise ValueError("reading an ONNX model needs onnxruntime or onnx: install onnxruntime "
                         "(README, 'Install')") from None
    check_model_file(onnx_path)
    try:
        return onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise unreadable_onnx(onnx_path, exc) from None


def _input_advice(inputs: list[TensorInfo]) -> str:
    if any(len(i.shape) == 4 and "int" in i.dtype for i in inputs):
        # Quantized exports that take raw bytes: the preprocessing here produces floats.
        return ("export the model with a float32 or float16 image input (quantize inside the "
                "graph with QuantizeLinear if needed)")
    return "this is not an image model this package can feed"


def _graph_info(path, inputs: list[TensorInfo], outputs: list[TensorInfo], ops: set[str],
                meta: ModelMetadata) -> GraphInfo:
    images = [i for i in inputs if len(i.shape) == 4 and i.dtype in ("float32", "float16")]
    if len(images) != 1:
        found = ", ".join(f"{i.name}{list(i.shape)} {i.dtype}" for i in inputs) or "none"
        raise ModelFileError(f"{path}: expected one float image input [1,3,H,W] or [1,H,W,3], "
                             f"found {found}; {_input_advice(inputs)}")
    image = images[0]
    return GraphInfo(
        input_name=image.name, input_shape=image.shape, input_dtype=image.dtype,
        output_names=[o.name for o in outputs], output_shapes=[o.shape for o in outputs],
        ops=ops, output_dtypes=[o.dtype for o in outputs],
        extra_inputs=[i for i in inputs if i is not image], metadata=meta)


def probe_output_shapes(onnx_path: str, info: GraphInfo, width: int, height: int,
                        extra: Optional[dict] = None) -> list[Dims]:
    """Concrete output shapes from one run on a blank image of this size (for dynamic graphs)."""
    session = ort_session(onnx_path)
    shape = (1, 3, height, width) if info.layout != "NHWC" else (1, height, width, 3)
    feed = {info.input_name: np.zeros(shape, info.input_dtype)}
    feed.update(extra or {})
    outs = session.run(None, feed)
    return [tuple(int(d) for d in np.shape(o)) for o in outs]
