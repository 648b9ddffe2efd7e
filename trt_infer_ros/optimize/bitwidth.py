"""Accuracy against weight bit width: every layer's weights quantized per channel (symmetric)
at b bits, activations left in float, agreement measured; with the mean weight SNR per width."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from trt_infer_ros.optimize.analysis import Analysis
from trt_infer_ros.optimize.layers import weight_array
from trt_infer_ros.optimize.quantize import QuantSpec, quantization_error
from trt_infer_ros.optimize.simulate import Progress

DEFAULT_BITS = (4, 5, 6, 7, 8, 10, 12, 16)


@dataclass
class BitWidthPoint:
    bits: int
    agreement: float
    mean_weight_snr_db: float


def weight_bit_sweep(analysis: Analysis, bits: Sequence[int] = DEFAULT_BITS,
                     metric: str = "map50_95") -> list[BitWidthPoint]:
    weights = [(layer, weight_array(analysis.model, layer).astype(np.float32))
               for layer in analysis.layers]
    progress = Progress(analysis.log, "weight bit-width sweep", len(bits))
    out = []
    for b in bits:
        snr = [quantization_error(w, QuantSpec(b, True, layer.axis)).snr_db
               for layer, w in weights]
        value = analysis.measure(analysis.all_int8(), weight_bits=b).value(metric)
        out.append(BitWidthPoint(b, value, float(np.mean(np.minimum(snr, 200.0)))))
        progress.step(f"{b} bits: {metric} {value:.4f}")
    return out
