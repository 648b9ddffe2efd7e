"""Activation ranges of an ONNX model over the user's frames, and the TensorRT calibration cache.

Two passes with onnxruntime, every float tensor made a graph output: the first finds each
tensor's max |x| (the min-max range), the second fills a histogram of |x| over [0, max] per
tensor (8192 fine bins) from which come
- `percentile`: the |x| below which that percentage of the values lie (to one fine bin), and
- `entropy`: TensorRT's KL threshold on the same histogram merged to 2048 bins (entropy.py).
Ranges are symmetric (amax), as TensorRT's INT8 scales are: scale = amax / 127.

The cache is written through engine/calibration_cache.py with the companion meta the engine
builder checks, then read back through the same module and compared, so a cache this writes is
one the builder reuses.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, shape_inference

from trt_infer_ros.engine import calibration_cache
from trt_infer_ros.optimize.entropy import BINS, entropy_amax
from trt_infer_ros.optimize.simulate import Progress, run_frames, session_for

LOG = logging.getLogger("trt_infer_ros.optimize")
METHODS = ("minmax", "percentile", "entropy")
FINE_BINS = 4 * BINS
# the engine builder's calibration_algorithm for each method (its cache header and meta)
BUILDER_ALGORITHM = {"minmax": "minmax", "percentile": "percentile", "entropy": "entropy2"}


@dataclass
class ActivationStats:
    """max |x| and the |x| histogram of every observed tensor."""

    amax: dict = field(default_factory=dict)
    hist: dict = field(default_factory=dict)
    frames: int = 0

    def ranges(self, method: str, percentile: float = 99.99) -> dict[str, float]:
        if method not in METHODS:
            raise ValueError(f"calibration method {method!r} is not one of {', '.join(METHODS)}")
        if method == "minmax":
            return dict(self.amax)
        out = {}
        for name, amax in self.amax.items():
            hist = self.hist[name]
            if method == "percentile":
                out[name] = percentile_amax(hist, amax, percentile)
            else:
                out[name] = entropy_amax(hist.reshape(BINS, -1).sum(axis=1), amax)
        return out


def percentile_amax(hist: np.ndarray, hist_max: float, percentile: float) -> float:
    total = hist.sum()
    if total == 0 or hist_max <= 0:
        return float(hist_max)
    index = int(np.searchsorted(np.cumsum(hist), total * percentile / 100.0))
    return float(min((index + 1) * hist_max / hist.size, hist_max))


def abs_histogram(values: np.ndarray, amax: float, bins: int = FINE_BINS) -> np.ndarray:
    """Counts of |x| in `bins` equal bins over [0, amax] (the last bin closed, as np.histogram)."""
    scale = bins / amax if amax > 0 else 0.0
    index = np.minimum((np.abs(values.ravel()) * np.float32(scale)).astype(np.int64), bins - 1)
    return np.bincount(index, minlength=bins)


def tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor shape inference can type (graph inputs, outputs, values)."""
    try:
        inferred = shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - without inferred types every output is tried
        inferred = model
    graph = inferred.graph
    return {v.name: v.type.tensor_type.elem_type
            for v in list(graph.value_info) + list(graph.output) + list(graph.input)}


def float_tensors(model: onnx.ModelProto) -> list[str]:
    """The graph inputs and node outputs that hold float32 values."""
    types = tensor_types(model)
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    names = [i.name for i in graph.input if i.name not in inits
             and types.get(i.name) == TensorProto.FLOAT]
    for node in graph.node:
        names += [o for o in node.output if o and types.get(o, TensorProto.FLOAT)
                  == TensorProto.FLOAT]
    return list(dict.fromkeys(names))


def observing(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """A copy of `model` with `names` added to the graph outputs (each with its own element
    type: an fp16 model's tensors are fp16, and onnxruntime refuses a mistyped output)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    existing = {o.name for o in copy.graph.output}
    types = tensor_types(model)
    for name in names:
        if name not in existing:
            elem_type = types.get(name) or TensorProto.FLOAT
            copy.graph.output.append(helper.make_tensor_value_info(name, elem_type, None))
    return copy


def collect(model: onnx.ModelProto, frames: Sequence, tensors: Optional[Sequence[str]] = None,
            log: Callable[[str], None] = LOG.info) -> ActivationStats:
    """max |x| and |x| histograms of `tensors` (default: every float tensor) over `frames`."""
    names = list(tensors) if tensors is not None else float_tensors(model)
    session = session_for(observing(model, names))
    outputs = [o.name for o in session.get_outputs()]
    input_name = session.get_inputs()[0].name
    wanted = [n for n in names if n in outputs or n == input_name]
    stats = ActivationStats()
    progress = Progress(log, "calibration pass 1/2 (ranges)", len(frames))
    for frame, values in zip(frames, run_frames(session, frames, output_names=outputs)):
        found = dict(zip(outputs, values))
        found[input_name] = frame.tensor
        for name in wanted:
            value = np.asarray(found[name])
            if value.dtype.kind == "f" and value.size:
                stats.amax[name] = max(stats.amax.get(name, 0.0), float(np.abs(value).max()))
        progress.step()
    progress = Progress(log, "calibration pass 2/2 (histograms)", len(frames))
    for frame, values in zip(frames, run_frames(session, frames, output_names=outputs)):
        found = dict(zip(outputs, values))
        found[input_name] = frame.tensor
        for name, amax in stats.amax.items():
            hist = abs_histogram(np.asarray(found[name], np.float32), amax)
            stats.hist[name] = stats.hist.get(name, 0) + hist
        progress.step()
    stats.frames = len(frames)
    return stats


# --- the TensorRT calibration cache ----------------------------------------------------------

def cache_meta(onnx_path: str, method: str, model_type: str, input_spec,
               percentile: float) -> dict:
    """The meta the engine builder expects next to a cache it may reuse."""
    from trt_infer_ros.engine.builder import calibration_meta  # noqa: PLC0415
    from trt_infer_ros.engine.model_facts import read_model_facts  # noqa: PLC0415
    from trt_infer_ros.engine.options import BuildOptions  # noqa: PLC0415
    options = BuildOptions(onnx=onnx_path, calibration_algorithm=BUILDER_ALGORITHM[method],
                           model_type=model_type, calibration_percentile=percentile)
    return calibration_meta(options, read_model_facts(onnx_path), input_spec)


def write_cache(path: str, ranges: dict[str, float], method: str, meta: dict,
                version_code: int = 100300) -> calibration_cache.CalibrationCache:
    """Write `ranges` as a TensorRT calibration cache (+ meta) and check it reads back."""
    algorithm = BUILDER_ALGORITHM[method]
    cache = calibration_cache.CalibrationCache.from_dynamic_ranges(
        version_code, calibration_cache.ALGORITHM_HEADERS[algorithm], ranges)
    calibration_cache.write_cache(path, cache.to_bytes(), meta)
    back = calibration_cache.CalibrationCache.parse(calibration_cache.read_cache(path))
    reusable, why = calibration_cache.cache_matches(path, algorithm, meta)
    if not reusable or back.scales.keys() != cache.scales.keys() or any(
            not np.isclose(back.scales[k], np.float32(v), rtol=1e-6)
            for k, v in cache.scales.items()):
        raise RuntimeError(f"the calibration cache written to {path} does not read back as "
                           f"written ({why})")
    return back
