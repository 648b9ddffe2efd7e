"""Affine quantization (tinygrad) against plain numpy references on random tensors."""
import math

import numpy as np
import pytest

pytest.importorskip("tinygrad", reason="the optimize tools need tinygrad (Python 3.11 or later)")

from trt_infer_ros.optimize.quantize import (QuantSpec, compute_params, dequantize,
                                             error_measures, fake_quantize, quantization_error,
                                             quantize)


def numpy_reference(x, bits, symmetric, axis):
    """Textbook affine quantization in numpy: q, x', scale, zero point."""
    if axis is None:
        lo, hi = np.array([x.min()]), np.array([x.max()])
        shape = (1,) * x.ndim
    else:
        other = tuple(i for i in range(x.ndim) if i != axis)
        lo, hi = x.min(axis=other), x.max(axis=other)
        shape = [1] * x.ndim
        shape[axis] = -1
    if symmetric:
        qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        scale = np.maximum(np.abs(lo), np.abs(hi)) / qmax
        zp = np.zeros_like(scale)
    else:
        qmin, qmax = 0, 2 ** bits - 1
        lo, hi = np.minimum(lo, 0), np.maximum(hi, 0)
        scale = (hi - lo) / (qmax - qmin)
        zp = np.clip(np.round(qmin - lo / scale), qmin, qmax)
    s, z = scale.reshape(shape), zp.reshape(shape)
    q = np.clip(np.round(x / s) + z, qmin, qmax)
    return q, (q - z) * s, scale, zp


@pytest.mark.parametrize("bits", [2, 4, 8, 16])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("axis", [None, 0])
def test_matches_numpy_reference(bits, symmetric, axis):
    rng = np.random.default_rng(bits * 10 + int(symmetric))
    x = (rng.standard_normal((6, 5, 3)) * rng.uniform(0.1, 4.0, (6, 1, 1)) + 0.3).astype(np.float32)
    spec = QuantSpec(bits, symmetric, axis)
    params = compute_params(x, spec)
    q_ref, x_ref, scale_ref, zp_ref = numpy_reference(x.astype(np.float64), bits, symmetric, axis)
    np.testing.assert_allclose(params.scale, scale_ref, rtol=1e-6)
    np.testing.assert_array_equal(params.zero_point, zp_ref)
    q = quantize(x, params)
    # a value sitting within float rounding of a .5 tie may round either way
    assert np.mean(q == q_ref) > 0.99 and np.abs(q - q_ref).max() <= 1
    approx, _ = fake_quantize(x, spec)
    close = q == q_ref
    np.testing.assert_allclose(approx[close], x_ref[close], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dequantize(q, params), approx, rtol=1e-6, atol=1e-7)
    # in-range values are within half a step of the original
    step = np.broadcast_to(params.scale.reshape((-1,) + (1,) * (x.ndim - 1)) if axis == 0
                           else params.scale, x.shape)
    assert np.all(np.abs(approx - x) <= step / 2 + 1e-6)


def test_channel_axis_other_than_zero():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 7, 3)).astype(np.float32)
    params = compute_params(x, QuantSpec(8, True, axis=1))
    _, _, scale_ref, _ = numpy_reference(x, 8, True, 1)
    assert params.scale.shape == (7,)
    np.testing.assert_allclose(params.scale, scale_ref, rtol=1e-6)


def test_error_measures_match_numpy():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(1000).astype(np.float32)
    approx, _ = fake_quantize(x, QuantSpec(4))
    m = error_measures(x, approx)
    err = x.astype(np.float64) - approx
    assert m.snr_db == pytest.approx(10 * math.log10(np.sum(x.astype(np.float64) ** 2)
                                                     / np.sum(err ** 2)), rel=1e-4)
    assert m.mse == pytest.approx(np.mean(err ** 2), rel=1e-4)
    assert m.max_abs == pytest.approx(np.abs(err).max(), rel=1e-5)
    assert m.mean_abs == pytest.approx(np.abs(err).mean(), rel=1e-4)


def test_snr_grows_about_six_db_per_bit():
    x = np.random.default_rng(3).uniform(-1, 1, 4096).astype(np.float32)
    snr = [quantization_error(x, QuantSpec(b)).snr_db for b in (4, 6, 8)]
    assert 10 < snr[1] - snr[0] < 14 and 10 < snr[2] - snr[1] < 14


def test_exact_values_and_given_range():
    x = np.array([-2.0, -1.0, 0.0, 0.5, 1.0], np.float32)    # multiples of 1/2 with amax 2
    params = compute_params(x, QuantSpec(3), value_range=2.0)  # scale 2/3: not exact
    assert params.scale[0] == pytest.approx(2 / 3)
    spec = QuantSpec(8)
    params = compute_params(x, spec, value_range=127 * 0.5)    # scale exactly 0.5
    approx, _ = fake_quantize(x, spec, params)
    np.testing.assert_array_equal(approx, x)
    assert error_measures(x, approx).snr_db == math.inf
    # values beyond the range saturate
    assert fake_quantize(np.array([100.0], np.float32), spec, params)[0][0] == pytest.approx(63.5)


def test_all_zero_channel_and_bad_bits():
    x = np.zeros((2, 3), np.float32)
    x[1] = [1, -2, 3]
    approx, params = fake_quantize(x, QuantSpec(8, axis=0))
    assert params.scale[0] == 1.0 and np.all(approx[0] == 0)
    with pytest.raises(ValueError, match="bit width"):
        QuantSpec(1)
    with pytest.raises(ValueError, match="bit width"):
        QuantSpec(17)
