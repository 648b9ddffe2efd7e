"""Streams and events with owned lifetimes."""
from __future__ import annotations

from cuda.bindings import driver

from trt_infer_ros.cuda.context import CudaContext
from trt_infer_ros.cuda.errors import check
from trt_infer_ros.cuda.owned import OwnedHandle


class Stream(OwnedHandle):
    """A CUDA stream. `blocking=True` keeps the legacy default-stream ordering, which runners
    that launch on the default stream (tinygrad) rely on; otherwise the stream is non-blocking."""

    _destroy = "cuStreamDestroy"

    def __init__(self, context: CudaContext, blocking: bool = False) -> None:
        self.context = context
        context.activate()
        flags = (driver.CUstream_flags.CU_STREAM_DEFAULT if blocking
                 else driver.CUstream_flags.CU_STREAM_NON_BLOCKING)
        self.handle = check(driver.cuStreamCreate(int(flags)), "cuStreamCreate")

    @property
    def ptr(self) -> int:
        return int(self.handle)

    def synchronize(self) -> None:
        check(driver.cuStreamSynchronize(self.handle), "cuStreamSynchronize")

    def wait(self, event: "Event") -> None:
        check(driver.cuStreamWaitEvent(self.handle, event.handle, 0), "cuStreamWaitEvent")


class Event(OwnedHandle):
    """A CUDA event; timing-enabled unless `timing=False`."""

    _destroy = "cuEventDestroy"

    def __init__(self, context: CudaContext, timing: bool = True) -> None:
        self.context = context
        context.activate()
        flags = (driver.CUevent_flags.CU_EVENT_DEFAULT if timing
                 else driver.CUevent_flags.CU_EVENT_DISABLE_TIMING)
        self.handle = check(driver.cuEventCreate(int(flags)), "cuEventCreate")

    def record(self, stream: Stream) -> None:
        check(driver.cuEventRecord(self.handle, stream.handle), "cuEventRecord")

    def synchronize(self) -> None:
        check(driver.cuEventSynchronize(self.handle), "cuEventSynchronize")

    def elapsed_ms(self, end: "Event") -> float:
        return float(check(driver.cuEventElapsedTime(self.handle, end.handle), "cuEventElapsedTime"))
