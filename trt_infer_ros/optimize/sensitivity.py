"""Per-layer sensitivity to INT8.

For every quantizable layer:
- `alone_int8`: agreement with FP32 when only this layer is INT8 (the rest FP32); the drop
  1 - alone_int8 is the damage this layer does by itself, the number the search ranks by;
- `kept_fp16`: agreement when every other layer is INT8 and this one FP16; the gain over full
  INT8 says how much keeping it helps among the others' errors (the tie-breaker);
- the SNR of its weights (per-channel INT8) and of its input activation (per-tensor INT8 at the
  calibrated range, from the activation histogram).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from trt_infer_ros.optimize.analysis import Analysis
from trt_infer_ros.optimize.layers import weight_array
from trt_infer_ros.optimize.quantize import (QuantSpec, compute_params, fake_quantize,
                                             quantization_error)
from trt_infer_ros.optimize.simulate import Progress


@dataclass
class LayerSensitivity:
    name: str
    op: str
    weight_snr_db: float
    activation_snr_db: float
    alone_int8: Optional[float] = None
    kept_fp16: Optional[float] = None
    full_int8: Optional[float] = None

    @property
    def drop(self) -> float:
        return 0.0 if self.alone_int8 is None else 1.0 - self.alone_int8

    @property
    def gain(self) -> float:
        if self.kept_fp16 is None or self.full_int8 is None:
            return 0.0
        return self.kept_fp16 - self.full_int8

    def as_dict(self) -> dict:
        out = asdict(self)
        out.update(drop=self.drop, gain=self.gain)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in out.items()}


def activation_snr_db(hist: np.ndarray, hist_max: float, amax: float) -> float:
    """SNR of per-tensor symmetric INT8 at range `amax`, over the |x| histogram (bin centres
    fake-quantized; |x| suffices, symmetric quantization being odd)."""
    if hist_max <= 0 or hist.sum() == 0:
        return math.inf
    centres = (np.arange(hist.size, dtype=np.float32) + 0.5) * (hist_max / hist.size)
    spec = QuantSpec(8, True)
    approx, _ = fake_quantize(centres, spec, compute_params(centres, spec, value_range=amax))
    signal = float(np.sum(hist * centres.astype(np.float64) ** 2))
    noise = float(np.sum(hist * (centres - approx).astype(np.float64) ** 2))
    return math.inf if noise == 0 else 10 * math.log10(signal / noise)


def layer_snr(analysis: Analysis) -> list[LayerSensitivity]:
    """Weight and activation SNR of every layer (no model runs beyond calibration)."""
    amax = analysis.amax()
    stats = analysis.stats
    out = []
    for layer in analysis.layers:
        weight = weight_array(analysis.model, layer).astype(np.float32)
        w_snr = quantization_error(weight, QuantSpec(8, True, layer.axis)).snr_db
        name = layer.activation
        a_snr = (activation_snr_db(stats.hist[name], stats.amax[name], amax[name])
                 if name in stats.hist else math.nan)
        out.append(LayerSensitivity(layer.name, layer.op, w_snr, a_snr))
    return out


def measure_sensitivity(analysis: Analysis, metric: str = "map50_95",
                        kept_fp16: bool = True) -> tuple[list[LayerSensitivity], float]:
    """Every layer's SNRs and agreements; returns them and the full-INT8 agreement."""
    rows = layer_snr(analysis)
    full = analysis.measure(analysis.all_int8()).value(metric)
    analysis.log(f"full INT8 ({analysis.method}): {metric} {full:.4f}")
    runs = len(rows) * (2 if kept_fp16 else 1)
    progress = Progress(analysis.log, "sensitivity", runs)
    for row in rows:
        row.full_int8 = full
        row.alone_int8 = analysis.measure(analysis.plan([row.name])).value(metric)
        progress.step()
        if kept_fp16:
            row.kept_fp16 = analysis.measure(analysis.all_int8([row.name])).value(metric)
            progress.step()
    return rows, full


def ranked(rows: list[LayerSensitivity]) -> list[LayerSensitivity]:
    """Most sensitive first: the largest drop alone, then the largest gain when kept."""
    return sorted(rows, key=lambda r: (-round(r.drop, 6), -round(r.gain, 6), r.name))
