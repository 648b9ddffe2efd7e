"""One interface over the power sources (tegrastats on Jetson, NVML on other NVIDIA GPUs):
timestamped samples taken in a background thread while a benchmark runs, and the energy,
joules per frame and frames per watt of any time window of that run."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

SOURCES = ("auto", "tegrastats", "nvml", "none")


@dataclass
class PowerSample:
    """One reading. `t` is time.monotonic() on this host when the reading arrived."""

    t: float
    power_w: Optional[float]          # Jetson: VDD_IN (whole module); NVML: the GPU board
    gpu_util: Optional[float] = None  # percent
    temp_c: Optional[float] = None    # Jetson: tj (else the hottest zone); NVML: the GPU die
    fields: dict = field(default_factory=dict)   # everything else the source reports

    def as_dict(self) -> dict:
        return {"t": self.t, "power_w": self.power_w, "gpu_util": self.gpu_util,
                "temp_c": self.temp_c, **self.fields}


class PowerSampler:
    """Base class: collects PowerSample objects from a thread between start() and stop().

    Subclasses implement `_run(stop_event)`, appending to `self.samples` through `_add`.
    """

    source = "none"
    description = ""

    def __init__(self) -> None:
        self.samples: list[PowerSample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "PowerSampler":
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(self._stop,),
                                         name=f"{self.source}_sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self.close()

    def close(self) -> None:
        """Release the source (subprocess, library handle)."""

    def _run(self, stop: threading.Event) -> None:
        raise NotImplementedError

    def _add(self, sample: PowerSample) -> None:
        with self._lock:
            self.samples.append(sample)

    def snapshot(self) -> list[PowerSample]:
        with self._lock:
            return list(self.samples)

    def __enter__(self) -> "PowerSampler":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- energy over a window ------------------------------------------------------------------
    def window(self, t0: float, t1: float) -> list[PowerSample]:
        return [s for s in self.snapshot() if t0 <= s.t <= t1 and s.power_w is not None]

    def mean_power_w(self, t0: float, t1: float) -> Optional[float]:
        return mean_power_w(self.snapshot(), t0, t1)

    def energy_j(self, t0: float, t1: float) -> Optional[float]:
        return energy_j(self.snapshot(), t0, t1)


def _power_series(samples: list[PowerSample]) -> tuple[np.ndarray, np.ndarray]:
    pts = [(s.t, s.power_w) for s in samples if s.power_w is not None]
    if not pts:
        return np.zeros(0), np.zeros(0)
    t, p = np.asarray(pts, dtype=np.float64).T
    return t, p


def mean_power_w(samples: list[PowerSample], t0: float, t1: float) -> Optional[float]:
    """Time-weighted mean power over [t0, t1]: the power curve (linear between readings, held
    flat beyond the first and last) integrated and divided by the window's length."""
    t, p = _power_series(samples)
    if t.size == 0 or t1 <= t0:
        return None
    inside = (t > t0) & (t < t1)
    grid = np.concatenate([[t0], t[inside], [t1]])
    curve = np.interp(grid, t, p)
    area = float(np.sum((curve[1:] + curve[:-1]) * np.diff(grid)) / 2.0)
    return area / (t1 - t0)


def energy_j(samples: list[PowerSample], t0: float, t1: float) -> Optional[float]:
    """Joules spent in [t0, t1]. From the source's cumulative energy counter where every
    sample has one (NVML on Volta and newer: exact), else the integral of the power curve."""
    counters = [(s.t, s.fields["energy_j"]) for s in samples if "energy_j" in s.fields]
    if len(counters) >= 2 and len(counters) == len(samples):
        t, e = np.asarray(counters, dtype=np.float64).T
        if t[0] <= t0 and t[-1] >= t1:
            return float(np.interp(t1, t, e) - np.interp(t0, t, e))
    mean = mean_power_w(samples, t0, t1)
    return None if mean is None else mean * (t1 - t0)


def efficiency(samples: list[PowerSample], t0: float, t1: float, frames: int) -> dict:
    """Mean power, energy, joules per frame and frames per watt (= frames per joule) of a
    window in which `frames` frames were completed."""
    mean = mean_power_w(samples, t0, t1)
    energy = energy_j(samples, t0, t1)
    n = len([s for s in samples if t0 <= s.t <= t1 and s.power_w is not None])
    out = {"mean_power_w": mean, "energy_j": energy, "power_samples": n,
           "joules_per_frame": None, "frames_per_watt": None}
    if energy and frames > 0:
        out["joules_per_frame"] = energy / frames
        out["frames_per_watt"] = frames / energy      # (frames/s) / (J/s)
    return out


def open_power_sampler(source: str = "auto", interval_s: float = 0.1,
                       log_path: Optional[str] = None) -> tuple[Optional[PowerSampler], str]:
    """The sampler for this machine and a sentence saying what was chosen or why none was.

    auto: tegrastats where it exists (Jetson), else NVML where a GPU answers, else none.
    """
    from trt_infer_ros.measure import nvml, tegrastats

    if source not in SOURCES:
        raise ValueError(f"power source must be one of {SOURCES}, got {source!r}")
    if source == "none":
        return None, "power not measured (--power none)"
    reasons = []
    if source in ("auto", "tegrastats"):
        why = tegrastats.unavailable_reason()
        if why is None:
            sampler = tegrastats.TegrastatsSampler(interval_s=interval_s, log_path=log_path)
            return sampler, sampler.description
        reasons.append(why)
    if source in ("auto", "nvml"):
        why = nvml.unavailable_reason()
        if why is None:
            sampler = nvml.NvmlSampler(interval_s=interval_s)
            return sampler, sampler.description
        reasons.append(why)
    return None, "power not measured: " + "; ".join(reasons)

