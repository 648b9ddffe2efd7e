"""Calibration ranges against brute force on a small graph with known activations; the
entropy threshold against the plain loop; the cache read back by the builder's module."""
import numpy as np
import onnx
import pytest
from onnx import helper

from onnx_graphs import save_graph
from trt_infer_ros.engine import calibration_cache
from trt_infer_ros.optimize.calibrate import (FINE_BINS, cache_meta, collect, percentile_amax,
                                              write_cache)
from trt_infer_ros.optimize.entropy import entropy_amax, kl_divergences
from trt_infer_ros.optimize.frames import Frame

F32 = np.float32


def brute_force_kl(hist, levels):
    """TensorRT's entropy calibration as NVIDIA describes it, one candidate at a time."""
    hist = hist.astype(np.float64)
    out = []
    for i in range(levels, hist.size + 1):
        p = hist[:i].copy()
        p[i - 1] += hist[i:].sum()
        nonzero = p != 0
        q = np.zeros(i)
        merged = i // levels
        for j in range(levels):
            start = j * merged
            stop = i if j == levels - 1 else start + merged
            n = nonzero[start:stop].sum()
            if n:
                q[start:stop] = np.where(nonzero[start:stop], hist[start:stop].sum() / n, 0)
        p, q = p / p.sum(), q / q.sum()
        if np.any((p > 0) & (q == 0)):
            out.append(np.inf)
        else:
            m = p > 0
            out.append(float(np.sum(p[m] * np.log(p[m] / q[m]))))
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_entropy_matches_the_plain_loop(seed):
    rng = np.random.default_rng(seed)
    values = np.abs(rng.standard_t(3, 20000))
    hist, _ = np.histogram(values, 384, (0, values.max()))
    if seed == 2:
        hist[200:300] = 0                      # empty stretches and a lone far outlier
    hist[0] = hist[1]                          # entropy_amax flattens the zero spike first
    i, kl = kl_divergences(hist, 32)
    ref = brute_force_kl(hist, 32)
    finite = np.isfinite(ref)
    assert np.array_equal(np.isfinite(kl), finite)
    np.testing.assert_allclose(kl[finite], ref[finite], rtol=1e-6, atol=1e-9)
    assert entropy_amax(hist, 3.0, 32) == pytest.approx((i[np.argmin(ref)] + 0.5) * 3.0 / 384)


def small_graph(tmp_path):
    w = np.array([[1.0, -2.0, 0.5], [3.0, 1.0, -1.0]], F32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
             helper.make_node("Relu", ["y"], ["z"], name="relu")]
    return onnx.load(save_graph(tmp_path / "small.onnx", nodes, [("x", [1, 2], F32)],
                                [("z", [1, 3], F32)], {"w": w})), w


def test_ranges_against_known_activations(tmp_path):
    model, w = small_graph(tmp_path)
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((1, 2)).astype(F32) * (1 + 5 * (k == 7)) for k in range(40)]
    stats = collect(model, [Frame(f"f{k}", x, None) for k, x in enumerate(xs)],
                    log=lambda _: None)
    ys = np.concatenate([x @ w for x in xs])
    known = {"x": np.abs(np.concatenate(xs)), "y": np.abs(ys), "z": np.maximum(ys, 0)}
    assert set(stats.amax) == set(known) and stats.frames == 40
    minmax = stats.ranges("minmax")
    for name, values in known.items():
        assert minmax[name] == pytest.approx(values.max(), rel=1e-6)
        hist, _ = np.histogram(values, FINE_BINS, (0, values.max()))
        np.testing.assert_array_equal(stats.hist[name], hist)
    pct = stats.ranges("percentile", 90.0)
    for name, values in known.items():
        step = values.max() / FINE_BINS
        assert abs(pct[name] - np.sort(values, axis=None)[int(np.ceil(0.9 * values.size)) - 1]) <= step + 1e-6
    entropy = stats.ranges("entropy")
    assert all(0 < entropy[n] <= minmax[n] * (1 + 1e-6) for n in known)
    with pytest.raises(ValueError, match="not one of"):
        stats.ranges("kl")


def test_percentile_of_a_flat_histogram():
    assert percentile_amax(np.ones(100), 10.0, 50.0) == pytest.approx(5.0)
    assert percentile_amax(np.zeros(100), 10.0, 50.0) == 10.0


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy"])
def test_cache_reads_back_through_the_builder_module(tmp_path, method):
    model, _ = small_graph(tmp_path)
    onnx_path = str(tmp_path / "small.onnx")
    ranges = {"x": 2.5, "y": 7.25, "z": 1e-3}
    meta = cache_meta(onnx_path, method, "", None, 99.9)
    path = str(tmp_path / "calib.cache")
    cache = write_cache(path, ranges, method, meta)
    parsed = calibration_cache.CalibrationCache.parse(calibration_cache.read_cache(path))
    for name, amax in ranges.items():
        assert parsed.dynamic_range(name) == pytest.approx(amax, rel=1e-6)
    header = {"minmax": "MinMaxCalibration"}.get(method, "EntropyCalibration2")
    assert parsed.header == f"TRT-100300-{header}" and cache.scales == parsed.scales
    algorithm = {"entropy": "entropy2"}.get(method, method)
    assert calibration_cache.cache_matches(path, algorithm, meta)[0]
