"""Device and pinned host buffers with owned lifetimes.

Each buffer frees its memory exactly once: on `close()`, on leaving a `with` block, or when it
is garbage collected. Pinned buffers hand out numpy views; a view must not outlive its buffer.
"""
from __future__ import annotations

import ctypes
from typing import Optional

import numpy as np
from cuda.bindings import driver

from trt_infer_ros.cuda.context import CudaContext
from trt_infer_ros.cuda.errors import check
from trt_infer_ros.cuda.owned import OwnedHandle
from trt_infer_ros.cuda.stream import Stream


def _stream_handle(stream: Optional[Stream]):
    return stream.handle if stream is not None else driver.CUstream(0)


class DeviceBuffer(OwnedHandle):
    """`nbytes` of device memory (cuMemAlloc) in `context`."""

    _destroy = "cuMemFree"

    def __init__(self, context: CudaContext, nbytes: int) -> None:
        if nbytes <= 0:
            raise ValueError(f"buffer size must be positive, got {nbytes}")
        self.context = context
        self.nbytes = int(nbytes)
        context.activate()
        self.handle = check(driver.cuMemAlloc(self.nbytes), "cuMemAlloc")

    @property
    def ptr(self) -> int:
        if self.handle is None:
            raise ValueError("buffer is closed")
        return int(self.handle)

    def upload(self, host: np.ndarray, stream: Optional[Stream] = None, offset: int = 0,
               sync: bool = True) -> None:
        """Copy a host array into this buffer. `sync=False` leaves the copy in flight on `stream`
        (only valid for pinned memory that stays untouched until the stream is synchronized)."""
        host = np.ascontiguousarray(host)
        self._check_span(offset, host.nbytes)
        self.context.activate()
        check(driver.cuMemcpyHtoDAsync(self.ptr + offset, host.ctypes.data, host.nbytes,
                                       _stream_handle(stream)), "cuMemcpyHtoDAsync")
        if sync:
            check(driver.cuStreamSynchronize(_stream_handle(stream)), "cuStreamSynchronize")

    def download(self, out: np.ndarray, stream: Optional[Stream] = None, offset: int = 0,
                 sync: bool = True) -> np.ndarray:
        """Copy `out.nbytes` bytes from this buffer into the C-contiguous array `out`
        (`sync=False`: left in flight on `stream`; `out` must be pinned)."""
        if not out.flags.c_contiguous:
            raise ValueError("download target must be C-contiguous")
        self._check_span(offset, out.nbytes)
        self.context.activate()
        check(driver.cuMemcpyDtoHAsync(out.ctypes.data, self.ptr + offset, out.nbytes,
                                       _stream_handle(stream)), "cuMemcpyDtoHAsync")
        if sync:
            check(driver.cuStreamSynchronize(_stream_handle(stream)), "cuStreamSynchronize")
        return out

    def fill_u8(self, value: int, stream: Optional[Stream] = None) -> None:
        """Set every byte to `value` (tests poison outputs with this)."""
        self.context.activate()
        check(driver.cuMemsetD8Async(self.ptr, value & 0xFF, self.nbytes, _stream_handle(stream)),
              "cuMemsetD8Async")
        if stream is None:
            check(driver.cuStreamSynchronize(driver.CUstream(0)), "cuStreamSynchronize")

    def _check_span(self, offset: int, nbytes: int) -> None:
        if offset < 0 or offset + nbytes > self.nbytes:
            raise ValueError(f"copy of {nbytes} bytes at {offset} exceeds buffer of {self.nbytes}")


class PinnedBuffer(OwnedHandle):
    """`nbytes` of page-locked host memory (cuMemHostAlloc); copies from it can be async and
    can be captured into CUDA graphs."""

    _destroy = "cuMemFreeHost"

    def __init__(self, context: CudaContext, nbytes: int) -> None:
        if nbytes <= 0:
            raise ValueError(f"buffer size must be positive, got {nbytes}")
        self.context = context
        self.nbytes = int(nbytes)
        context.activate()
        self.handle = int(check(driver.cuMemHostAlloc(self.nbytes, 0), "cuMemHostAlloc"))
        self._carray = (ctypes.c_uint8 * self.nbytes).from_address(self.handle)

    @property
    def ptr(self) -> int:
        if self.handle is None:
            raise ValueError("buffer is closed")
        return self.handle

    def view(self, dtype=np.uint8, shape=None, offset: int = 0) -> np.ndarray:
        """A numpy view of the pinned bytes (no copy)."""
        dtype = np.dtype(dtype)
        if self.handle is None:
            raise ValueError("buffer is closed")
        count = (self.nbytes - offset) // dtype.itemsize if shape is None else int(np.prod(shape))
        if offset + count * dtype.itemsize > self.nbytes:
            raise ValueError("view exceeds pinned buffer")
        flat = np.frombuffer(self._carray, dtype=dtype, count=count, offset=offset)
        return flat if shape is None else flat.reshape(shape)

    def close(self) -> None:
        self._carray = None     # no view may reach the memory once it is freed
        super().close()


def copy_async(dst_ptr: int, src_ptr: int, nbytes: int, stream: Stream) -> None:
    """Asynchronous copy between any two addresses (unified addressing picks the direction)."""
    check(driver.cuMemcpyAsync(dst_ptr, src_ptr, nbytes, stream.handle), "cuMemcpyAsync")


def copy_between_contexts_async(dst_ptr: int, dst_context, src_ptr: int, src_context,
                                nbytes: int, stream: Stream) -> None:
    """Device-to-device copy from memory of one context to memory of another (on one GPU too:
    a context cannot read another's allocations), queued on `stream` (of the destination's)."""
    check(driver.cuMemcpyPeerAsync(dst_ptr, dst_context.handle, src_ptr, src_context.handle,
                                   nbytes, stream.handle), "cuMemcpyPeerAsync")


def memset_u32_async(ptr: int, value: int, count: int, stream: Stream) -> None:
    check(driver.cuMemsetD32Async(ptr, value & 0xFFFFFFFF, count, stream.handle), "cuMemsetD32Async")
