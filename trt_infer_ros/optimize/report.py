"""The analysis written to a directory: a per-layer table (Markdown and CSV), PNG plots
(sensitivity bars, agreement against the number of FP16 layers, agreement against weight bit
width) and summary.json. Everything goes to a temporary directory that replaces the target
only when complete, so a failed run leaves no half-written report."""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from typing import Optional, Sequence

from trt_infer_ros.optimize.bitwidth import BitWidthPoint
from trt_infer_ros.optimize.search import SearchResult
from trt_infer_ros.optimize.sensitivity import LayerSensitivity, ranked


@contextmanager
def staged_directory(target: str):
    """Yields a temporary directory beside `target`; on success it becomes `target`."""
    parent = os.path.dirname(os.path.abspath(target)) or "."
    os.makedirs(parent, exist_ok=True)
    stage = tempfile.mkdtemp(prefix=".int8-", dir=parent)
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    old = None
    if os.path.exists(target):
        old = tempfile.mkdtemp(prefix=".int8-old-", dir=parent)
        os.replace(target, os.path.join(old, "previous"))
    os.replace(stage, target)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def _num(value: Optional[float], digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def layer_rows(rows: Sequence[LayerSensitivity], result: Optional[SearchResult]) -> list[dict]:
    chosen = result.plan if result else {}
    return [{"layer": r.name, "op": r.op, "weight_snr_db": _num(r.weight_snr_db, 1),
             "activation_snr_db": _num(r.activation_snr_db, 1),
             "alone_int8": _num(r.alone_int8), "kept_fp16": _num(r.kept_fp16),
             "drop": _num(r.drop), "precision": chosen.get(r.name, "int8")}
            for r in ranked(rows)]


def markdown_table(table: list[dict]) -> str:
    if not table:
        return ""
    keys = list(table[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row[k]) for k in keys) + " |" for row in table]
    return "\n".join(lines) + "\n"


def write_table(directory: str, table: list[dict]) -> None:
    with open(os.path.join(directory, "layers.md"), "w", encoding="utf-8") as f:
        f.write(markdown_table(table))
    with open(os.path.join(directory, "layers.csv"), "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]) if table else ["layer"])
        writer.writeheader()
        writer.writerows(table)


def _pyplot():
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    return plt


def plot_sensitivity(path: str, rows: Sequence[LayerSensitivity], metric: str,
                     top: int = 30) -> None:
    plt = _pyplot()
    shown = ranked(rows)[:top]
    fig, ax = plt.subplots(figsize=(10, 0.3 * len(shown) + 1.5))
    names = [r.name if len(r.name) < 48 else "..." + r.name[-45:] for r in shown]
    ax.barh(range(len(shown)), [r.drop for r in shown], color="tab:red",
            label=f"drop when alone in INT8 (1 - {metric})")
    ax.barh(range(len(shown)), [r.gain for r in shown], color="tab:green", alpha=0.6,
            label="gain when kept in FP16 (vs full INT8)")
    ax.set_yticks(range(len(shown)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(metric)
    ax.set_title(f"Per-layer INT8 sensitivity (top {len(shown)} of {len(rows)})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_search(path: str, result: SearchResult) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ks, values = zip(*result.history)
    ax.plot(ks, values, "o-")
    ax.axhline(result.target, color="tab:red", linestyle="--", label=f"target {result.target}")
    ax.axvline(len(result.promoted), color="tab:gray", linestyle=":",
               label=f"chosen: {len(result.promoted)} FP16 layer(s)")
    ax.set_xlabel("layers in FP16 (most sensitive first)")
    ax.set_ylabel(f"agreement ({result.metric})")
    ax.set_title(f"Mixed-precision search ({result.mode})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_bitwidth(path: str, points: Sequence[BitWidthPoint], metric: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    bits = [p.bits for p in points]
    ax.plot(bits, [p.agreement for p in points], "o-", label=f"agreement ({metric})")
    ax.set_xlabel("weight bits (per channel, activations float)")
    ax.set_ylabel(f"agreement ({metric})")
    ax2 = ax.twinx()
    ax2.plot(bits, [p.mean_weight_snr_db for p in points], "s--", color="tab:orange",
             label="mean weight SNR (dB)")
    ax2.set_ylabel("mean weight SNR (dB)")
    ax.set_title("Accuracy against weight bit width")
    fig.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(directory: str, summary: dict, rows: Sequence[LayerSensitivity],
                 result: Optional[SearchResult], points: Sequence[BitWidthPoint],
                 metric: str) -> list[str]:
    """Everything into `directory` (already created); returns the file names written."""
    table = layer_rows(rows, result)
    write_table(directory, table)
    plot_sensitivity(os.path.join(directory, "sensitivity.png"), rows, metric)
    if result is not None:
        plot_search(os.path.join(directory, "search.png"), result)
    if points:
        plot_bitwidth(os.path.join(directory, "bitwidth.png"), points, metric)
    summary = dict(summary, layers=[r.as_dict() for r in ranked(rows)])
    with open(os.path.join(directory, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, default=float)
    return sorted(os.listdir(directory))
