"""Per-channel mean and standard deviation of every convolution's input over the user's frames.

Channel pruning needs two facts about each channel as its consumers see it: its mean (what a
removed channel still contributed on average, folded into the consumers' biases) and its spread
(how much the consumers' outputs move with it, which is what removing it loses). With
`covariance`, the channels' covariance too, from which pruning predicts a removed channel from
the kept ones. All are measured on the frames with onnxruntime, over the batch and spatial axes
of NCHW tensors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import onnx

from trt_infer_ros.optimize.calibrate import observing
from trt_infer_ros.optimize.simulate import input_feed, session_for


@dataclass
class ChannelStats:
    mean: dict = field(default_factory=dict)           # tensor -> [C] float64
    std: dict = field(default_factory=dict)            # tensor -> [C] float64
    cov: dict = field(default_factory=dict)            # tensor -> [C, C] float64 (optional)
    frames: int = 0


def conv_inputs(model: onnx.ModelProto) -> list[str]:
    """The activation input of every Conv / ConvTranspose (the tensors pruning slices)."""
    inits = {i.name for i in model.graph.initializer}
    names = []
    for node in model.graph.node:
        if node.op_type in ("Conv", "ConvTranspose") and node.input[0] not in inits and \
                node.input[0] not in names:
            names.append(node.input[0])
    return names


def measure_channels(model: onnx.ModelProto, tensors: Sequence[np.ndarray],
                     names: Sequence[str] = (), covariance: bool = False) -> ChannelStats:
    """Mean and std per channel (axis 1) of `names` (default: every conv input) over `tensors`
    (the model's batch-1 inputs), and with `covariance` their channel covariance."""
    names = list(names) or conv_inputs(model)
    graph_input = model.graph.input[0].name
    observed = [n for n in names if n != graph_input]
    session = session_for(observing(model, observed), ["CPUExecutionProvider"])
    sums: dict = {}
    squares: dict = {}
    counts: dict = {}
    products: dict = {}
    for tensor in tensors:
        values = dict(zip(observed, session.run(observed, input_feed(session, tensor))))
        values[graph_input] = tensor
        for name in names:
            x = np.asarray(values[name], np.float64)
            if x.ndim < 2:
                continue
            axes = tuple(i for i in range(x.ndim) if i != 1)
            sums[name] = sums.get(name, 0) + x.sum(axis=axes)
            squares[name] = squares.get(name, 0) + (x * x).sum(axis=axes)
            counts[name] = counts.get(name, 0) + x.size // x.shape[1]
            if covariance:
                rows = np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])
                products[name] = products.get(name, 0) + rows.T @ rows
    stats = ChannelStats(frames=len(tensors))
    for name, total in sums.items():
        mean = total / counts[name]
        stats.mean[name] = mean
        stats.std[name] = np.sqrt(np.maximum(squares[name] / counts[name] - mean * mean, 0))
        if name in products:
            stats.cov[name] = products[name] / counts[name] - np.outer(mean, mean)
    return stats
