"""A ring of device buffers between one producer and its readers on one host (CUDA IPC).

The producer allocates `slot_count` device buffers once and exports each buffer's IPC handle
and an interprocess event once; a handle bundle names the slot and carries both handles, and a
reader opens each buffer once and keeps it (by ring id and slot). Slot leases and frame
sequences live in a header-only /dev/shm ring (shm_ring.py), so the rules are the shared-memory
ring's: a slot a reader holds is never rewritten, the frame is skipped when every slot is held,
and stale, replaced-ring or other-host handles are refused.

Ordering: the producer records the slot's event on its stream after writing the tensors, then
publishes; a reader makes its stream wait on that event (or waits on the host), and releases
its lease only once its reads of the slot have finished (its stream synchronized).

Location: {"kind": "cuda_ipc", "path", "ring_id", "slot", "slot_seq", "host" (as "shm"),
"memory": the slot buffer's IPC handle (hex), "event": the slot event's IPC handle (hex),
"size": the buffer's bytes}; tensor offsets are relative to the buffer's start.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
from cuda.bindings import driver

from trt_infer_ros.cuda.buffers import DeviceBuffer
from trt_infer_ros.cuda.context import CudaContext
from trt_infer_ros.cuda.errors import check
from trt_infer_ros.cuda.ipc import (InterprocessEvent, IpcMemory, OpenedEvent, export_memory,
                                    ipc_unsupported_reason)
from trt_infer_ros.cuda.stream import Stream
from trt_infer_ros.transport.bundle import ALIGN, BundleError, check_fits
from trt_infer_ros.transport.shm_ring import ShmRingReader, ShmRingWriter, StaleHandle

KIND = "cuda_ipc"


class IpcUnsupported(RuntimeError):
    """CUDA IPC cannot be used on this device (Tegra, no unified addressing); says why."""


class DeviceTensor(NamedTuple):
    """A tensor in device memory: address, dtype, shape, bytes."""
    ptr: int
    dtype: np.dtype
    shape: tuple
    nbytes: int

    def download(self, stream: Optional[Stream] = None) -> np.ndarray:
        """A host copy (for a runner that reads host arrays)."""
        out = np.empty(self.shape, self.dtype)
        handle = stream.handle if stream is not None else driver.CUstream(0)
        check(driver.cuMemcpyDtoHAsync(out.ctypes.data, self.ptr, self.nbytes, handle),
              "cuMemcpyDtoHAsync")
        check(driver.cuStreamSynchronize(handle), "cuStreamSynchronize")
        return out


def _device_tensors(base: int, infos) -> dict:
    return {i.name: DeviceTensor(base + i.offset, i.dtype, i.shape, i.nbytes) for i in infos}


class CudaRingWriter:
    """The producer's side: `reserve(infos)` -> CudaSlotWrite (device tensors to fill)."""

    def __init__(self, context: CudaContext, slot_count: int, slot_size: int) -> None:
        reason = ipc_unsupported_reason(context)
        if reason:
            raise IpcUnsupported(reason)
        self.context = context
        self.slot_count = slot_count
        self.slot_size = (slot_size + ALIGN - 1) // ALIGN * ALIGN
        self._header = ShmRingWriter(slot_count, 0)       # leases and sequences only
        self.path, self.ring_id = self._header.path, self._header.ring_id
        try:
            self.buffers = [DeviceBuffer(context, self.slot_size) for _ in range(slot_count)]
            self.events = [InterprocessEvent(context) for _ in range(slot_count)]
            # exported once per buffer: every handle bundle carries the same bytes
            self._handles = [(export_memory(b).hex(), e.ipc_handle.hex())
                             for b, e in zip(self.buffers, self.events)]
        except Exception:
            self.close()
            raise

    kind = KIND

    @property
    def description(self) -> str:
        return (f"CUDA IPC ({self.slot_count} device buffers of {self.slot_size} bytes on "
                f"{self.context.name}, leases in {self.path})")

    def reserve(self, infos) -> "CudaSlotWrite":
        size = max((i.offset + i.nbytes for i in infos), default=0)
        if size > self.slot_size:
            raise ValueError(f"frame of {size} bytes exceeds the slot size {self.slot_size}")
        return CudaSlotWrite(self, self._header.acquire(), infos, size)

    def _publish(self, slot: int, size: int, stream: Optional[Stream]) -> dict:
        self.events[slot].record(stream)             # readers' streams wait on the writes
        location = self._header.publish(slot, size, KIND)
        memory, event = self._handles[slot]
        location.update(memory=memory, event=event, size=self.slot_size)
        return location

    def close(self) -> None:
        for obj in getattr(self, "events", []) + getattr(self, "buffers", []):
            obj.close()
        self.events, self.buffers = [], []
        self._header.close()


class CudaSlotWrite:
    """One device slot being written: `tensors` (name -> DeviceTensor), `upload(arrays)` for
    host outputs, then `commit(stream)` -> location. Without commit the slot stays empty."""

    def __init__(self, ring: CudaRingWriter, slot: int, infos, size: int) -> None:
        self._ring, self.slot, self._size, self.infos = ring, slot, size, infos
        self.tensors = _device_tensors(ring.buffers[slot].ptr, infos)

    def upload(self, arrays, stream: Optional[Stream] = None) -> None:
        """Copy host arrays in (runners whose outputs are on the host)."""
        buffer = self._ring.buffers[self.slot]
        for info in self.infos:
            buffer.upload(np.ascontiguousarray(arrays[info.name], info.dtype), stream,
                          info.offset)

    def commit(self, stream: Optional[Stream] = None) -> dict:
        """Publish the slot once the writes queued on `stream` (default stream: None) are
        recorded; the reader waits for them on the device."""
        ring, self._ring = self._ring, None
        if ring is None:
            raise RuntimeError("slot already committed or abandoned")
        return ring._publish(self.slot, self._size, stream)

    def abort(self) -> None:
        if self._ring is not None:
            ring, self._ring = self._ring, None
            ring._header.abandon(self.slot)

    def __enter__(self) -> "CudaSlotWrite":
        return self

    def __exit__(self, *exc) -> None:
        self.abort()


class _Opened(NamedTuple):
    memory: IpcMemory
    event: OpenedEvent
    size: int


class DeviceSlotLease:
    """A reader's hold on one device slot: `tensors` valid until release()."""

    def __init__(self, reader: "CudaRingReader", ring, slot: int, tensors: dict) -> None:
        self._reader, self._ring, self._slot, self.tensors = reader, ring, slot, tensors

    def arrays(self, stream: Optional[Stream] = None) -> dict:
        """Host copies of the tensors (for runners that read host arrays)."""
        return {name: t.download(stream) for name, t in self.tensors.items()}

    def release(self, stream: Optional[Stream] = None) -> None:
        """Free the slot; with `stream`, after the reads queued on it have finished."""
        if self._ring is None:
            return
        if stream is not None:
            stream.synchronize()
        self.tensors = {}
        ShmRingReader.release(self._ring, self._slot)
        self._ring = None

    def __enter__(self) -> "DeviceSlotLease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class CudaRingReader:
    """The consumer's side: `lease(location, infos, stream)` -> DeviceSlotLease."""

    def __init__(self, context: CudaContext) -> None:
        self.context = context
        self._records = ShmRingReader()
        self._opened: dict[tuple, _Opened] = {}       # (ring id, slot) -> mapped buffer, event

    def lease(self, location: dict, infos, stream: Optional[Stream] = None) -> DeviceSlotLease:
        ring, slot, used = self._records.hold(location)
        try:
            check_fits(infos, used)
            opened = self._open(location, ring.ring_id, slot)
            check_fits(infos, opened.size)
            opened.event.wait(stream)        # the producer's writes come first
            return DeviceSlotLease(self, ring, slot, _device_tensors(opened.memory.ptr, infos))
        except BaseException:
            ShmRingReader.release(ring, slot)
            raise

    def _open(self, location: dict, ring_id: int, slot: int) -> _Opened:
        key = (ring_id, slot)
        opened = self._opened.get(key)
        if opened is not None:
            return opened
        # A new ring (the producer restarted): mappings of the old one are closed.
        for old in [k for k in self._opened if k[0] != ring_id]:
            self._close(self._opened.pop(old))
        try:
            memory_handle = bytes.fromhex(str(location["memory"]))
            event_handle = bytes.fromhex(str(location["event"]))
            size = int(location["size"])
        except (KeyError, ValueError) as err:
            raise BundleError(f"bad cuda_ipc handle: {err}") from None
        try:
            memory = IpcMemory(self.context, memory_handle)
        except Exception as err:
            raise StaleHandle(f"device buffer of slot {slot} cannot be opened: {err}") from None
        try:
            event = OpenedEvent(self.context, event_handle)
        except Exception as err:
            memory.close()
            raise StaleHandle(f"event of slot {slot} cannot be opened: {err}") from None
        self._opened[key] = opened = _Opened(memory, event, size)
        return opened

    @staticmethod
    def _close(opened: _Opened) -> None:
        opened.event.close()
        opened.memory.close()

    def close(self) -> None:
        for opened in self._opened.values():
            self._close(opened)
        self._opened.clear()
        self._records.close()
