"""CUDA IPC: device memory and events of one process opened by another process on the host.

The exporting process keeps the memory allocated (cuMemAlloc) and passes the 64-byte handle
to the importer, which maps it once (cuIpcOpenMemHandle) and reads the bytes where they lie:
device tensors never visit the host. An interprocess event, recorded by the exporter after
its writes, orders the importer's reads behind them without a host wait.

Not on Tegra (Jetson): the CUDA documentation lists IPC as unsupported on Tegra platforms;
there the GPU, the DLA and the CPU share one DRAM and a shared-memory ring is the right buffer.
`ipc_unsupported_reason` says why IPC cannot be used on a device.
"""
from __future__ import annotations

import ctypes
from typing import Optional

from cuda.bindings import driver

from trt_infer_ros.cuda.buffers import DeviceBuffer
from trt_infer_ros.cuda.context import CudaContext
from trt_infer_ros.cuda.errors import check
from trt_infer_ros.cuda.owned import OwnedHandle
from trt_infer_ros.cuda.stream import Stream

HANDLE_SIZE = 64


def ipc_unsupported_reason(context: CudaContext) -> Optional[str]:
    """None when this device can export and open IPC handles, else a sentence saying why not."""
    attr = driver.CUdevice_attribute
    if check(driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_INTEGRATED, context.device)):
        return (f"CUDA IPC is not supported on {context.name}, an integrated (Tegra) GPU; "
                "its memory is the host's, so shared memory is used")
    if not check(driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING,
                                             context.device)):
        return f"CUDA IPC needs unified addressing, which {context.name} lacks"
    return None


def _to_bytes(handle) -> bytes:
    return ctypes.string_at(handle.getPtr(), HANDLE_SIZE)


def _from_bytes(cls, data: bytes):
    if len(data) != HANDLE_SIZE:
        raise ValueError(f"an IPC handle is {HANDLE_SIZE} bytes, got {len(data)}")
    handle = cls()
    ctypes.memmove(handle.getPtr(), data, HANDLE_SIZE)
    return handle


def export_memory(buffer: DeviceBuffer) -> bytes:
    """The IPC handle of a whole cuMemAlloc allocation (valid while the buffer lives)."""
    buffer.context.activate()
    return _to_bytes(check(driver.cuIpcGetMemHandle(buffer.ptr), "cuIpcGetMemHandle"))


class IpcMemory(OwnedHandle):
    """Another process's allocation mapped into this context; `ptr` is its device address.
    Close it before the exporter frees the memory where possible (the driver requires it)."""

    _destroy = "cuIpcCloseMemHandle"

    def __init__(self, context: CudaContext, handle: bytes) -> None:
        self.context = context
        context.activate()
        flags = int(driver.CUipcMem_flags.CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS)
        self.handle = check(driver.cuIpcOpenMemHandle(
            _from_bytes(driver.CUipcMemHandle, handle), flags), "cuIpcOpenMemHandle")

    @property
    def ptr(self) -> int:
        if self.handle is None:
            raise ValueError("IPC mapping is closed")
        return int(self.handle)


class InterprocessEvent(OwnedHandle):
    """An event another process can wait on (no timing: interprocess events cannot time)."""

    _destroy = "cuEventDestroy"

    def __init__(self, context: CudaContext) -> None:
        self.context = context
        context.activate()
        flags = int(driver.CUevent_flags.CU_EVENT_INTERPROCESS) | \
            int(driver.CUevent_flags.CU_EVENT_DISABLE_TIMING)
        self.handle = check(driver.cuEventCreate(flags), "cuEventCreate")
        self.ipc_handle = _to_bytes(check(driver.cuIpcGetEventHandle(self.handle),
                                          "cuIpcGetEventHandle"))

    def record(self, stream: Optional[Stream] = None) -> None:
        stream_handle = stream.handle if stream is not None else driver.CUstream(0)
        check(driver.cuEventRecord(self.handle, stream_handle), "cuEventRecord")


class OpenedEvent(OwnedHandle):
    """Another process's interprocess event: wait for what it recorded."""

    _destroy = "cuEventDestroy"

    def __init__(self, context: CudaContext, handle: bytes) -> None:
        self.context = context
        context.activate()
        self.handle = check(driver.cuIpcOpenEventHandle(
            _from_bytes(driver.CUipcEventHandle, handle)), "cuIpcOpenEventHandle")

    def wait(self, stream: Optional[Stream] = None) -> None:
        """Order `stream`'s later work behind the event; without a stream, wait on the host."""
        if stream is None:
            check(driver.cuEventSynchronize(self.handle), "cuEventSynchronize")
        else:
            check(driver.cuStreamWaitEvent(stream.handle, self.handle, 0), "cuStreamWaitEvent")
