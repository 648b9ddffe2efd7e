"""PNG plots of benchmark results (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PHASE_COLOURS = ("#dbe9f6", "#fde2c8", "#d9f0d3", "#eadcf2", "#f6d8d8", "#f3f0c9")


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def latency_distribution(series: Sequence[tuple], path, title: str) -> Path:
    """`series`: (label, latencies in ms). Histogram and CDF with p50/p99 marked."""
    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, values in series:
        v = np.sort(np.asarray(values, dtype=float))
        if v.size == 0:
            continue
        p50, p99 = np.percentile(v, [50, 99])
        hist.hist(v, bins=min(40, max(5, v.size // 3)), alpha=0.5, label=label)
        line, = cdf.plot(v, np.arange(1, v.size + 1) / v.size, label=label)
        cdf.plot([p50, p99], [0.5, 0.99], "o", color=line.get_color())
    hist.set_xlabel("latency (ms)")
    hist.set_ylabel("frames")
    cdf.set_xlabel("latency (ms)")
    cdf.set_ylabel("fraction of frames at or below")
    cdf.axhline(0.99, color="grey", lw=0.6, ls=":")
    cdf.set_ylim(0, 1.01)
    for ax in (hist, cdf):
        ax.grid(alpha=0.3)
    cdf.legend(fontsize=8, loc="lower right")
    fig.suptitle(title + "  (dots: p50, p99)")
    return _save(fig, path)


def rate_sweep(trials: Sequence[dict], path, title: str, drop_limit: float,
               peak: Optional[float]) -> Path:
    """Input rate against output rate, drop fraction and p99 latency, one point per trial."""
    trials = sorted(trials, key=lambda t: t["rate_hz"])
    rate = [t["rate_hz"] for t in trials]
    fig, (out, lat) = plt.subplots(1, 2, figsize=(11, 4.2))
    out.plot(rate, [t["output_rate_hz"] for t in trials], "o-", label="output rate")
    out.plot(rate, rate, ":", color="grey", label="input rate")
    out.set_xlabel("input rate (frames/s)")
    out.set_ylabel("output rate (frames/s)")
    drop_ax = out.twinx()
    drop_ax.plot(rate, [t["drop_fraction"] for t in trials], "s--", color="tab:red",
                 label="drop fraction")
    drop_ax.axhline(drop_limit, color="tab:red", lw=0.6, ls=":")
    drop_ax.set_ylabel("drop fraction", color="tab:red")
    drop_ax.set_ylim(-0.02, 1.02)
    if peak:
        out.axvline(peak, color="tab:green", lw=1.0, label=f"peak {peak:.1f}/s")
    out.legend(fontsize=8, loc="upper left")
    for key, style in (("p50", "o-"), ("p99", "s-"), ("max", "^:")):
        lat.plot(rate, [t["latency_ms"][key] for t in trials], style, label=key)
    lat.set_xlabel("input rate (frames/s)")
    lat.set_ylabel("latency (ms)")
    lat.legend(fontsize=8)
    for ax in (out, lat):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return _save(fig, path)


def timeline(samples: Sequence[dict], phases: Sequence[dict], path, title: str,
             host_cpu: Sequence[dict] = (), note: str = "") -> Path:
    """Power, GPU load, temperature and host CPU over time, the benchmark's phases shaded.
    Times are seconds from the run's start (`t` in each sample and phase already relative)."""
    panels = [("power_w", "power (W)"), ("gpu_util", "GPU load (%)"),
              ("temp_c", "temperature (C)")]
    have = [(k, lab) for k, lab in panels if any(s.get(k) is not None for s in samples)]
    rows = len(have) + 1
    fig, axes = plt.subplots(rows, 1, figsize=(11, 2.0 + 1.7 * rows), sharex=True)
    axes = np.atleast_1d(axes)
    for ax, (key, label) in zip(axes, have):
        pts = [(s["t"], s[key]) for s in samples if s.get(key) is not None]
        t, v = zip(*pts)
        ax.plot(t, v, lw=1.2)
        ax.set_ylabel(label)
    cpu_ax = axes[-1]
    if host_cpu:
        cpu_ax.plot([s["t"] for s in host_cpu], [s["cpu_percent"] for s in host_cpu], lw=1.2,
                    color="tab:purple")
    cpu_ax.set_ylabel("host CPU (%)")
    cpu_ax.set_xlabel("time (s)")
    for ax in axes:
        for i, ph in enumerate(phases):
            ax.axvspan(ph["t0"], ph["t1"], color=PHASE_COLOURS[i % len(PHASE_COLOURS)],
                       alpha=0.7, lw=0)
        ax.grid(alpha=0.3)
    top = axes[0]
    for ph in phases:
        top.text((ph["t0"] + ph["t1"]) / 2, 1.0, ph["name"], transform=top.get_xaxis_transform(),
                 ha="center", va="bottom", fontsize=7, rotation=30)
    if note:
        axes[0].text(0.01, 0.95, note, transform=axes[0].transAxes, fontsize=8, va="top")
    fig.suptitle(title, y=0.995)
    return _save(fig, path)


def tradeoff(rows: Sequence[dict], path, title: str) -> Path:
    """One point per variant: latency p50 (x) against agreement with FP32 (y); the marker's
    area grows with frames per watt where power was measured."""
    fig, (speed, energy) = plt.subplots(1, 2, figsize=(11, 4.4))
    fpw = [r.get("frames_per_watt") for r in rows]
    scale = max([f for f in fpw if f] or [1.0])
    for r, f in zip(rows, fpw):
        size = 60 + 400 * (f / scale if f else 0.0)
        y = r.get("agreement_f1")
        y = 1.0 if y is None else y
        speed.scatter(r["latency_ms"]["p50"], y, s=size, alpha=0.7, label=r["label"])
        speed.annotate(r["label"], (r["latency_ms"]["p50"], y), fontsize=7,
                       xytext=(4, 4), textcoords="offset points")
    speed.set_xlabel("latency p50 (ms)")
    speed.set_ylabel("agreement with FP32 (F1 at IoU 0.5)")
    speed.set_ylim(-0.05, 1.1)
    labels = [r["label"] for r in rows]
    x = np.arange(len(rows))
    energy.bar(x - 0.2, [r.get("throughput_fps") or 0 for r in rows], 0.4, label="frames/s")
    energy.set_ylabel("frames/s")
    energy.set_xticks(x, labels, rotation=20, fontsize=7, ha="right")
    if any(fpw):
        ax2 = energy.twinx()
        ax2.bar(x + 0.2, [f or 0 for f in fpw], 0.4, color="tab:green", label="frames/J")
        ax2.set_ylabel("frames per watt (frames/J)", color="tab:green")
    else:
        energy.text(0.5, 0.9, "power not measured here", transform=energy.transAxes,
                    ha="center", fontsize=8)
    for ax in (speed, energy):
        ax.grid(alpha=0.3)
    fig.suptitle(title + "  (marker area: frames per watt)")
    return _save(fig, path)


def graph_vs_eager(result: dict, path, title: str) -> Path:
    """Host launch time and frame latency, graph against eager, p50 with p99 whiskers."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "host_launch_ms", "host time to launch a frame (ms)"),
                           (axes[1], "frame_latency_ms",
                            "frame latency, image in -> detections (ms)")):
        modes = ("graph", "eager")
        p50 = [result[m][key]["p50"] for m in modes]
        p99 = [result[m][key]["p99"] for m in modes]
        ax.bar(modes, p50, color=("tab:green", "tab:orange"),
               yerr=[[0, 0], [b - a for a, b in zip(p50, p99)]], capsize=6)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title)
    return _save(fig, path)
