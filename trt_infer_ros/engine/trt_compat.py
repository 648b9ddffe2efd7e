"""TensorRT 8.5 .. 11 differences, in one place, decided by what the module has (hasattr).

- `NetworkDefinitionCreationFlag.EXPLICIT_BATCH`: required for ONNX on 8.x, ignored (deprecated)
  on 10, gone on 11.  `STRONGLY_TYPED` appears in 10; 11 only builds strongly typed networks.
- `BuilderFlag.FP16/INT8/OBEY_PRECISION_CONSTRAINTS` and `IBuilderConfig.int8_calibrator`:
  deprecated in 10, gone in 11 (precision then comes from the ONNX: fp16 tensors or Q/DQ).
- `IProgressMonitor` / `IBuilderConfig.progress_monitor`: from 10.
- `IBuilderConfig.builder_optimization_level`: from 8.6.
- `IPluginRegistry.load_library`: from 8.6 (8.5: the library is loaded with ctypes, whose static
  plugin registrars register the creators).
"""
from __future__ import annotations

import ctypes
from typing import Any, Sequence

from trt_infer_ros.backends.runner import BackendUnavailable


class TensorRTUnavailable(BackendUnavailable):
    """`import tensorrt` failed; the message says why and what to install."""


def import_tensorrt():
    try:
        import tensorrt  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        problem = str(exc)
    else:
        # a directory named `tensorrt` on sys.path (test/tensorrt/) imports as an empty
        # namespace package when the real module is absent: that is not TensorRT
        if hasattr(tensorrt, "Builder"):
            return tensorrt
        problem = f"`tensorrt` resolves to {list(getattr(tensorrt, '__path__', []))}, not TensorRT"
    raise TensorRTUnavailable(
        f"TensorRT's Python module cannot be imported ({problem}). Engines are built on the "
        "machine that runs them: on Jetson install JetPack (python3-libnvinfer), on x86 "
        "`pip install tensorrt` from NVIDIA's index.")


def tensorrt_unavailable_reason():
    """None when TensorRT imports, else why not."""
    try:
        import_tensorrt()
    except TensorRTUnavailable as exc:
        return str(exc)
    return None


def version(trt) -> tuple[int, int, int]:
    parts = (str(getattr(trt, "__version__", "0.0.0")).split(".") + ["0", "0", "0"])[:3]
    out = []
    for p in parts:
        digits = "".join(ch for ch in p if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)  # type: ignore[return-value]


def version_string(trt) -> str:
    return str(getattr(trt, "__version__", "unknown"))


def version_code(trt) -> int:
    """NV_TENSORRT_VERSION as the calibration-cache header writes it: 8.6.1 -> 8601,
    10.3.0 -> 100300 (the encoding widened in 10)."""
    major, minor, patch = version(trt)
    if major >= 10:
        return major * 10000 + minor * 100 + patch
    return major * 1000 + minor * 100 + patch


def has_builder_flag(trt, name: str) -> bool:
    return hasattr(trt.BuilderFlag, name)


def supports_strongly_typed(trt) -> bool:
    return hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED") or always_strongly_typed(trt)


def always_strongly_typed(trt) -> bool:
    """TensorRT 11: no weak typing at all (no FP16/INT8 builder flags)."""
    return not has_builder_flag(trt, "FP16") and not has_builder_flag(trt, "INT8")


def supports_implicit_int8(trt) -> bool:
    """INT8 through a calibrator (TensorRT <= 10)."""
    return (has_builder_flag(trt, "INT8") and hasattr(trt.IBuilderConfig, "int8_calibrator")
            and hasattr(trt, "IInt8EntropyCalibrator2"))


def supports_precision_constraints(trt) -> bool:
    return has_builder_flag(trt, "OBEY_PRECISION_CONSTRAINTS")


def supports_progress_monitor(trt) -> bool:
    return hasattr(trt, "IProgressMonitor") and hasattr(trt.IBuilderConfig, "progress_monitor")


def supports_optimization_level(trt) -> bool:
    return hasattr(trt.IBuilderConfig, "builder_optimization_level")


def network_creation_flags(trt, strongly_typed: bool) -> int:
    """Bit mask for `Builder.create_network`: EXPLICIT_BATCH only before 10, STRONGLY_TYPED
    when asked for and known (11 is strongly typed without asking)."""
    flags = 0
    flag_enum = trt.NetworkDefinitionCreationFlag
    if version(trt)[0] < 10 and hasattr(flag_enum, "EXPLICIT_BATCH"):
        flags |= 1 << int(flag_enum.EXPLICIT_BATCH)
    if strongly_typed and hasattr(flag_enum, "STRONGLY_TYPED"):
        flags |= 1 << int(flag_enum.STRONGLY_TYPED)
    return flags


def set_workspace(config, trt, nbytes: int) -> None:
    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(nbytes))
    else:  # older than 8.4; kept for completeness
        config.max_workspace_size = int(nbytes)


def trt_dtype(trt, precision: str):
    return {"fp32": trt.float32, "fp16": trt.float16, "int8": trt.int8}[precision]


_DTYPE_NAMES = {"FLOAT": "float32", "HALF": "float16", "INT8": "int8", "INT32": "int32",
                "INT64": "int64", "BOOL": "bool", "UINT8": "uint8", "BF16": "bfloat16",
                "FP8": "float8", "INT4": "int4", "FP4": "float4"}


def dtype_name(dtype: Any) -> str:
    """trt.DataType -> numpy-style name ('float32', 'float16', ...)."""
    name = getattr(dtype, "name", None) or str(dtype).split(".")[-1]
    return _DTYPE_NAMES.get(name.upper(), name.lower())


def load_plugins(trt, paths: Sequence[str]) -> list:
    """Load exactly these plugin libraries; returns the handles (keep them alive)."""
    handles = []
    if not paths:
        return handles
    registry = trt.get_plugin_registry()
    for path in paths:
        if hasattr(registry, "load_library"):
            handle = registry.load_library(path)
            if handle is None:
                raise RuntimeError(f"TensorRT could not load plugin library {path!r}")
        else:
            handle = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        handles.append(handle)
    return handles


def parse_onnx(trt, network, logger, path: str):
    """Parse `path` into `network`; raises RuntimeError with every parser error."""
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse_from_file(path)
    if not ok:
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError(f"TensorRT's ONNX parser rejected {path!r}:\n  " + "\n  ".join(errors))
    return parser
