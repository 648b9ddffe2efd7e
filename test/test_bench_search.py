"""Peak-rate search: doubling then bisection, against graphs of known capacity."""
from __future__ import annotations

import pytest

from trt_infer_ros.bench.search import find_peak_rate


def _graph(capacity_hz):
    """A graph that answers min(rate, capacity) frames per second."""
    def trial(rate):
        drop = max(0.0, 1.0 - capacity_hz / rate)
        return drop, {"rate_hz": rate, "drop_fraction": drop}
    return trial


def test_doubling_then_bisection_finds_the_capacity_within_tolerance():
    s = find_peak_rate(_graph(37.0), 5.0, 480.0, drop_limit=0.05, tolerance=0.05,
                       max_trials=12)
    rates = [r for r, _, _ in s.trials]
    assert rates[:5] == [5, 10, 20, 40, 30]            # 40 Hz drops 7.5% > 5%: bisect [20, 40]
    assert 37.0 <= s.peak_rate_hz <= 37.0 / 0.95 + 1e-9
    assert all(d <= 0.05 for r, d, _ in s.trials if r <= s.peak_rate_hz)


def test_start_rate_too_high_and_max_rate_held():
    assert find_peak_rate(_graph(2.0), 10.0, 100.0).peak_rate_hz is None
    s = find_peak_rate(_graph(1000.0), 10.0, 50.0)
    assert s.peak_rate_hz == 50.0 and s.capped


def test_trial_budget_is_kept_and_bad_arguments_refused():
    s = find_peak_rate(_graph(37.0), 1.0, 480.0, max_trials=3)
    assert len(s.trials) == 3
    with pytest.raises(ValueError):
        find_peak_rate(_graph(1.0), 0.0, 10.0)
    with pytest.raises(ValueError):
        find_peak_rate(_graph(1.0), 1.0, 10.0, drop_limit=1.0)
