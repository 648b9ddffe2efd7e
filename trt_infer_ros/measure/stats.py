"""Latency statistics: the percentiles an engineer quotes (p50/p90/p99/max), in milliseconds."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Optional

import numpy as np


@dataclass(frozen=True)
class LatencySummary:
    """Percentiles of one set of samples (ms). `count` 0 means there were none (all NaN)."""

    count: int
    mean: float
    std: float
    min: float
    p50: float
    p90: float
    p99: float
    max: float

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        if self.count == 0:
            return "no samples"
        return (f"p50 {self.p50:.2f} p90 {self.p90:.2f} p99 {self.p99:.2f} max {self.max:.2f} ms "
                f"(mean {self.mean:.2f} +- {self.std:.2f}, n={self.count})")


def summarize(samples_ms: Iterable[float]) -> LatencySummary:
    """Percentiles by linear interpolation between closest ranks (numpy's default, as trtexec
    reports them); with fewer than 100 samples p99 lies between the two largest."""
    values = np.asarray([float(v) for v in samples_ms], dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        nan = float("nan")
        return LatencySummary(0, nan, nan, nan, nan, nan, nan, nan)
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return LatencySummary(int(values.size), float(values.mean()), float(values.std()),
                          float(values.min()), float(p50), float(p90), float(p99),
                          float(values.max()))


def relative_spread(values: Iterable[float]) -> Optional[float]:
    """(max - min) / median of repeated measurements of one quantity; None with fewer than 2."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size < 2 or np.median(v) == 0:
        return None
    return float((v.max() - v.min()) / np.median(v))
