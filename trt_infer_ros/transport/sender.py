"""The backbone's side of the feature hand-off: which path each frame takes.

Modes: "shared_memory" (a /dev/shm ring, only a handle in the message), "inline" (the tensor
bytes in the message) and "auto": shared memory while it works and no reader on another host
asked for inline bytes in the last INLINE_HOLD_S seconds, else inline. Every change of path is
said once through `log`.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

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
        self.seq = 0
        self.ring_full = 0           # frames skipped because every slot was being read

    def inline_requested(self, host: str) -> None:
        """A reader on `host` cannot use our shared memory."""
        if self.mode == "auto":
            if time.monotonic() > self._inline_until:
                self._say(f"inline (a reader on {host} cannot map this host's shared memory)")
            self._inline_until = time.monotonic() + INLINE_HOLD_S

    def encode(self, stamp, frame_id: str, transform, arrays):
        """The bundle for one frame, or None when the frame is skipped (every slot busy)."""
        self.seq += 1
        infos, size = plan_layout(arrays)
        ring = self._ring_for(size) if self.mode != "inline" and \
            time.monotonic() > self._inline_until else None
        if ring is None:
            self._say("inline")
            return encode_inline(self.seq, stamp, frame_id, transform, arrays)
        try:
            location = ring.write(arrays, infos)
        except RingFull:
            self.ring_full += 1
            return None
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
        if path.split(" ")[0] != self._path.split(" ")[0]:
            self._log(f"features go {path}")
        self._path = path

    def close(self) -> None:
        if self._ring is not None:
            self._ring.close()
            self._ring = None
