"""Power arithmetic on recorded samples, percentiles, and the machine without NVML."""
from __future__ import annotations

import numpy as np
import pytest

from trt_infer_ros.measure import nvml, power
from trt_infer_ros.measure.power import PowerSample, efficiency, energy_j, mean_power_w
from trt_infer_ros.measure.stats import relative_spread, summarize


def _samples(points, counter=None):
    return [PowerSample(t, w, fields={} if counter is None else {"energy_j": counter[i]})
            for i, (t, w) in enumerate(points)]


def test_energy_is_the_integral_of_the_power_curve():
    s = _samples([(0.0, 10.0), (1.0, 20.0), (2.0, 20.0)])
    # trapezoids: 15 J + 20 J; from 0.5 s the curve starts at 15 W: (15 + 20) / 2 * 0.5 + 20
    assert energy_j(s, 0.0, 2.0) == pytest.approx(35.0)
    assert energy_j(s, 0.5, 2.0) == pytest.approx(8.75 + 20.0)
    assert mean_power_w(s, 0.0, 2.0) == pytest.approx(17.5)
    # held flat beyond the readings
    assert mean_power_w(s, 2.0, 4.0) == pytest.approx(20.0)


def test_energy_counter_wins_where_every_sample_has_one():
    s = _samples([(0.0, 10.0), (1.0, 10.0), (2.0, 10.0)], counter=[100.0, 130.0, 150.0])
    assert energy_j(s, 0.5, 1.5) == pytest.approx(140.0 - 115.0)


def test_joules_per_frame_and_frames_per_watt():
    s = _samples([(0.0, 50.0), (10.0, 50.0)])
    e = efficiency(s, 0.0, 10.0, frames=250)
    assert e["energy_j"] == pytest.approx(500.0)
    assert e["joules_per_frame"] == pytest.approx(2.0)
    assert e["frames_per_watt"] == pytest.approx(0.5)   # 25 frames/s / 50 W
    assert efficiency([], 0.0, 1.0, 10)["joules_per_frame"] is None


def test_percentiles_match_numpy_and_ignore_missing_values():
    values = list(np.arange(1, 101, dtype=float)) + [float("nan")]
    s = summarize(values)
    assert s.count == 100
    assert (s.p50, s.p90, s.p99, s.max) == pytest.approx((50.5, 90.1, 99.01, 100.0))
    assert summarize([]).count == 0
    assert relative_spread([9.0, 10.0, 11.0]) == pytest.approx(0.2)


def test_without_nvml_the_reason_is_clear_and_no_sampler_is_made():
    why = nvml.unavailable_reason()
    if why is None:
        pytest.skip("NVML answers on this machine")
    assert why.startswith("NVML not available")
    sampler, note = power.open_power_sampler("nvml")
    assert sampler is None and "NVML not available" in note
    sampler, note = power.open_power_sampler("auto")
    if sampler is None:
        assert note.startswith("power not measured")
