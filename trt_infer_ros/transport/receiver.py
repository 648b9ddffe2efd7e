"""The head's side of the feature hand-off: a bundle in, its tensors out (inline or leased).

`open(buffer)` returns a `Received` to use in a `with` block: inside it `bundle` and `arrays`
are valid (for shared memory the slot stays leased, so the producer cannot rewrite it). Bad
bundles raise BundleError (StaleHandle, ForeignHandle for handles); the caller drops the frame.
"""
from __future__ import annotations

from typing import Optional

from trt_infer_ros.transport.bundle import Bundle, BundleError, decode, tensor_views
from trt_infer_ros.transport.shm_ring import ShmRingReader, SlotLease


class Received:
    def __init__(self, bundle: Bundle, arrays: dict, lease: Optional[SlotLease]) -> None:
        self.bundle, self.arrays, self._lease = bundle, arrays, lease

    def close(self) -> None:
        self.arrays = {}
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def __enter__(self) -> "Received":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FeatureReceiver:
    def __init__(self) -> None:
        self._rings = ShmRingReader()

    def open(self, buffer) -> Received:
        bundle = decode(buffer)
        if bundle.kind == "inline":
            return Received(bundle, tensor_views(bundle.tensors, bundle.payload), None)
        if bundle.kind == "shm":
            lease = self._rings.lease(bundle.location, bundle.tensors)
            return Received(bundle, lease.arrays, lease)
        raise BundleError(f"feature location {bundle.kind!r} is not one this node reads")

    def close(self) -> None:
        self._rings.close()
