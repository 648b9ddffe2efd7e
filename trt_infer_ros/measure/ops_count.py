"""Multiply-accumulates (MACs) of an ONNX model, layer by layer, from its graph and shapes.

Counted: Conv, ConvTranspose, Gemm, MatMul (the layers that hold nearly all of a detector's
arithmetic). One MAC = one multiply + one add = 2 operations; achieved TOPS = 2 * MACs * fps.
Shapes come from onnx shape inference; inputs with symbolic dimensions take `input_shapes`
(name -> shape) or 1 for each unknown dimension.
  Conv          prod(Y.shape) * prod(W.shape[1:])     (W[1] = C_in / group: depthwise is 1)
  ConvTranspose prod(X.shape) * prod(W.shape[1:])     (each input pixel feeds C_out/group * k)
  Gemm          M * N * K                              (after transA / transB)
  MatMul        batch * M * N * K                      (numpy broadcasting of batch dims)
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

COUNTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")


class OpsCountError(ValueError):
    pass


@dataclass(frozen=True)
class LayerMacs:
    name: str
    op_type: str
    macs: int
    output_shape: tuple

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ModelOps:
    layers: tuple
    uncounted: dict        # op_type -> count of nodes not counted (elementwise, pooling, ...)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def gops(self) -> float:
        """Operations per inference, in units of 1e9 (2 per MAC)."""
        return 2.0 * self.macs / 1e9

    def by_op_type(self) -> dict:
        out: dict = {}
        for layer in self.layers:
            out[layer.op_type] = out.get(layer.op_type, 0) + layer.macs
        return out

    def summary(self) -> dict:
        return {"macs": self.macs, "gops": self.gops, "layers": len(self.layers),
                "macs_by_op_type": self.by_op_type(), "uncounted_ops": self.uncounted}


def achieved_tops(macs_per_frame: int, frames_per_s: float) -> float:
    return 2.0 * macs_per_frame * frames_per_s / 1e12


def tops_per_watt(tops: float, watts: Optional[float]) -> Optional[float]:
    return tops / watts if watts else None


def _shape_of(value_info) -> Optional[list]:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]


def _fix_inputs(model, input_shapes: dict) -> None:
    """Give every graph input a concrete shape so inference reaches every layer."""
    initializers = {i.name for i in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in initializers:
            continue
        dims = inp.type.tensor_type.shape.dim
        wanted = input_shapes.get(inp.name)
        if wanted is not None and len(wanted) != len(dims):
            raise OpsCountError(f"input {inp.name} has {len(dims)} dims, shape given {wanted}")
        for i, d in enumerate(dims):
            if wanted is not None:
                d.ClearField("dim_param")
                d.dim_value = int(wanted[i])
            elif not d.HasField("dim_value") or d.dim_value <= 0:
                d.ClearField("dim_param")
                d.dim_value = 1


def _conv_output(x: list, w: list, attrs: dict) -> list:
    """Conv output shape from its attributes, for when inference left it unknown."""
    k = list(attrs.get("kernel_shape", w[2:]))
    n = len(k)
    strides = list(attrs.get("strides", [1] * n))
    dil = list(attrs.get("dilations", [1] * n))
    pads = list(attrs.get("pads", [0] * 2 * n))
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    spatial = []
    for i in range(n):
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            spatial.append(math.ceil(x[2 + i] / strides[i]))
        else:
            span = dil[i] * (k[i] - 1) + 1
            total = x[2 + i] + (0 if auto == "VALID" else pads[i] + pads[i + n])
            spatial.append((total - span) // strides[i] + 1)
    return [x[0], w[0], *spatial]


def _known(shape) -> bool:
    return shape is not None and all(isinstance(d, int) and d > 0 for d in shape)


def count_macs(model, input_shapes: Optional[dict] = None) -> ModelOps:
    """MACs per layer of `model` (an onnx.ModelProto or a path)."""
    import onnx
    from onnx import helper, shape_inference

    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    else:
        model = onnx.ModelProto.FromString(model.SerializeToString())   # inference edits it
    _fix_inputs(model, input_shapes or {})
    try:
        model = shape_inference.infer_shapes(model, data_prop=True)
    except Exception as err:
        raise OpsCountError(f"shape inference failed: {err}") from err
    shapes: dict = {}
    for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        shape = _shape_of(vi)
        if shape is not None:
            shapes[vi.name] = shape
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)

    layers, uncounted = [], {}
    for index, node in enumerate(model.graph.node):
        name = node.name or f"{node.op_type}_{index}"
        if node.op_type not in COUNTED:
            uncounted[node.op_type] = uncounted.get(node.op_type, 0) + 1
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        a = shapes.get(node.input[0])
        b = shapes.get(node.input[1]) if len(node.input) > 1 else None
        y = shapes.get(node.output[0])
        if not (_known(a) and _known(b)):
            raise OpsCountError(f"{name} ({node.op_type}): input shapes unknown ({a}, {b}); "
                                "pass input_shapes")
        if node.op_type == "Conv":
            if not _known(y):
                y = _conv_output(a, b, attrs)
            macs = math.prod(y) * math.prod(b[1:])
        elif node.op_type == "ConvTranspose":
            macs = math.prod(a) * math.prod(b[1:])
        elif node.op_type == "Gemm":
            m, k = (a[1], a[0]) if attrs.get("transA", 0) else (a[0], a[1])
            n = b[0] if attrs.get("transB", 0) else b[1]
            macs = m * n * k
            y = y if _known(y) else [m, n]
        else:   # MatMul
            a2 = [1] + a if len(a) == 1 else a
            b2 = b + [1] if len(b) == 1 else b
            batch = _broadcast(a2[:-2], b2[:-2])
            macs = math.prod(batch) * a2[-2] * b2[-1] * a2[-1]
            y = y if _known(y) else [*batch, a2[-2], b2[-1]]
        layers.append(LayerMacs(name, node.op_type, int(macs), tuple(y)))
    return ModelOps(tuple(layers), uncounted)


def _broadcast(a: list, b: list) -> list:
    n = max(len(a), len(b))
    a, b = [1] * (n - len(a)) + list(a), [1] * (n - len(b)) + list(b)
    out = []
    for x, y in zip(a, b):
        if x != y and 1 not in (x, y):
            raise OpsCountError(f"MatMul batch dims {a} and {b} do not broadcast")
        out.append(max(x, y))
    return out
