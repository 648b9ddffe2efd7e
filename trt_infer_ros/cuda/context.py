"""The CUDA context every object of this package works in.

By default the device's primary context (the one the CUDA runtime and TensorRT use). A runner
that owns its own context (tinygrad creates one per device) hands its handle to `adopt`, so our
buffers, streams, kernels and graphs live in the same address space as the runner's tensors.
"""
from __future__ import annotations

import threading
from typing import Optional

from trt_infer_ros.cuda.errors import CudaUnavailable, check

_lock = threading.Lock()
_primary: dict[int, "CudaContext"] = {}


def _driver():
    try:
        from cuda.bindings import driver
    except Exception as exc:  # pragma: no cover - depends on the install
        raise CudaUnavailable(f"cuda-python (cuda.bindings) is not importable: {exc}") from exc
    return driver


def cuda_unavailable_reason() -> Optional[str]:
    """None when a CUDA device can be used, else a sentence saying why not."""
    try:
        driver = _driver()
        status = driver.cuInit(0)[0]
        if int(status) != 0:
            return f"cuInit failed: {status.name}"
        status, count = driver.cuDeviceGetCount()
        if int(status) != 0 or count < 1:
            return "no CUDA device is visible"
    except CudaUnavailable as exc:
        return str(exc)
    except Exception as exc:  # driver library missing, ...
        return f"no CUDA driver: {exc}"
    return None


class CudaContext:
    """A CUDA context handle plus the device it belongs to; `activate()` makes it current."""

    def __init__(self, handle, device_ordinal: int, owned_primary: bool) -> None:
        self.handle = handle
        self.device_ordinal = device_ordinal
        self._owned_primary = owned_primary
        driver = _driver()
        self.device = check(driver.cuDeviceGet(device_ordinal), "cuDeviceGet")
        major = check(driver.cuDeviceGetAttribute(
            driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, self.device))
        minor = check(driver.cuDeviceGetAttribute(
            driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, self.device))
        self.compute_capability = (int(major), int(minor))
        self.name = check(driver.cuDeviceGetName(100, self.device)).split(b"\0")[0].decode()

    @property
    def arch(self) -> str:
        return f"sm_{self.compute_capability[0]}{self.compute_capability[1]}"

    @classmethod
    def primary(cls, device_ordinal: int = 0) -> "CudaContext":
        """The device's primary context (shared with the CUDA runtime and TensorRT)."""
        with _lock:
            ctx = _primary.get(device_ordinal)
            if ctx is None:
                reason = cuda_unavailable_reason()
                if reason:
                    raise CudaUnavailable(reason)
                driver = _driver()
                dev = check(driver.cuDeviceGet(device_ordinal), "cuDeviceGet")
                handle = check(driver.cuDevicePrimaryCtxRetain(dev), "cuDevicePrimaryCtxRetain")
                ctx = cls(handle, device_ordinal, owned_primary=True)
                _primary[device_ordinal] = ctx
        ctx.activate()
        return ctx

    @classmethod
    def adopt(cls, handle_value: int, device_ordinal: int = 0) -> "CudaContext":
        """Work inside a context created by someone else (its owner keeps it alive)."""
        driver = _driver()
        check(driver.cuInit(0), "cuInit")
        ctx = cls(driver.CUcontext(int(handle_value)), device_ordinal, owned_primary=False)
        ctx.activate()
        return ctx

    def activate(self) -> None:
        check(_driver().cuCtxSetCurrent(self.handle), "cuCtxSetCurrent")

    def synchronize(self) -> None:
        self.activate()
        check(_driver().cuCtxSynchronize(), "cuCtxSynchronize")

    def mem_info(self) -> tuple[int, int]:
        """(free, total) device memory in bytes, as cuMemGetInfo reports it."""
        self.activate()
        free, total = check(_driver().cuMemGetInfo(), "cuMemGetInfo")
        return int(free), int(total)
