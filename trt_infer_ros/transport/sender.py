"""The backbone's side of the feature hand-off: which path each frame takes.

Modes: "shared_memory" (a /dev/shm ring, only a handle in the message), "inline" (the tensor
bytes in the message) and "auto": shared memory while it works and no reader on another host
asked for inline bytes in the last INLINE_HOLD_S seconds, else inline; "cuda_ipc" (a ring of
device buffers, cuda_ring.py), chosen by "auto" too when the backbone's runner leaves its
outputs on the device, falling back to shared memory where CUDA IPC is unavailable (Tegra, no
CUDA, a reader here that cannot open the handles). Every change of path is said once via `log`.

Zero copy: `frame(specs)` leases a slot before the backbone runs, the runner writes its outputs
into the slot's views (`OutgoingFrame.arrays`), and `bundle()` publishes the slot; runners that
cannot write there get their outputs copied in (`encode`).
"""
from __future__ import annotations

import time
from typing import Callable, Mapping, Optional

import numpy as np

from trt_infer_ros.transport.bundle import encode_handle, encode_inline, plan_layout
from trt_infer_ros.transport.host import host_id
from trt_infer_ros.transport.shm_ring import RingFull, ShmRingWriter

MODES = ("auto", "shared_memory", "cuda_ipc", "inline")
INLINE_HOLD_S = 3.0


class FeatureSender:
    def __init__(self, mode: str, slots: int, log: Callable[[str], None],
                 device_outputs: bool = False) -> None:
        """`device_outputs`: the backbone's runner leaves its outputs in device memory (a GPU
        runner); "auto" then hands them over by CUDA IPC, falling back to shared memory."""
        if mode not in MODES:
            raise ValueError(f"transport must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode, self.slots, self._log = mode, slots, log
        self._device_wanted = mode == "cuda_ipc" or (mode == "auto" and device_outputs)
        self._ring = None                  # ShmRingWriter or CudaRingWriter
        self._ring_failed: Optional[str] = None
        self._inline_until = 0.0
        self._path = ""
        self._plan = (None, [], 0)
        self.seq = 0
        self.ring_full = 0           # frames skipped because every slot was being read

    @property
    def ring(self):
        return self._ring

    def inline_requested(self, host: str) -> None:
        """A reader on `host` cannot use our shared memory (or device memory)."""
        if self._ring is not None and getattr(self._ring, "kind", "") == "cuda_ipc" \
                and host == host_id():
            self._device_wanted = False        # a reader here without CUDA: shared memory
            self._log("a reader on this host cannot open CUDA IPC handles; features go "
                      "through shared memory from now on")
            self._ring.close()
            self._ring = None
            return
        if self.mode == "auto":
            if time.monotonic() > self._inline_until:
                self._say(f"inline (a reader on {host} cannot map this host's shared memory)")
            self._inline_until = time.monotonic() + INLINE_HOLD_S

    def frame(self, specs: Optional[Mapping] = None) -> "OutgoingFrame":
        """Start one frame. With the backbone's output `specs` (name -> shape and dtype) and the
        ring in use, the frame holds a leased slot whose views (`arrays`) the runner writes
        its outputs into, so nothing is copied; `skipped` when every slot is being read."""
        self.seq += 1
        if specs is None or not self._ring_in_use():
            return OutgoingFrame(self, None)
        if self._plan[0] is not specs:             # the same layout frame after frame
            self._plan = (specs, *plan_layout(specs))
        _, infos, size = self._plan
        ring = self._ring_for(size)
        if ring is None:
            return OutgoingFrame(self, None)
        try:
            return OutgoingFrame(self, ring.reserve(infos))
        except RingFull:
            self.ring_full += 1
            return OutgoingFrame(self, None, skipped=True)

    def encode(self, stamp, frame_id: str, transform, arrays):
        """The bundle for one frame whose tensors are elsewhere (copied into a slot or
        inline), or None when the frame is skipped (every slot busy)."""
        return self.frame().bundle(stamp, frame_id, transform, arrays)

    def _ring_in_use(self) -> bool:
        return self.mode != "inline" and time.monotonic() > self._inline_until

    def _bundle(self, frame: "OutgoingFrame", stamp, frame_id, transform, arrays):
        slot = frame.slot
        if slot is None:
            infos, size = plan_layout(arrays)
            ring = self._ring_for(size) if self._ring_in_use() else None
            if ring is None:
                if self._path != "inline":
                    self._say("inline")
                return encode_inline(self.seq, stamp, frame_id, transform, arrays)
            try:
                slot = frame.slot = ring.reserve(infos)
            except RingFull:
                self.ring_full += 1
                return None
        if hasattr(slot, "upload"):              # a device slot: host outputs go up once
            slot.upload(arrays)
        else:
            for name, view in slot.arrays.items():
                if not np.shares_memory(arrays[name], view):    # a runner that cannot write
                    view[...] = arrays[name]                     # into the slot: one copy
        location = slot.commit()
        if self._path != self._ring.description.split(" ")[0]:
            self._say(self._ring.description)
        return encode_handle(self.seq, stamp, frame_id, transform, slot.infos, location)

    def _ring_for(self, size: int):
        if self._ring is not None and self._ring.slot_size >= size:
            return self._ring
        if self._ring is not None:
            self._ring.close()          # features grew (a new input size): a bigger ring
            self._ring = None
        if self._device_wanted:
            self._ring = self._device_ring(size)
            if self._ring is not None:
                return self._ring
        if self._ring_failed:
            return None
        try:
            self._ring = ShmRingWriter(self.slots, size)
        except OSError as err:
            self._ring_failed = f"{err.strerror or err}"
            if self.mode == "shared_memory":
                raise
            self._log(f"shared memory unavailable ({self._ring_failed}); features go inline")
        return self._ring

    def _device_ring(self, size: int):
        """A CUDA IPC ring, or None (said once) where CUDA or its IPC is not usable."""
        try:
            from trt_infer_ros.cuda.context import CudaContext
            from trt_infer_ros.transport.cuda_ring import CudaRingWriter
            return CudaRingWriter(CudaContext.primary(), self.slots, size)
        except Exception as err:           # no CUDA, Tegra (no IPC), out of device memory
            self._device_wanted = False
            self._log(f"CUDA IPC not used ({err}); features go through shared memory")
            return None

    def _say(self, path: str) -> None:
        """Log `path` when its first word (the kind of path) changes."""
        kind = path.split(" ")[0]
        if kind != self._path:
            self._log(f"features go {path}")
        self._path = kind

    def close(self) -> None:
        if self._ring is not None:
            self._ring.close()
            self._ring = None


class OutgoingFrame:
    """One frame from FeatureSender.frame(): `arrays` (slot views to write the outputs into, or
    None), `skipped`, and `bundle(...)` -> the message bytes. Leaving a `with` block without a
    bundle frees the slot."""

    def __init__(self, sender: FeatureSender, slot, skipped: bool = False) -> None:
        self._sender, self.slot, self.skipped = sender, slot, skipped
        # host views of a shared-memory slot; a device slot's DeviceTensors in device_tensors
        self.arrays = getattr(slot, "arrays", None)
        self.device_tensors = getattr(slot, "tensors", None)

    def bundle(self, stamp, frame_id: str, transform, arrays):
        """The bundle carrying `arrays` (the outputs; slot views need no copy)."""
        if self.skipped:
            return None
        try:
            return self._sender._bundle(self, stamp, frame_id, transform, arrays)
        finally:
            self.close()

    def close(self) -> None:
        if self.slot is not None:
            self.slot.abort()          # no-op once committed
            self.slot = self.arrays = self.device_tensors = None

    def __enter__(self) -> "OutgoingFrame":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
