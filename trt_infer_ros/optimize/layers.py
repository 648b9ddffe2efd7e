"""The quantizable layers of an ONNX graph: the weighted operations TensorRT runs in INT8.

A layer is a Conv, ConvTranspose, Gemm or MatMul node whose weight is an initializer: its
activation input and its weight get the Q/DQ pairs. Layers are named as TensorRT's ONNX parser
names them (the node name, or `node_of_<first output>` for an unnamed node), so the names are
what `layer_precisions` patterns match in the engine builder.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import onnx
from onnx import numpy_helper

QUANTIZABLE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


class NoQuantizableLayers(ValueError):
    pass


@dataclass(frozen=True)
class Layer:
    name: str             # TensorRT layer name
    op: str
    index: int            # node index in the graph
    activation: str       # the input tensor quantized per tensor
    weight: str           # the initializer quantized per channel
    axis: int             # the weight's output-channel axis

    @property
    def label(self) -> str:
        return f"{self.name} ({self.op})"


def layer_name(node: onnx.NodeProto) -> str:
    return node.name or f"node_of_{node.output[0]}"


def weight_axis(node: onnx.NodeProto, weight_input: int) -> int:
    """The axis of the weight that indexes output channels (one scale per channel)."""
    if node.op_type == "Conv":
        return 0                              # [out, in/groups, kh, kw]
    if node.op_type == "ConvTranspose":
        return 1                              # [in, out/groups, kh, kw]
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1            # B is [N, K] with transB, else [K, N]
    return 1 if weight_input == 1 else 0      # MatMul: x @ W, W is [K, N]


def quantizable_layers(model: onnx.ModelProto) -> list[Layer]:
    inits = {i.name: i for i in model.graph.initializer}
    layers = []
    for index, node in enumerate(model.graph.node):
        if node.op_type not in QUANTIZABLE_OPS or len(node.input) < 2:
            continue
        if node.op_type == "MatMul" and node.input[0] in inits and node.input[1] not in inits:
            weight_input, act_input = 0, 1
        else:
            weight_input, act_input = 1, 0
        weight = node.input[weight_input]
        if weight not in inits or node.input[act_input] in inits:
            continue
        if len(inits[weight].dims) < 2 and node.op_type != "MatMul":
            continue
        layers.append(Layer(layer_name(node), node.op_type, index, node.input[act_input], weight,
                            weight_axis(node, weight_input)))
    return layers


def require_layers(model: onnx.ModelProto, path: str = "the model") -> list[Layer]:
    layers = quantizable_layers(model)
    if not layers:
        ops = sorted({n.op_type for n in model.graph.node})
        raise NoQuantizableLayers(
            f"{path} has no quantizable layers (Conv, ConvTranspose, Gemm or MatMul with a "
            f"constant weight); its operators are {', '.join(ops) or 'none'}: INT8 would change "
            "nothing, build it in FP16")
    return layers


def weight_array(model: onnx.ModelProto, layer: Layer):
    init = next(i for i in model.graph.initializer if i.name == layer.weight)
    return numpy_helper.to_array(init)


def find_layer(layers: list[Layer], name: str) -> Optional[Layer]:
    return next((layer for layer in layers if layer.name == name), None)


def precision_pattern(name: str) -> str:
    """`name` as an fnmatch pattern that matches only itself (brackets, * and ? escaped)."""
    return "".join(f"[{c}]" if c in "[]*?" else c for c in name)
