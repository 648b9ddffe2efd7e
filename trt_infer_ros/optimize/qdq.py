"""The INT8 model as TensorRT's explicit quantization sees it: a Q/DQ ONNX.

For every layer the plan puts in INT8, the activation input gets QuantizeLinear ->
DequantizeLinear with one symmetric scale (amax / 127, zero point 0) and the weight is stored as
int8 with a per-channel DequantizeLinear (max |w| per output channel / 127). That is where
TensorRT's explicit quantization expects Q/DQ: on the inputs of weighted layers, never on their
outputs, bias left in float (TensorRT folds it); TensorRT fuses each DQ -> Conv into an INT8
convolution. Layers the plan keeps in FP16 get their input rounded through float16 (a Cast
pair) and float16-rounded weights, so the simulation of "FP16" is not silently FP32.

onnxruntime runs the result on the CPU (or CUDA) with the same arithmetic as the Q/DQ nodes
define: round half to even, saturate to [-128, 127]. Its own quantizer
(`onnxruntime.quantization.quantize_static`) is not used to write the model: by default it
quantizes activations as asymmetric uint8, quantizes the bias to int32, puts Q/DQ around
non-weighted operators (Add, Mul, pooling) TensorRT runs in float, and computes its own ranges
(its entropy method is not TensorRT's), so its Q/DQ placement and scales differ from what
TensorRT builds. Weight-only fake quantization at other bit widths (4-16) stores the
dequantized weights directly (Q/DQ nodes carry 8 bits).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from trt_infer_ros.optimize.layers import Layer
from trt_infer_ros.optimize.quantize import QuantSpec, compute_params, fake_quantize, quantize

PRECISIONS = ("int8", "fp16", "fp32")
QDQ_OPSET = 13                      # per-channel DequantizeLinear (axis) needs opset 13


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _ensure_opset(model: onnx.ModelProto) -> None:
    if _opset(model) < QDQ_OPSET:
        for o in model.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = QDQ_OPSET


def activation_scale(amax: float) -> float:
    """The symmetric INT8 scale TensorRT uses for a tensor of dynamic range `amax`."""
    return max(float(amax), 1e-12) / 127.0


class QdqWriter:
    """Adds Q/DQ and FP16 rounding to a copy of `model`, sharing one pair per tensor."""

    def __init__(self, model: onnx.ModelProto, weight_cache: Optional[dict] = None):
        self.weight_cache = weight_cache if weight_cache is not None else {}
        self.model = onnx.ModelProto()
        self.model.CopyFrom(model)
        _ensure_opset(self.model)
        self.graph = self.model.graph
        self.inits = {i.name: i for i in self.graph.initializer}
        self.new_nodes: list[tuple[int, onnx.NodeProto]] = []     # (insert before index, node)
        self.done: dict[tuple[str, str], str] = {}

    def _const(self, name: str, value: np.ndarray) -> str:
        self.graph.initializer.append(numpy_helper.from_array(value, name))
        self.inits[name] = self.graph.initializer[-1]
        return name

    def _insert(self, before: int, node: onnx.NodeProto) -> None:
        self.new_nodes.append((before, node))

    def quantize_activation(self, tensor: str, amax: float, before: int) -> str:
        key = (tensor, "int8")
        if key not in self.done:
            base = f"{tensor}_qdq"
            scale = self._const(f"{base}_scale", np.array(activation_scale(amax), np.float32))
            zero = self._const(f"{base}_zero_point", np.array(0, np.int8))
            self._insert(before, helper.make_node("QuantizeLinear", [tensor, scale, zero],
                                                  [f"{base}_q"], name=f"{base}_QuantizeLinear"))
            self._insert(before, helper.make_node("DequantizeLinear", [f"{base}_q", scale, zero],
                                                  [f"{base}_dq"],
                                                  name=f"{base}_DequantizeLinear"))
            self.done[key] = f"{base}_dq"
        return self.done[key]

    def round_activation_fp16(self, tensor: str, before: int) -> str:
        key = (tensor, "fp16")
        if key not in self.done:
            base = f"{tensor}_fp16"
            self._insert(before, helper.make_node("Cast", [tensor], [f"{base}_half"],
                                                  to=TensorProto.FLOAT16, name=f"{base}_Cast"))
            self._insert(before, helper.make_node("Cast", [f"{base}_half"], [f"{base}_float"],
                                                  to=TensorProto.FLOAT, name=f"{base}_CastBack"))
            self.done[key] = f"{base}_float"
        return self.done[key]

    def quantize_weight(self, layer: Layer) -> str:
        key = (layer.weight, layer.axis)
        if key not in self.weight_cache:     # the same weights are quantized for every plan
            weight = numpy_helper.to_array(self.inits[layer.weight]).astype(np.float32)
            params = compute_params(weight, QuantSpec(8, True, layer.axis))
            self.weight_cache[key] = (quantize(weight, params).astype(np.int8),
                                      params.scale.astype(np.float32))
        q_values, scales = self.weight_cache[key]
        base = f"{layer.weight}_{layer.name}_qdq"
        q = self._const(f"{base}_int8", q_values)
        scale = self._const(f"{base}_scale", scales)
        zero = self._const(f"{base}_zero_point", np.zeros(scales.shape, np.int8))
        self._insert(layer.index, helper.make_node("DequantizeLinear", [q, scale, zero],
                                                   [f"{base}_dq"], axis=layer.axis,
                                                   name=f"{base}_DequantizeLinear"))
        return f"{base}_dq"

    def replace_weight(self, layer: Layer, value: np.ndarray, tag: str) -> str:
        return self._const(f"{layer.weight}_{layer.name}_{tag}", value.astype(np.float32))

    def set_input(self, layer: Layer, old: str, new: str) -> None:
        node = self.graph.node[layer.index]
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new

    def finish(self) -> onnx.ModelProto:
        nodes = list(self.graph.node)
        by_index: dict[int, list] = {}
        for before, node in self.new_nodes:
            by_index.setdefault(before, []).append(node)
        ordered = []
        for index, node in enumerate(nodes):
            ordered.extend(by_index.get(index, []))
            ordered.append(node)
        del self.graph.node[:]
        self.graph.node.extend(ordered)
        return self.model


def _first_use(model: onnx.ModelProto, tensor: str, layers: list[Layer]) -> int:
    """Where a shared Q/DQ pair goes: before the first of the layers that reads `tensor`."""
    return min(layer.index for layer in layers if layer.activation == tensor)


def build_model(model: onnx.ModelProto, layers: list[Layer], plan: dict[str, str],
                activation_amax: dict[str, float], weight_bits: Optional[int] = None,
                weight_cache: Optional[dict] = None) -> onnx.ModelProto:
    """A copy of `model` with each layer in the precision `plan` gives it (int8, fp16 or fp32;
    layers not named stay fp32). `activation_amax`: the calibrated range of each int8 layer's
    input. `weight_bits`: instead of Q/DQ, fake-quantize the weights of int8 layers at that
    width and leave activations in float (the weight bit-width study). `weight_cache`: a dict
    kept between calls on the same model, so its weights are quantized once."""
    writer = QdqWriter(model, weight_cache)
    for layer in layers:
        precision = plan.get(layer.name, "fp32")
        if precision not in PRECISIONS:
            raise ValueError(f"layer {layer.name}: precision {precision!r} is not one of "
                             f"{', '.join(PRECISIONS)}")
        before = _first_use(model, layer.activation,
                            [x for x in layers if plan.get(x.name, "fp32") == precision])
        if precision == "int8" and weight_bits is not None:
            weight = numpy_helper.to_array(writer.inits[layer.weight]).astype(np.float32)
            approx, _ = fake_quantize(weight, QuantSpec(weight_bits, True, layer.axis))
            writer.set_input(layer, layer.weight,
                             writer.replace_weight(layer, approx, f"w{weight_bits}"))
        elif precision == "int8":
            if layer.activation not in activation_amax:
                raise KeyError(f"no calibrated range for {layer.activation!r}, the input of "
                               f"{layer.name}")
            dq = writer.quantize_activation(layer.activation, activation_amax[layer.activation],
                                            before)
            writer.set_input(layer, layer.activation, dq)
            writer.set_input(layer, layer.weight, writer.quantize_weight(layer))
        elif precision == "fp16":
            weight = numpy_helper.to_array(writer.inits[layer.weight])
            writer.set_input(layer, layer.activation,
                             writer.round_activation_fp16(layer.activation, before))
            half = weight.astype(np.float16).astype(np.float32)
            writer.set_input(layer, layer.weight, writer.replace_weight(layer, half, "fp16"))
    return writer.finish()


def has_qdq(model: onnx.ModelProto) -> bool:
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)
