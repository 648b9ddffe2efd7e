"""Quantization-aware training: the model learns weights that survive INT8.

Each quantizable layer (layers.py) sees its weight fake-quantized per output channel
(symmetric, scale = max |w| / 127 of the current weights, as qdq.py writes them) and its input
activation fake-quantized per tensor (symmetric, scale from calibration, optionally learned).
Rounding passes the gradient straight through (x + (round(x) - x) held constant); values
clipped at the range ends get no gradient, and a learned scale gets the gradient of
scale * clip(round(x / scale)) with respect to the scale. Fine-tuned by distillation, the result
is written by qdq.build_model as the Q/DQ ONNX TensorRT's explicit quantization builds.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import onnx

from trt_infer_ros.optimize.layers import Layer, quantizable_layers
from trt_infer_ros.optimize.qdq import activation_scale, build_model
from trt_infer_ros.optimize.quantize import QuantSpec
from trt_infer_ros.optimize.trainable import TrainableModel, with_weights

INT8 = QuantSpec(8, True)


def round_ste(x):
    """round(x) forward, identity backward."""
    return x + (x.round() - x).detach()


def fake_quant(x, scale, spec: QuantSpec = INT8):
    return round_ste(x / scale).clip(spec.qmin, spec.qmax) * scale


def fake_quant_weight(weight, axis: int, spec: QuantSpec = INT8):
    """Per-channel symmetric fake quantization along `axis` (scales from the current weights)."""
    others = tuple(i for i in range(weight.ndim) if i != axis)
    amax = weight.abs().max(axis=others, keepdim=True).detach()
    scale = (amax == 0).where(1.0, amax / spec.qmax)
    return fake_quant(weight, scale, spec)


def require_float32(model: onnx.ModelProto, path: str) -> None:
    """Q/DQ nodes here quantize float32 tensors (opset 13); an fp16 graph would be invalid."""
    elem_type = model.graph.input[0].type.tensor_type.elem_type
    if elem_type != onnx.TensorProto.FLOAT:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(elem_type)
        raise ValueError(f"{path} takes {dtype} input, not float32: quantization-aware training "
                         "starts from the FP32 export of the model")


class QatModel:
    """Installs fake quantization on a TrainableModel; exports the Q/DQ ONNX."""

    def __init__(self, model: onnx.ModelProto, activation_amax: dict[str, float],
                 learn_scales: bool = False, targets=None):
        from tinygrad import Tensor  # noqa: PLC0415
        self.model = model
        self.layers: list[Layer] = quantizable_layers(model)
        self.trainable = TrainableModel(model, targets)
        missing = [l.activation for l in self.layers if l.activation not in activation_amax]
        if missing:
            raise KeyError(f"no calibrated range for {missing[0]!r}")
        self.weight_axis = {l.weight: l.axis for l in self.layers}
        # scales are trained as logarithms: Adam's step is then relative to the scale
        self.log_scales = {l.activation: Tensor([float(np.log(activation_scale(
            activation_amax[l.activation])))]) for l in self.layers}
        self.learn_scales = learn_scales
        if learn_scales:
            self.trainable.params.update({f"{name}::log_scale": s
                                          for name, s in self.log_scales.items()})
        self.trainable.weight_hook = self._weight
        self.trainable.input_hook = self._input

    def _weight(self, name, tensor):
        if name in self.weight_axis:
            return fake_quant_weight(tensor, self.weight_axis[name])
        return tensor

    def _input(self, node, name, tensor):
        log_scale = self.log_scales.get(name)
        if log_scale is None:
            return tensor
        return fake_quant(tensor, log_scale.exp())

    def amax(self) -> dict[str, float]:
        return {name: float(np.exp(s.numpy()[0])) * 127.0 for name, s in self.log_scales.items()}

    def weights(self) -> dict[str, np.ndarray]:
        """The float weights (qdq.build_model quantizes them with the same per-channel math)."""
        return {k: v for k, v in self.trainable.raw_state().items() if "::" not in k}

    def export(self) -> onnx.ModelProto:
        plan = {layer.name: "int8" for layer in self.layers}
        return without_unused(build_model(with_weights(self.model, self.weights()), self.layers,
                                          plan, self.amax()))


def without_unused(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop initializers no node reads (the float weights the int8 copies replaced)."""
    used = {i for n in model.graph.node for i in n.input}
    kept = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    return model


def ptq_model(model: onnx.ModelProto, activation_amax: dict[str, float],
              layers: Optional[list[Layer]] = None) -> onnx.ModelProto:
    """The simulated post-training INT8 model (every quantizable layer in INT8)."""
    layers = layers or quantizable_layers(model)
    return without_unused(build_model(model, layers, {layer.name: "int8" for layer in layers},
                                      activation_amax))
