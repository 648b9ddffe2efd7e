"""Peak sustainable input rate: the highest rate whose trial drops at most a stated fraction.

Doubling from a start rate finds a rate that fails; bisection between the last rate that held
and the first that failed narrows the peak until the bracket is within `tolerance` (relative)
or the trial budget is spent. The answer is the highest rate that held.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional


@dataclass
class PeakSearch:
    drop_limit: float
    peak_rate_hz: Optional[float] = None     # None: even the start rate dropped too much
    trials: list = field(default_factory=list)   # (rate, drop_fraction, result) in run order
    capped: bool = False                      # max_rate held: the real peak may be higher

    def as_dict(self) -> dict:
        return {"drop_limit": self.drop_limit, "peak_rate_hz": self.peak_rate_hz,
                "capped_at_max_rate": self.capped,
                "trials": [result for _, _, result in self.trials]}


def find_peak_rate(trial: Callable[[float], tuple[float, object]], start_hz: float,
                   max_hz: float, drop_limit: float = 0.05, tolerance: float = 0.1,
                   max_trials: int = 8) -> PeakSearch:
    """`trial(rate)` runs the graph at `rate` and returns (drop_fraction, result record)."""
    if not 0.0 <= drop_limit < 1.0:
        raise ValueError(f"drop limit must be in [0, 1), got {drop_limit}")
    if not 0 < start_hz <= max_hz:
        raise ValueError(f"need 0 < start rate <= max rate, got {start_hz}, {max_hz}")
    out = PeakSearch(drop_limit)

    def run(rate: float) -> bool:
        drop, result = trial(rate)
        out.trials.append((rate, drop, result))
        return drop <= drop_limit

    good, bad, rate = None, None, start_hz
    while len(out.trials) < max_trials:          # doubling
        if run(rate):
            good = rate
            if rate >= max_hz:
                out.capped = True
                break
            rate = min(rate * 2.0, max_hz)
        else:
            bad = rate
            break
    if good is None or bad is None:
        out.peak_rate_hz = good
        return out
    while len(out.trials) < max_trials and (bad - good) / good > tolerance:   # bisection
        mid = (good + bad) / 2.0
        if run(mid):
            good = mid
        else:
            bad = mid
    out.peak_rate_hz = good
    return out
