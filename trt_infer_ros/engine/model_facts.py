"""What an ONNX file says that the build needs before TensorRT sees it.

Its content hash (for the sidecar and caches), its inputs and outputs with symbolic dimensions
as -1, and whether it carries its own precision (Q/DQ nodes, float16 tensors). Read with the
`onnx` package; external weights are not loaded.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class TensorFacts:
    name: str
    shape: tuple[int, ...]          # -1 for symbolic / unknown dimensions
    dtype: str                      # numpy-style name: float32, float16, int64, ...


@dataclass
class ModelFacts:
    path: str
    sha256: str
    inputs: list[TensorFacts] = field(default_factory=list)
    outputs: list[TensorFacts] = field(default_factory=list)
    has_qdq: bool = False
    has_fp16: bool = False
    node_count: int = 0

    @property
    def dynamic_inputs(self) -> list[TensorFacts]:
        return [t for t in self.inputs if any(d < 0 for d in t.shape)]


def _tensor_facts(value_info) -> TensorFacts:
    from onnx import helper
    ttype = value_info.type.tensor_type
    dims = tuple(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else -1
                 for d in ttype.shape.dim)
    try:
        dtype = str(helper.tensor_dtype_to_np_dtype(ttype.elem_type))
    except Exception:  # noqa: BLE001 - unknown element type
        dtype = f"onnx:{ttype.elem_type}"
    return TensorFacts(value_info.name, dims, dtype)


def input_facts(graph) -> list[TensorFacts]:
    """The inputs of an onnx GraphProto that are not weights."""
    initializers = {i.name for i in graph.initializer}
    return [_tensor_facts(v) for v in graph.input if v.name not in initializers]


def read_model_facts(path: str) -> ModelFacts:
    """Facts of the ONNX file at `path` (hash always; graph facts when `onnx` is importable)."""
    facts = ModelFacts(path=path, sha256=file_sha256(path))
    try:
        import onnx
    except ImportError:
        return facts
    model = onnx.load(path, load_external_data=False)
    graph = model.graph
    facts.inputs = input_facts(graph)
    facts.outputs = [_tensor_facts(v) for v in graph.output]
    facts.node_count = len(graph.node)
    facts.has_qdq = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node)
    fp16 = onnx.TensorProto.FLOAT16
    facts.has_fp16 = (any(i.data_type == fp16 for i in graph.initializer)
                      or any(v.type.tensor_type.elem_type == fp16
                             for v in list(graph.input) + list(graph.output))
                      or any(n.op_type == "Cast" and any(a.name == "to" and a.i == fp16
                                                         for a in n.attribute)
                             for n in graph.node))
    return facts
