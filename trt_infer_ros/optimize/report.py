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


# every file search/report/sensitivity write into --out: only these may be replaced there
OUTPUT_FILES = ("layers.md", "layers.csv", "sensitivity.png", "search.png", "bitwidth.png",
                "summary.json", "search.json", "sensitivity.json", "layer_precisions.yaml")


def is_output_file(name: str) -> bool:
    return name in OUTPUT_FILES or name.endswith(".qdq.onnx")


def output_directory_problem(target: str) -> Optional[str]:
    """Why `target` cannot receive the analysis, or None: it must be new, empty, or hold only
    a previous run's files, so that nothing of the user's (the model, the images) is replaced."""
    if not os.path.lexists(target):
        return None
    if not os.path.isdir(target):
        return f"--out {target!r} is a file, not a directory"
    foreign = sorted(n for n in os.listdir(target) if not is_output_file(n))
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        return (f"--out {target!r} already holds other files ({shown}); give a new or empty "
                "directory, so that none of them is replaced")
    return None


@contextmanager
def staged_directory(target: str):
    """Yields a temporary directory beside `target`; on success its files replace a previous
    run's in `target` (see output_directory_problem), on any failure nothing changes."""
    target = os.path.abspath(target)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    stage = tempfile.mkdtemp(prefix=".int8-", dir=parent)
    try:
        yield stage
        publish(stage, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def publish(stage: str, target: str) -> None:
    if not os.path.exists(target):
        os.replace(stage, target)
        return
    written = set(os.listdir(stage))
    for name in written:
        os.replace(os.path.join(stage, name), os.path.join(target, name))
    for name in os.listdir(target):      # the previous run's files this run did not write
        if name not in written and is_output_file(name):
            os.remove(os.path.join(target, name))


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
