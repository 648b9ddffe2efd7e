"""Which GPU runner `backend: auto` takes for an ONNX model: the fastest whole frame, measured.

Every runner that starts here (onnxruntime's CUDA provider, tinygrad on CUDA) gets a
`GpuDetectionPipeline`, which runs a 1280x720 bgr8 frame for a bounded time; the lowest median
wins, and the numbers are logged. The winner is remembered in a cache keyed by the model file's
content, its input shape, the GPU and the runtime versions
(`$XDG_CACHE_HOME/trt_infer_ros/gpu_runner_choice.json`), so later starts build the winner only.
TensorRT is not timed: it runs engine files, and it is first wherever it runs.
"""
from __future__ import annotations

import importlib.metadata
import json
import statistics
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from trt_infer_ros.engine.model_facts import file_sha256
from trt_infer_ros.file_io import write_atomic
from trt_infer_ros.resources import user_cache_dir

GPU_RUNNERS = ("onnxruntime", "tinygrad")      # on equal times, the first wins
FP16_RUNNER = "onnxruntime-fp16"               # onnxruntime CUDA on the model's fp16 copy
TIMING_FRAME = (720, 1280, 3)                  # the frame each candidate is timed on (bgr8)
TIMED_FRAMES = 30
BUDGET_S = 3.0                                 # per candidate, after its warm-up
_PACKAGES = {"onnxruntime": ("onnxruntime-gpu", "onnxruntime"), "tinygrad": ("tinygrad",)}
_PACKAGES[FP16_RUNNER] = _PACKAGES["onnxruntime"]


def installed_gpu_runners() -> list[str]:
    """GPU runner names whose runtime is installed with GPU support, in GPU_RUNNERS order: the
    CUDA entries of the backend factory's list (cheap: opens no device)."""
    from trt_infer_ros.backends.factory import available_backends

    cuda = {backend for backend, device in available_backends() if device == "CUDA"}
    return [name for name in GPU_RUNNERS if name in cuda]


def gpu_candidates(backend: str, precision: str, installed: list[str]) -> list[str]:
    """The GPU runners `backend` and `precision` allow, from the installed ones: fp16 is
    onnxruntime CUDA on the model's fp16 copy; "auto" precision offers it beside fp32 (the
    pipeline takes it only within the detection tolerance and when faster)."""
    from trt_infer_ros.backends.runner import BackendUnavailable

    names = [backend] if backend in GPU_RUNNERS else list(installed)
    names = [n for n in names if n in installed]
    fp16 = [FP16_RUNNER] if "onnxruntime" in names else []
    if precision == "fp16":
        if not fp16:
            raise BackendUnavailable("precision fp16 runs on onnxruntime's CUDA provider "
                                     "(onnxruntime-gpu), which " + (
                                         "is not installed here" if "onnxruntime" not in installed
                                         else f"backend {backend!r} excludes"))
        return fp16
    return names + fp16 if precision == "auto" else names


def create_named_gpu_runner(name: str, model_path: str, input_shape=None, device_ordinal: int = 0):
    if name in ("onnxruntime", FP16_RUNNER):
        from trt_infer_ros.backends.onnxruntime_cuda_runner import OnnxRuntimeCudaRunner
        return OnnxRuntimeCudaRunner(model_path, input_shape, device_ordinal,
                                     "fp16" if name == FP16_RUNNER else "fp32")
    if name == "tinygrad":
        from trt_infer_ros.backends.tinygrad_cuda_runner import TinygradCudaRunner
        return TinygradCudaRunner(model_path, input_shape)
    raise ValueError(f"no GPU runner named {name!r}")


def _version(name: str) -> str:
    for package in _PACKAGES.get(name, (name,)):
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "absent"


def cache_key(model_path: str, input_shape, gpu_name: str, candidates) -> str:
    """What the measured choice depends on: the model's bytes, the input shape, the GPU, the
    candidates and their versions."""
    parts = [file_sha256(model_path), "x".join(str(d) for d in input_shape or ()), gpu_name]
    parts += [f"{c}={_version(c)}" for c in candidates]
    return "|".join(parts)


def cache_path() -> Path:
    return user_cache_dir() / "gpu_runner_choice.json"


def _read_cache() -> dict:
    try:
        data = json.loads(cache_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def cached_choice(key: str, candidates) -> Optional[dict]:
    """The remembered measurement for `key`, when its winner is still a candidate."""
    entry = _read_cache().get(key)
    if isinstance(entry, dict) and entry.get("runner") in candidates:
        return entry
    return None


def remember_choice(key: str, entry: dict) -> None:
    data = _read_cache()
    data[key] = entry
    try:
        write_atomic(str(cache_path()), json.dumps(data, indent=1, sort_keys=True).encode())
    except OSError:          # a read-only home only costs the next start a new measurement
        pass


def time_whole_frame(pipeline, frames: int = TIMED_FRAMES, budget_s: float = BUDGET_S) -> float:
    """Median host wall time (ms) of `pipeline(frame)` on a 1280x720 bgr8 frame, after two
    warm-up frames, stopping after `frames` frames or `budget_s` seconds."""
    image = np.random.default_rng(0).integers(0, 256, TIMING_FRAME, dtype=np.uint8)
    for _ in range(2):
        pipeline(image, "bgr8")
    times, deadline = [], time.perf_counter() + budget_s
    while len(times) < frames and (len(times) < 3 or time.perf_counter() < deadline):
        start = time.perf_counter()
        pipeline(image, "bgr8")
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def choose_fastest(candidates, make_pipeline: Callable[[str], object], key: Optional[str],
                   say: Callable[[str], None]):
    """The pipeline whose whole frame is fastest, built by `make_pipeline(runner_name)`; the
    cached winner alone when `key` is known. Candidates that fail to start are logged and
    skipped; when none starts, BackendUnavailable names each one's reason."""
    entry = cached_choice(key, candidates) if key else None
    if entry is not None:
        say(f"GPU runner {entry['runner']} (measured before: "
            + ", ".join(f"{k} {v:.2f} ms" for k, v in entry["frame_ms"].items())
            + f" per 1280x720 frame; cache {cache_path()})")
        try:
            return make_pipeline(entry["runner"])
        except Exception as exc:
            say(f"the remembered GPU runner {entry['runner']} did not start ({exc}); measuring")
    best, best_name, best_ms, timings, failures = None, None, None, {}, []
    started = time.perf_counter()
    for name in candidates:
        try:
            t0 = time.perf_counter()
            pipe = make_pipeline(name)
            load_s = time.perf_counter() - t0
            ms = time_whole_frame(pipe)
        except Exception as exc:
            failures.append((name, exc))
            say(f"GPU runner {name} not used: {type(exc).__name__}: {exc}")
            continue
        timings[name] = ms
        say(f"GPU runner {name}: {ms:.2f} ms per 1280x720 frame (start-up {load_s:.1f} s)")
        if best_ms is None or ms < best_ms:
            if best is not None:
                best.close()
            best, best_name, best_ms = pipe, name, ms
        else:
            pipe.close()
    if best is None:
        from trt_infer_ros.backends.runner import BackendUnavailable

        raise BackendUnavailable("no GPU runner started: " + "; ".join(
            f"{name}: {exc}" for name, exc in failures))
    winner = best_name
    say(f"GPU runner {winner} chosen: " + ", ".join(f"{k} {v:.2f} ms" for k, v in timings.items())
        + f" (measured in {time.perf_counter() - started:.1f} s)")
    if key and len(timings) > 1:
        remember_choice(key, {"runner": winner, "frame_ms": timings, "when": time.time()})
    return best
