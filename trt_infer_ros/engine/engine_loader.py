"""The one place that loads TensorRT engines, and never silently.

Before deserializing, the engine's sidecar is checked against this machine and what the caller
expects: engine file hash (tampering, truncation), TensorRT version, GPU name and compute
capability, DLA core, and -- when given -- the ONNX file's hash and the build settings. Any
difference raises `EngineMismatchError` listing every field, unless a rebuild was asked for
(`rebuild=BuildOptions` with on_mismatch 'rebuild'), in which case the engine is rebuilt first.
After deserializing, the engine's I/O tensors are compared with the sidecar's.

The TensorRT runners (CUDA graphs, DLA) load through `load_engine` and use `LoadedEngine`.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Callable, Optional

from trt_infer_ros.engine import sidecar as sidecar_mod
from trt_infer_ros.engine import trt_compat
from trt_infer_ros.engine.device_info import DeviceInfo, current_device
from trt_infer_ros.engine.model_facts import file_sha256
from trt_infer_ros.engine.sidecar import EngineSidecar, Mismatch, TensorSpec

LOG = logging.getLogger("trt_infer_ros.engine.engine_loader")


class EngineMismatchError(RuntimeError):
    """The engine does not match this machine or the caller's expectations."""

    def __init__(self, engine_path: str, mismatches: list[Mismatch]):
        self.engine_path = engine_path
        self.mismatches = list(mismatches)
        lines = "\n".join(f"  - {m}" for m in self.mismatches)
        super().__init__(
            f"engine {engine_path!r} does not match:\n{lines}\nRebuild it (engine_builder_node "
            "with the same onnx/settings, or on_mismatch:=rebuild); a mismatched engine is never "
            "loaded.")


@dataclass
class LoadedEngine:
    engine: object
    runtime: object                  # must outlive the engine
    sidecar: EngineSidecar
    path: str
    inputs: list = field(default_factory=list)     # list[TensorSpec]
    outputs: list = field(default_factory=list)
    plugin_handles: list = field(default_factory=list)


def io_specs(engine, trt) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Input and output tensor specs of a deserialized engine (name-based API, 8.5+)."""
    inputs, outputs = [], []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        shape = [int(d) for d in engine.get_tensor_shape(name)]
        spec = TensorSpec(name=name, mode="input" if is_input else "output", shape=shape,
                          dtype=trt_compat.dtype_name(engine.get_tensor_dtype(name)))
        if is_input and any(d < 0 for d in shape) and hasattr(engine, "get_tensor_profile_shape"):
            mn, opt, mx = engine.get_tensor_profile_shape(name, 0)
            spec.profile = {"min": [int(d) for d in mn], "opt": [int(d) for d in opt],
                            "max": [int(d) for d in mx]}
        (inputs if is_input else outputs).append(spec)
    return inputs, outputs


def _spec_key(spec) -> tuple:
    if isinstance(spec, dict):
        spec = TensorSpec(**spec)
    return (spec.name, spec.mode, tuple(spec.shape), spec.dtype)


def check_engine(engine_path: str, *, trt_version: str, device: DeviceInfo,
                 onnx_path: Optional[str] = None, dla_core: Optional[int] = None,
                 build_settings: Optional[dict] = None) -> EngineSidecar:
    """Sidecar of `engine_path` after checking it; raises FileNotFoundError, SidecarError or
    EngineMismatchError."""
    if not os.path.isfile(engine_path):
        raise FileNotFoundError(f"engine not found: {engine_path!r}; build it with "
                                "engine_builder_node onnx:=<model.onnx> engine:=<this path>")
    recorded = sidecar_mod.read_sidecar(engine_path)
    mismatches = sidecar_mod.compare(
        recorded, engine_sha256=file_sha256(engine_path), tensorrt_version=trt_version,
        gpu_name=device.gpu_name, compute_capability=device.compute_capability,
        dla_core=dla_core,
        onnx_sha256=file_sha256(onnx_path) if onnx_path else None,
        build_settings=build_settings)
    if mismatches:
        raise EngineMismatchError(engine_path, mismatches)
    return recorded


def make_runtime_logger(trt, log: Optional[Callable[[str], None]] = None):
    """A TensorRT logger forwarding warnings and errors to Python logging (or `log`)."""
    severity = trt.ILogger.Severity

    class _Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, level, msg):
            if level in (severity.INTERNAL_ERROR, severity.ERROR, severity.WARNING):
                (log or LOG.warning)(f"TensorRT: {msg}")

    return _Logger()


def load_engine(engine_path: str, *, trt=None, logger=None, device: Optional[DeviceInfo] = None,
                onnx_path: Optional[str] = None, dla_core: Optional[int] = None,
                build_settings: Optional[dict] = None, rebuild=None,
                log: Optional[Callable[[str], None]] = None) -> LoadedEngine:
    """Check and deserialize an engine.

    rebuild: a BuildOptions; when the engine is missing or does not match and its on_mismatch
    is 'rebuild', the engine is rebuilt with it (then checked again) instead of failing.
    """
    trt = trt or trt_compat.import_tensorrt()
    device = device or current_device()
    trt_version = trt_compat.version_string(trt)
    say = log or LOG.info
    try:
        recorded = check_engine(engine_path, trt_version=trt_version, device=device,
                                onnx_path=onnx_path, dla_core=dla_core,
                                build_settings=build_settings)
    except (FileNotFoundError, sidecar_mod.SidecarError, EngineMismatchError) as exc:
        if rebuild is None or rebuild.on_mismatch != "rebuild":
            raise
        say(f"{exc}\nrebuilding because on_mismatch is 'rebuild'")
        from trt_infer_ros.engine.builder import build_engine  # noqa: PLC0415 - avoids a cycle
        build_engine(dataclasses.replace(rebuild, engine=engine_path, force=True), trt=trt,
                     device=device, log=say)
        recorded = check_engine(engine_path, trt_version=trt_version, device=device,
                                onnx_path=onnx_path, dla_core=dla_core,
                                build_settings=None)
    handles = trt_compat.load_plugins(trt, recorded.plugins)
    logger = logger or make_runtime_logger(trt, log)
    runtime = trt.Runtime(logger)
    if recorded.dla_core >= 0:
        runtime.DLA_core = int(recorded.dla_core)
    with open(engine_path, "rb") as f:
        engine = runtime.deserialize_cuda_engine(f.read())
    if engine is None:
        raise RuntimeError(f"TensorRT could not deserialize {engine_path!r} (see its log above)")
    inputs, outputs = io_specs(engine, trt)
    got = sorted(_spec_key(s) for s in inputs + outputs)
    want = sorted(_spec_key(s) for s in list(recorded.inputs) + list(recorded.outputs))
    if got != want:
        raise EngineMismatchError(engine_path, [Mismatch("io_tensors", want, got)])
    return LoadedEngine(engine=engine, runtime=runtime, sidecar=recorded, path=engine_path,
                        inputs=inputs, outputs=outputs, plugin_handles=handles)
