"""Choose and create a Runner: a named backend, or "auto" for the fastest one that works here."""
from __future__ import annotations

import importlib
import importlib.util
import shutil
from pathlib import Path
from typing import Optional

from trt_infer_ros.backends.runner import BackendUnavailable, Runner
from trt_infer_ros.backends.tinygrad_runner import cuda_driver_present

BACKENDS = ("auto", "tensorrt", "onnxruntime", "tinygrad")
# Fastest first, as measured on the default CenterNet: tinygrad on CUDA runs it in 4.4 ms on an
# H100 (with the sort-based TopK of tinygrad_ops) against 13-19 ms for onnxruntime on 16 CPU cores
# (benchmarks/GPU_NOTES.md). On the CPU onnxruntime beats tinygrad by far (26 ms against 630 ms
# here), so tinygrad on the CPU is never picked automatically.
AUTO_ORDER = (("tensorrt", None), ("onnxruntime", "CUDA"), ("tinygrad", "CUDA"),
              ("onnxruntime", "CPU"))
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def _tensorrt_reason() -> Optional[str]:
    """None when TensorRT can be used, else why not."""
    if importlib.util.find_spec("trt_infer_ros.backends.tensorrt_runner") is None:
        return "this install has no TensorRT runner module"
    try:
        import tensorrt
    except Exception as exc:           # ImportError, or a broken install's OSError
        return f"import tensorrt failed ({exc})"
    if not hasattr(tensorrt, "Builder"):
        # A folder named tensorrt on sys.path (test/tensorrt) imports as a namespace package.
        return f"`tensorrt` resolves to {list(getattr(tensorrt, '__path__', []))}, not TensorRT"
    return None


def available_backends() -> list[tuple[str, str]]:
    """(backend, device) pairs that can run here, in auto's order. Cheap: opens no device."""
    found = []
    if _tensorrt_reason() is None:
        found.append(("tensorrt", "CUDA"))
    from trt_infer_ros.backends.onnxruntime_runner import onnxruntime_providers
    providers = onnxruntime_providers()
    tinygrad = importlib.util.find_spec("tinygrad") is not None
    if "CUDAExecutionProvider" in providers:
        found.append(("onnxruntime", "CUDA"))
    if tinygrad and cuda_driver_present():
        found.append(("tinygrad", "CUDA"))
    if "CPUExecutionProvider" in providers:
        found.append(("onnxruntime", "CPU"))
    if tinygrad and shutil.which("clang"):
        found.append(("tinygrad", "CPU"))
    return found


def _create_named(backend: str, model_path: str, device: Optional[str]) -> Runner:
    if backend == "tensorrt":
        reason = _tensorrt_reason()
        if reason:
            raise BackendUnavailable(f"TensorRT is not available on this machine: {reason}")
        module = importlib.import_module("trt_infer_ros.backends.tensorrt_runner")
        return module.TensorRTRunner(model_path, device=device)
    if backend == "onnxruntime":
        from trt_infer_ros.backends.onnxruntime_runner import OnnxRuntimeRunner
        return OnnxRuntimeRunner(model_path, device=device)
    if backend == "tinygrad":
        from trt_infer_ros.backends.tinygrad_runner import TinygradRunner
        return TinygradRunner(model_path, device=device)
    raise ValueError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")


def create_runner(backend: str, model_path: str, device: Optional[str] = None) -> Runner:
    """A runner for `model_path`. "auto" tries TensorRT, onnxruntime CUDA, tinygrad CUDA and
    onnxruntime CPU in that order (only those on `device` when given) and takes the first that
    starts; the runner's `selection` attribute says what was chosen and why the others were not.
    """
    backend = (backend or "auto").lower()
    if backend != "auto":
        runner = _create_named(backend, model_path, device)
        _note(runner, f"{backend} requested")
        return runner
    engine_file = Path(model_path).suffix.lower() in ENGINE_SUFFIXES
    wanted = device.upper() if device else None
    # TensorRT (d None) takes any accelerator it knows (GPU, DLA0, ...) but never the CPU.
    candidates = [(b, d) for b, d in AUTO_ORDER
                  if (not engine_file or b == "tensorrt")
                  and (wanted is None or d == wanted or (d is None and wanted != "CPU"))]
    skipped = []
    for i, (name, dev) in enumerate(candidates):
        label = f"{name} {dev or device or ''}".strip()
        try:
            if name == "tensorrt":
                runner = _create_named(name, model_path, device)
            else:
                runner = _create_named(name, model_path, dev)
        except Exception as exc:
            if i == len(candidates) - 1 and not isinstance(exc, BackendUnavailable):
                raise
            skipped.append(f"{label}: {exc}")
            continue
        _note(runner, f"auto chose {label}" + (f" (skipped {'; '.join(skipped)})" if skipped else ""))
        return runner
    raise BackendUnavailable("no backend can run " + str(model_path) + ": " + "; ".join(skipped))


def _note(runner: Runner, why: str) -> None:
    try:
        runner.selection = why
    except AttributeError:             # a runner with __slots__ simply goes without the note
        pass
