"""CUDA errors raised with the CUDA error name, and the one check every call goes through.

cuda-python returns `(status, *values)` from every call; `check` raises `CudaError` when the
status is not success and otherwise returns the values (one value unwrapped, none as None).
"""
from __future__ import annotations

from typing import Any


class CudaError(RuntimeError):
    """A CUDA driver, runtime or NVRTC call failed; `name` is the CUDA error name."""

    def __init__(self, name: str, message: str, call: str = "") -> None:
        self.name = name
        self.call = call
        where = f" in {call}" if call else ""
        super().__init__(f"{name}{where}: {message}")


class CudaUnavailable(RuntimeError):
    """No usable CUDA device or driver on this machine; the message says why."""


def _error_name(status: Any) -> tuple[str, str]:
    """(name, description) of a driver/runtime/NVRTC status enum."""
    module = type(status).__module__
    try:
        if module.endswith("driver"):
            from cuda.bindings import driver

            err, name = driver.cuGetErrorName(status)
            err2, text = driver.cuGetErrorString(status)
            name = name.decode() if err == driver.CUresult.CUDA_SUCCESS else str(status)
            text = text.decode() if err2 == driver.CUresult.CUDA_SUCCESS else ""
            return name, text
        if module.endswith("runtime"):
            from cuda.bindings import runtime

            _, name = runtime.cudaGetErrorName(status)
            _, text = runtime.cudaGetErrorString(status)
            return name.decode(), text.decode()
        if module.endswith("nvrtc"):
            from cuda.bindings import nvrtc

            _, text = nvrtc.nvrtcGetErrorString(status)
            return getattr(status, "name", str(status)), text.decode()
    except Exception:  # naming an error must never hide the error itself
        pass
    return getattr(status, "name", str(status)), ""


def is_success(status: Any) -> bool:
    return int(status) == 0


def check(result: Any, call: str = "") -> Any:
    """Raise CudaError unless `result` (a cuda-python return tuple or status) is success."""
    if isinstance(result, tuple):
        status, values = result[0], result[1:]
    else:
        status, values = result, ()
    if not is_success(status):
        name, text = _error_name(status)
        raise CudaError(name, text or "failed", call)
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return values
