"""The head's side of the feature hand-off: a bundle in, its tensors out (inline or leased).

`open(buffer)` returns a `Received` to use in a `with` block: inside it `bundle` and `arrays`
are valid (for shared memory and CUDA IPC the slot stays leased, so the producer cannot rewrite
it). Bad
bundles raise BundleError (StaleHandle, ForeignHandle for handles); the caller drops the frame.
"""
from __future__ import annotations

from trt_infer_ros.transport.bundle import Bundle, BundleError, decode, tensor_views
from trt_infer_ros.transport.shm_ring import ForeignHandle, ShmRingReader


class Received:
    """`arrays`: host numpy arrays; `device_tensors`: the tensors in device memory (CUDA IPC
    bundles only, for runners that read the device directly), else None."""

    def __init__(self, bundle: Bundle, arrays: dict, lease, device_tensors=None) -> None:
        self.bundle, self.arrays, self._lease = bundle, arrays, lease
        self.device_tensors = device_tensors

    def close(self) -> None:
        self.arrays, self.device_tensors = {}, None
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
        self._device = None            # CudaRingReader, opened with the first CUDA IPC bundle

    def open(self, buffer) -> Received:
        bundle = decode(buffer)
        if bundle.kind == "inline":
            return Received(bundle, tensor_views(bundle.tensors, bundle.payload), None)
        if bundle.kind == "shm":
            lease = self._rings.lease(bundle.location, bundle.tensors)
            return Received(bundle, lease.arrays, lease)
        if bundle.kind == "cuda_ipc":
            lease = self._device_reader().lease(bundle.location, bundle.tensors)
            try:
                # host copies for the runners here, which read host arrays
                return Received(bundle, lease.arrays(), lease, lease.tensors)
            except BaseException:
                lease.release()
                raise
        raise BundleError(f"feature location {bundle.kind!r} is not one this node reads")

    def _device_reader(self):
        if self._device is None:
            try:
                from trt_infer_ros.cuda.context import CudaContext
                from trt_infer_ros.transport.cuda_ring import CudaRingReader
                self._device = CudaRingReader(CudaContext.primary())
            except Exception as err:       # no cuda-python, no GPU here
                raise ForeignHandle(f"CUDA IPC handle, but CUDA is not usable here: {err}") \
                    from None
        return self._device

    def close(self) -> None:
        self._rings.close()
        if self._device is not None:
            self._device.close()
            self._device = None
