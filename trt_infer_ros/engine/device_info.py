"""Which GPU an engine is built for: name and compute capability, read with cuda-python.

Engines are specific to the GPU model (compute capability) and the TensorRT version; the sidecar
records both, and loading compares them with this machine.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class DeviceInfo:
    gpu_name: str
    compute_capability: str          # "8.7" (Orin), "9.0" (H100), "unknown"

    def as_dict(self) -> dict:
        return asdict(self)


UNKNOWN = DeviceInfo("unknown", "unknown")


def current_device(device: int = 0) -> DeviceInfo:
    """The CUDA device's name and compute capability; UNKNOWN without cuda-python or a GPU."""
    try:
        from cuda.bindings import runtime as cudart  # noqa: PLC0415 - optional dependency
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[no-redef]  # older cuda-python layout
        except ImportError:
            return UNKNOWN
    err, props = cudart.cudaGetDeviceProperties(device)
    if int(err) != 0:
        return UNKNOWN
    name = props.name
    if isinstance(name, (bytes, bytearray)):
        name = name.split(b"\0", 1)[0].decode(errors="replace")
    return DeviceInfo(str(name).strip(), f"{props.major}.{props.minor}")
