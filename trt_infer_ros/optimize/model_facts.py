"""Before/after facts of a model variant: parameters, MACs, file size, CPU latency per frame."""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import onnx
from onnx import numpy_helper

from trt_infer_ros.optimize.simulate import input_feed, session_for

LOG = logging.getLogger("trt_infer_ros.optimize")


@dataclass
class ModelFacts:
    parameters: int              # float weights, counting zeros (pruning to sparsity keeps them)
    nonzero: int
    macs: Optional[int]          # None where shape inference cannot size every layer
    file_bytes: int
    latency_ms: Optional[float]  # median onnxruntime CPU time per frame
    agreement: Optional[dict] = None

    def as_dict(self) -> dict:
        return asdict(self)


def _parameters(model: onnx.ModelProto) -> tuple[int, int]:
    total = nonzero = 0
    for init in model.graph.initializer:
        if init.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16,
                              onnx.TensorProto.INT8):
            value = numpy_helper.to_array(init)
            if value.ndim >= 1 and value.size > 1:
                total += value.size
                nonzero += int(np.count_nonzero(value))
    return total, nonzero


def cpu_latency_ms(model: onnx.ModelProto, tensor: np.ndarray, runs: int = 20,
                   warmup: int = 3) -> float:
    """Median CPU time per frame of one model (`runs` runs after `warmup`)."""
    return paired_latency_ms([model], tensor, runs, rounds=1, warmup=warmup)[0]


def paired_latency_ms(models: list, tensor: np.ndarray, runs: int = 20, rounds: int = 5,
                      warmup: int = 3) -> list[float]:
    """Median CPU time per frame of each model, timed in alternating rounds so that load from
    other processes weighs on all of them alike (timed one after the other, a busy spell can
    make either look several times slower)."""
    sessions = [session_for(m, ["CPUExecutionProvider"]) for m in models]
    feeds = [input_feed(s, tensor) for s in sessions]
    for session, feed in zip(sessions, feeds):
        for _ in range(warmup):
            session.run(None, feed)
    times: list[list[float]] = [[] for _ in models]
    per_round = max(runs // rounds, 1)
    for _ in range(rounds):
        for session, feed, out in zip(sessions, feeds, times):
            for _ in range(per_round):
                start = time.perf_counter()
                session.run(None, feed)
                out.append(time.perf_counter() - start)
    return [float(np.median(t) * 1000) for t in times]


def _macs(model: onnx.ModelProto) -> Optional[int]:
    from trt_infer_ros.measure.ops_count import OpsCountError, count_macs  # noqa: PLC0415
    try:
        return int(sum(layer.macs for layer in count_macs(model).layers))
    except OpsCountError as exc:      # e.g. a layer behind a Loop, which shape inference skips
        LOG.warning("MACs not counted: %s", str(exc).split(";")[0])
        return None


def measure(model: onnx.ModelProto, tensor: Optional[np.ndarray] = None, runs: int = 20,
            agreement=None) -> ModelFacts:
    total, nonzero = _parameters(model)
    latency = cpu_latency_ms(model, tensor, runs) if tensor is not None and runs > 0 else None
    return ModelFacts(total, nonzero, _macs(model), len(model.SerializeToString()), latency,
                      agreement.as_dict() if agreement is not None else None)


def change(before: ModelFacts, after: ModelFacts) -> str:
    def pct(a, b):
        return f"{(b - a) / a * 100:+.1f} %" if a else "n/a"
    lines = [f"parameters {before.parameters:,} -> {after.parameters:,} "
             f"({pct(before.parameters, after.parameters)}); nonzero {before.nonzero:,} -> "
             f"{after.nonzero:,} ({pct(before.nonzero, after.nonzero)})",
             f"file {before.file_bytes / 1e6:.2f} MB -> {after.file_bytes / 1e6:.2f} MB "
             f"({pct(before.file_bytes, after.file_bytes)})"]
    if before.macs is not None and after.macs is not None:
        lines.insert(1, f"MACs {before.macs / 1e9:.3f} G -> {after.macs / 1e9:.3f} G "
                     f"({pct(before.macs, after.macs)})")
    if before.latency_ms and after.latency_ms:
        lines.append(f"CPU latency (onnxruntime) {before.latency_ms:.1f} ms -> "
                     f"{after.latency_ms:.1f} ms ({pct(before.latency_ms, after.latency_ms)})")
    return "\n".join(lines)
