"""Affine quantization from first principles, computed with tinygrad.

A real value x maps to an integer q = clip(round(x / scale) + zero_point, qmin, qmax) and back to
x' = (q - zero_point) * scale. Two schemes, at any bit width b from 2 to 16:

- symmetric: zero_point = 0, q in [-2^(b-1), 2^(b-1) - 1], scale = amax / (2^(b-1) - 1). What
  TensorRT uses for INT8 weights and activations (a Q/DQ pair with zero point 0).
- asymmetric: q in [0, 2^b - 1], scale = (max - min) / (2^b - 1) over a range that includes 0,
  zero_point = round(-min / scale): the whole integer range covers [min, max].

Granularity: per tensor (one scale) or per channel (one scale per index of `axis`, e.g. a
convolution's output channels). Rounding is half to even, as ONNX QuantizeLinear rounds.

Arrays go in and come out as numpy; the arithmetic runs on tinygrad tensors. Inputs are padded
with zeros to power-of-two shapes so that a handful of compiled kernels serve every layer (a zero
quantizes to zero exactly and adds nothing to the error sums).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

MIN_BITS, MAX_BITS = 2, 16


@dataclass(frozen=True)
class QuantSpec:
    """How to quantize: bit width, scheme, and the channel axis (None: per tensor)."""

    bits: int = 8
    symmetric: bool = True
    axis: Optional[int] = None

    def __post_init__(self):
        if not MIN_BITS <= int(self.bits) <= MAX_BITS:
            raise ValueError(f"bit width {self.bits} is outside {MIN_BITS}..{MAX_BITS}")

    @property
    def qmin(self) -> int:
        return -(2 ** (self.bits - 1)) if self.symmetric else 0

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.symmetric else 2 ** self.bits - 1


@dataclass
class QuantParams:
    """Scale and zero point (arrays of one element per channel, or of one element)."""

    spec: QuantSpec
    scale: np.ndarray
    zero_point: np.ndarray


@dataclass
class ErrorMeasures:
    """How far a quantized tensor is from the original."""

    snr_db: float            # 10 log10(sum x^2 / sum (x - x')^2); inf when exact
    mse: float
    max_abs: float
    mean_abs: float

    def as_dict(self) -> dict:
        return {"snr_db": self.snr_db, "mse": self.mse, "max_abs": self.max_abs,
                "mean_abs": self.mean_abs}


def _bucket(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


def _as_rows(x: np.ndarray, axis: Optional[int]) -> tuple[np.ndarray, tuple[int, int]]:
    """x as a (channels, values) matrix padded with zeros to power-of-two sizes; the true size."""
    x = np.asarray(x, np.float32)
    rows = x.reshape(1, -1) if axis is None else np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)
    padded = np.zeros((_bucket(rows.shape[0]), _bucket(rows.shape[1])), np.float32)
    padded[:rows.shape[0], :rows.shape[1]] = rows
    return padded, rows.shape


def _from_rows(rows: np.ndarray, true: tuple[int, int], like: np.ndarray,
               axis: Optional[int]) -> np.ndarray:
    rows = rows[:true[0], :true[1]]
    if axis is None:
        return rows.reshape(like.shape)
    moved = np.moveaxis(like, axis, 0).shape
    return np.moveaxis(rows.reshape(moved), 0, axis)


def _tensor(value):
    from tinygrad import Tensor  # noqa: PLC0415 - imported where the math runs
    return Tensor(np.ascontiguousarray(value, np.float32))


def _scale_zero_point(lo, hi, spec: QuantSpec):
    """tinygrad (scale, zero_point) columns from per-row ranges [lo, hi] (tinygrad tensors)."""
    qmin, qmax = _tensor([[spec.qmin]]), _tensor([[spec.qmax]])
    if spec.symmetric:
        amax = lo.abs().maximum(hi.abs())
        scale = amax / qmax
        zero_point = scale * 0
    else:
        lo, hi = lo.minimum(0), hi.maximum(0)          # the range must hold 0 exactly
        scale = (hi - lo) / (qmax - qmin)
        zero_point = (qmin - lo / (scale == 0).where(1, scale)).round().clip(qmin, qmax)
        zero_point = (scale == 0).where(0, zero_point)
    scale = (scale == 0).where(1, scale)               # an all-zero channel: any scale is exact
    return scale, zero_point


def compute_params(x: np.ndarray, spec: QuantSpec, value_range=None) -> QuantParams:
    """Scale and zero point for `x` from its own min/max, or from `value_range`: (lo, hi) arrays
    or scalars (an activation's calibrated range); for symmetric a single amax is enough."""
    if value_range is None:
        rows, true = _as_rows(x, spec.axis)
        t = _tensor(rows)
        # padding zeros only widen a range to include 0, which every range includes anyway
        lo, hi = t.min(axis=1, keepdim=True), t.max(axis=1, keepdim=True)
        channels = true[0]
    else:
        if np.isscalar(value_range) or np.ndim(value_range) == 0:
            value_range = (-abs(float(value_range)), abs(float(value_range)))
        lo_np = np.atleast_1d(np.asarray(value_range[0], np.float32)).reshape(-1, 1)
        hi_np = np.atleast_1d(np.asarray(value_range[1], np.float32)).reshape(-1, 1)
        lo, hi, channels = _tensor(lo_np), _tensor(hi_np), lo_np.shape[0]
    scale, zero_point = _scale_zero_point(lo, hi, spec)
    return QuantParams(spec, scale.numpy().reshape(-1)[:channels],
                       zero_point.numpy().reshape(-1)[:channels])


def _columns(params: QuantParams, rows: int) -> tuple:
    scale = np.ones((rows, 1), np.float32)
    zero = np.zeros((rows, 1), np.float32)
    n = params.scale.size
    scale[:n, 0], zero[:n, 0] = params.scale, params.zero_point
    if params.spec.axis is None:
        scale[:], zero[:] = params.scale.reshape(-1)[0], params.zero_point.reshape(-1)[0]
    return _tensor(scale), _tensor(zero)


def _quantize_rows(t, params: QuantParams, rows: int):
    scale, zero = _columns(params, rows)
    qmin, qmax = _tensor([[params.spec.qmin]]), _tensor([[params.spec.qmax]])
    return (t / scale).round().add(zero).clip(qmin, qmax), scale, zero


def quantize(x: np.ndarray, params: QuantParams) -> np.ndarray:
    """The integers q (as int32) that represent `x`."""
    rows, true = _as_rows(x, params.spec.axis)
    q, _, _ = _quantize_rows(_tensor(rows), params, rows.shape[0])
    return _from_rows(q.numpy(), true, np.asarray(x), params.spec.axis).astype(np.int32)


def dequantize(q: np.ndarray, params: QuantParams) -> np.ndarray:
    rows, true = _as_rows(np.asarray(q, np.float32), params.spec.axis)
    scale, zero = _columns(params, rows.shape[0])
    out = (_tensor(rows) - zero) * scale
    return _from_rows(out.numpy(), true, np.asarray(q), params.spec.axis)


def fake_quantize(x: np.ndarray, spec: QuantSpec,
                  params: Optional[QuantParams] = None) -> tuple[np.ndarray, QuantParams]:
    """x quantized and dequantized in one pass (x' above), and the parameters used."""
    params = params or compute_params(x, spec)
    rows, true = _as_rows(x, spec.axis)
    q, scale, zero = _quantize_rows(_tensor(rows), params, rows.shape[0])
    out = ((q - zero) * scale).numpy()
    return _from_rows(out, true, np.asarray(x), spec.axis), params


def error_measures(x: np.ndarray, approx: np.ndarray) -> ErrorMeasures:
    """SNR in dB, mean squared error, largest and mean absolute error of `approx` against x."""
    x = np.asarray(x, np.float32)
    rows, true = _as_rows(x, None)
    approx_rows, _ = _as_rows(np.asarray(approx, np.float32).reshape(x.shape), None)
    t, a = _tensor(rows), _tensor(approx_rows)
    err = t - a
    signal = float((t * t).sum().numpy())
    noise = float((err * err).sum().numpy())
    n = max(true[1], 1)
    return ErrorMeasures(
        snr_db=math.inf if noise == 0 else (10 * math.log10(signal / noise) if signal > 0
                                            else -math.inf),
        mse=noise / n, max_abs=float(err.abs().max().numpy()),
        mean_abs=float(err.abs().sum().numpy()) / n)


def quantization_error(x: np.ndarray, spec: QuantSpec,
                       params: Optional[QuantParams] = None) -> ErrorMeasures:
    """The error measures of fake-quantizing `x` with `spec` (or with given parameters)."""
    approx, _ = fake_quantize(x, spec, params)
    return error_measures(x, approx)


def ideal_snr_db(bits: int) -> float:
    """The textbook SQNR of a full-scale uniform signal: 6.02 b + 1.76 dB (a sanity line for
    plots; real tensors with outliers land well below it)."""
    return 6.02 * bits + 1.76
