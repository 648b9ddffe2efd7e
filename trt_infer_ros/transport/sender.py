"""The backbone's side of the feature hand-off: which path each frame takes.

Modes: "shared_memory" (a /dev/shm ring, only a handle in the message), "inline" (the tensor
bytes in the message) and "auto": shared memory while it works and no reader on another host
asked for inline bytes in the last INLINE_HOLD_S seconds, else inline. Every change of path is
said once through `log`.

Zero copy: `frame(specs)` leases a slot before the backbone runs, the runner writes its outputs
into the slot's views (`OutgoingFrame.arrays`), and `bundle()` publishes the slot; runners that
cannot write there get their outputs copied in (`encode`).
"""
from __future__ import annotations

import time
from typing import Callable, Mapping, Optional

import numpy as np

from trt_infer_ros.transport.bundle import encode_handle, encode_inline, plan_layout
from trt_infer_ros.transport.shm_ring import RingFull, ShmRingWriter

MODES = ("auto", "shared_memory", "inline")
INLINE_HOLD_S = 3.0


class FeatureSender:
    def __init__(self, mode: str, slots: int, log: Callable[[str], None]) -> None:
        if mode not in MODES:
            raise ValueError(f"transport must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode, self.slots, self._log = mode, slots, log
        self._ring: Optional[ShmRingWriter] = None
        self._ring_failed: Optional[str] = None
        self._inline_until = 0.0
        self._path = ""
        self._plan = (None, [], 0)
        self.seq = 0
        self.ring_full = 0           # frames skipped because every slot was being read

    @property
    def ring(self) -> Optional[ShmRingWriter]:
        return self._ring

    def inline_requested(self, host: str) -> None:
        """A reader on `host` cannot use our shared memory."""
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
            return OutgoingFrame(self, ring.reserve(infos), infos)
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
        if frame.slot is not None:
            slot, infos = frame.slot, frame.infos
            for name, view in slot.arrays.items():
                if not np.shares_memory(arrays[name], view):    # a runner that cannot write
                    view[...] = arrays[name]                     # into the slot: one copy
            return self._handle(slot.commit(), stamp, frame_id, transform, infos)
        infos, size = plan_layout(arrays)
        ring = self._ring_for(size) if self._ring_in_use() else None
        if ring is None:
            if self._path != "inline":
                self._say("inline")
            return encode_inline(self.seq, stamp, frame_id, transform, arrays)
        try:
            location = ring.write(arrays, infos)
        except RingFull:
            self.ring_full += 1
            return None
        return self._handle(location, stamp, frame_id, transform, infos)

    def _handle(self, location, stamp, frame_id, transform, infos):
        if self._path != "shared":
            ring = self._ring
            self._say(f"shared memory ({ring.slot_count} slots of {ring.slot_size} bytes in "
                      f"{ring.path})")
        return encode_handle(self.seq, stamp, frame_id, transform, infos, location)

    def _ring_for(self, size: int) -> Optional[ShmRingWriter]:
        if self._ring is not None and self._ring.slot_size >= size:
            return self._ring
        if self._ring_failed:
            return None
        if self._ring is not None:
            self._ring.close()          # features grew (a new input size): a bigger ring
            self._ring = None
        try:
            self._ring = ShmRingWriter(self.slots, size)
        except OSError as err:
            self._ring_failed = f"{err.strerror or err}"
            if self.mode == "shared_memory":
                raise
            self._log(f"shared memory unavailable ({self._ring_failed}); features go inline")
        return self._ring

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

    def __init__(self, sender: FeatureSender, slot, infos=None, skipped: bool = False) -> None:
        self._sender, self.slot, self.infos, self.skipped = sender, slot, infos, skipped
        self.arrays = slot.arrays if slot is not None else None

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
            self.slot = self.arrays = None

    def __enter__(self) -> "OutgoingFrame":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
