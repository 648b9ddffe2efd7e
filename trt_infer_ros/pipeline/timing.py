"""Per-stage timings of the last frame, and timing of the bare runtime for benchmarks."""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

STAGES = ("preprocess", "inference", "decode", "nms", "postprocess")


@dataclass
class FrameTimings:
    """Milliseconds each stage took on one frame."""

    preprocess: float = 0.0
    inference: float = 0.0
    decode: float = 0.0        # decode + class filter
    nms: float = 0.0
    postprocess: float = 0.0   # mapping boxes back to source pixels
    total: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def __str__(self) -> str:
        return " ".join(f"{k} {v:.2f}" for k, v in self.as_dict().items()) + " ms"


class StageClock:
    """Marks stage boundaries with perf_counter: `lap("decode")` ends the decode stage."""

    def __init__(self) -> None:
        self.start = self._last = time.perf_counter()
        self.timings = FrameTimings()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        setattr(self.timings, stage, (now - self._last) * 1000.0)
        self._last = now

    def finish(self) -> FrameTimings:
        self.timings.total = (self._last - self.start) * 1000.0
        return self.timings


@dataclass
class RuntimeTiming:
    """Bare runtime (runner.run only) over a number of calls, in milliseconds."""

    samples_ms: list[float]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.samples_ms)

    @property
    def min_ms(self) -> float:
        return min(self.samples_ms)

    @property
    def p90_ms(self) -> float:
        return float(np.percentile(self.samples_ms, 90))

    def __str__(self) -> str:
        return (f"median {self.median_ms:.2f} ms, mean {self.mean_ms:.2f}, min {self.min_ms:.2f}, "
                f"p90 {self.p90_ms:.2f} over {len(self.samples_ms)} runs")


def time_runtime(runner, tensors: Sequence[np.ndarray], iterations: int = 50,
                 warmup: int = 3) -> RuntimeTiming:
    """Time runner.run alone on already preprocessed tensors, cycling through them.

    The first `warmup` calls (allocation, JIT compile, engine setup) are not counted.
    """
    if not tensors:
        raise ValueError("time_runtime needs at least one input tensor")
    for i in range(warmup):
        runner.run(tensors[i % len(tensors)])
    samples = []
    for i in range(iterations):
        start = time.perf_counter()
        runner.run(tensors[i % len(tensors)])
        samples.append((time.perf_counter() - start) * 1000.0)
    return RuntimeTiming(samples)
