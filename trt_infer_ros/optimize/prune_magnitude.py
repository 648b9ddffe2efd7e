"""Unstructured magnitude pruning and the 2:4 pattern of sparse tensor cores, as weight masks.

Masks multiply the weights in every forward pass during fine-tuning, so pruned weights stay zero
(their gradient is zero too) and the exported ONNX holds exact zeros.
- unstructured: the smallest |w| of each layer (or of all layers together) are zeroed. Dense
  kernels do not run faster on zeros; the file compresses and the weights are ready for hardware
  or formats that skip them.
- 2:4: in every group of four consecutive input-channel weights (for each output channel and
  kernel position) the two smallest are zeroed. TensorRT uses its sparse tensor cores for such
  layers (Ampere and later, Orin) when the engine is built with `sparse_weights: true`.
  TensorRT needs the input channels in multiples of 4 (grouped and depthwise convolutions never
  run sparse): other layers are left dense, each with its reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from trt_infer_ros.optimize.layers import quantizable_layers
from trt_infer_ros.optimize.trainable import with_weights

PATTERNS = ("unstructured", "2:4")


class SparsityError(ValueError):
    pass


@dataclass
class Masks:
    masks: dict[str, np.ndarray]
    skipped: dict[str, str] = field(default_factory=dict)       # layer -> why left dense

    def sparsity(self) -> float:
        total = sum(m.size for m in self.masks.values())
        return 1.0 - sum(float(m.sum()) for m in self.masks.values()) / total if total else 0.0


def _group(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


def _candidates(model: onnx.ModelProto):
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for layer in quantizable_layers(model):
        yield layer, model.graph.node[layer.index], inits[layer.weight].astype(np.float32)


def magnitude_masks(model: onnx.ModelProto, ratio: float, global_ranking: bool = False) -> Masks:
    if not 0 < ratio < 1:
        raise SparsityError(f"sparsity {ratio} must be between 0 and 1")
    layers = [(layer, w) for layer, _, w in _candidates(model) if w.size > 1]
    if not layers:
        raise SparsityError("the model has no weighted layers to sparsify")
    out = Masks({})
    if global_ranking:
        pooled = np.concatenate([np.abs(w).ravel() for _, w in layers])
        cut = np.partition(pooled, int(ratio * pooled.size))[int(ratio * pooled.size)]
        for layer, w in layers:
            out.masks[layer.weight] = (np.abs(w) >= cut).astype(np.float32)
        return out
    for layer, w in layers:
        flat = np.abs(w).ravel()
        order = np.argsort(flat, kind="stable")
        mask = np.ones(flat.size, np.float32)
        mask[order[:int(ratio * flat.size)]] = 0
        out.masks[layer.weight] = mask.reshape(w.shape)
    return out


def two_four_mask(weight: np.ndarray, in_axis: int) -> np.ndarray:
    """Keep the two largest |w| of every four consecutive weights along `in_axis`."""
    moved = np.moveaxis(np.abs(weight), in_axis, -1)
    groups = moved.reshape(*moved.shape[:-1], moved.shape[-1] // 4, 4)
    rank = np.argsort(np.argsort(-groups, axis=-1, kind="stable"), axis=-1)
    mask = (rank < 2).astype(np.float32).reshape(moved.shape)
    return np.moveaxis(mask, -1, in_axis)


def two_four_masks(model: onnx.ModelProto) -> Masks:
    out = Masks({})
    for layer, node, w in _candidates(model):
        in_axis = {"Conv": 1, "ConvTranspose": 0}.get(layer.op, 1 - layer.axis if w.ndim == 2
                                                        else None)
        if in_axis is None:
            out.skipped[layer.name] = f"weight of rank {w.ndim}"
        elif layer.op in ("Conv", "ConvTranspose") and _group(node) != 1:
            out.skipped[layer.name] = f"grouped convolution ({_group(node)} groups)"
        elif w.shape[in_axis] % 4:
            out.skipped[layer.name] = f"{w.shape[in_axis]} input channels, not a multiple of 4"
        else:
            out.masks[layer.weight] = two_four_mask(w, in_axis)
    if not out.masks:
        raise SparsityError("no layer can take the 2:4 pattern: " + "; ".join(
            f"{k}: {v}" for k, v in list(out.skipped.items())[:5]))
    return out


def is_two_four(weight: np.ndarray, in_axis: int) -> bool:
    moved = np.moveaxis(weight, in_axis, -1)
    groups = moved.reshape(*moved.shape[:-1], moved.shape[-1] // 4, 4)
    return bool(((groups != 0).sum(axis=-1) <= 2).all())


def install(trainable, masks: Masks) -> None:
    """Multiply every masked weight by its mask in the forward pass (and so in `state()`)."""
    from tinygrad import Tensor  # noqa: PLC0415
    tensors = {name: Tensor(mask) for name, mask in masks.masks.items()}
    previous = trainable.weight_hook

    def hook(name, weight):
        weight = previous(name, weight) if previous else weight
        return weight * tensors[name] if name in tensors else weight
    trainable.weight_hook = hook


def apply_masks(model: onnx.ModelProto, masks: Masks) -> onnx.ModelProto:
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return with_weights(model, {name: inits[name] * mask for name, mask in masks.masks.items()})


def make_masks(model: onnx.ModelProto, pattern: str, ratio: float = 0.5,
               global_ranking: bool = False) -> Masks:
    if pattern not in PATTERNS:
        raise SparsityError(f"pattern {pattern!r} is not one of {', '.join(PATTERNS)}")
    return two_four_masks(model) if pattern == "2:4" else magnitude_masks(model, ratio,
                                                                          global_ranking)
