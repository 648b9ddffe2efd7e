"""The entropy (KL-divergence) threshold of TensorRT's entropy calibrator.

As NVIDIA describes it ("8-bit Inference with TensorRT", GTC 2017): build a 2048-bin histogram
of |x|; for every candidate i of 128..2048 bins, the reference P is bins [0, i) with everything
beyond clipped into bin i-1, and the candidate Q is bins [0, i) merged into 128 levels and
expanded back, each level's count spread evenly over the bins that were non-zero in P. The
threshold minimises KL(P || Q): amax = (i + 0.5) * bin width. The zero bin is given its
neighbour's count first, as NVIDIA's histogram calibrator (pytorch-quantization) does.

All candidates are evaluated at once from cumulative sums (a loop over i would cost seconds per
tensor); `test_optimize_calibrate` checks this against the plain loop.
"""
from __future__ import annotations

import numpy as np

BINS = 2048
LEVELS = 128


def _xlogx(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0)), 0.0)


def kl_divergences(hist: np.ndarray, levels: int = LEVELS) -> tuple[np.ndarray, np.ndarray]:
    """(candidate bin counts i, KL(P_i || Q_i)) for i = levels..len(hist)."""
    hist = np.asarray(hist, np.float64)
    nbins = hist.size
    total = hist.sum()
    cum = np.concatenate([[0.0], np.cumsum(hist)])
    nonzero = np.concatenate([[0], np.cumsum(hist > 0)])
    cum_xlogx = np.concatenate([[0.0], np.cumsum(_xlogx(hist))])
    i = np.arange(levels, nbins + 1)
    outliers = total - cum[i]
    merged = i // levels                                   # bins per level (last takes the rest)
    j = np.arange(levels)
    start = j[None, :] * merged[:, None]
    stop = np.where(j[None, :] == levels - 1, i[:, None], start + merged[:, None])
    sums = cum[stop] - cum[start]                          # Q's counts, from bins [0, i) only
    count = nonzero[stop] - nonzero[start]
    last = hist[i - 1]
    # bin i-1 carries the outliers in P: non-zero there whenever outliers exist
    count[:, -1] += ((last == 0) & (outliers > 0)).astype(count.dtype)
    p_last = last + outliers
    sum_p_log_p = cum_xlogx[i - 1] + _xlogx(p_last)
    safe = np.where(count > 0, count, 1)
    log_q = np.log(np.where(sums > 0, sums, 1.0) / safe)
    weight = sums.copy()
    weight[:, -1] += outliers                              # P's mass in the last level
    sum_p_log_q = np.sum(np.where(weight > 0, weight * log_q, 0.0), axis=1)
    with np.errstate(divide="ignore"):     # no mass below i: log 0, a candidate never chosen
        kl = (sum_p_log_p - sum_p_log_q) / total - np.log(total) + np.log(cum[i])
    impossible = np.any((weight > 0) & (sums == 0), axis=1)   # P > 0 where Q = 0
    return i, np.where(impossible, np.inf, kl)


def entropy_amax(hist: np.ndarray, hist_max: float, levels: int = LEVELS) -> float:
    """The calibrated |x| range of a tensor whose |x| histogram spans [0, hist_max]."""
    hist = np.asarray(hist, np.float64)
    if hist.sum() == 0 or hist_max <= 0:
        return float(hist_max)
    # The first bin holds every exact zero (half of a ReLU output): as counted it dominates both
    # distributions and drives the threshold down to the first candidate; it is given its
    # neighbour's count, as NVIDIA's histogram calibrator does.
    hist = hist.copy()
    hist[0] = hist[1]
    i, kl = kl_divergences(hist, levels)
    best = int(i[int(np.argmin(kl))])
    width = hist_max / hist.size
    return float(min((best + 0.5) * width, hist_max))
