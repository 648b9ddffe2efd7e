"""Runner on tinygrad's ONNX interpreter; TinyJit replays the compiled kernels after warm-up.

The device comes from the `device` argument, else the DEV environment variable, else CPU.
tinygrad's CPU backend compiles kernels with clang, so CPU needs clang on PATH.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import sys
from typing import Optional

import numpy as np

from trt_infer_ros.backends.runner import BackendUnavailable
from trt_infer_ros.backends.tinygrad_ops import patch_onnx_ops


def tinygrad_device(device: Optional[str] = None) -> str:
    """The tinygrad device name to use: the argument, else $DEV, else CPU."""
    return (device or os.environ.get("DEV") or "CPU").upper()


def cuda_driver_present() -> bool:
    """Whether the CUDA driver library loads (cheap; tinygrad's CUDA device needs it)."""
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def _import_tinygrad(device: str):
    if device.upper().startswith("DLA"):
        raise BackendUnavailable(f"{device} is a DLA core, which only TensorRT reaches; use "
                                 "backend tensorrt (or device CPU/CUDA for tinygrad)")
    if device.startswith("CPU") and shutil.which("clang") is None:
        raise BackendUnavailable("tinygrad on CPU needs clang, which is not installed "
                                 "(apt-get install clang)")
    if device.startswith(("CUDA", "NV")) and not cuda_driver_present():
        raise BackendUnavailable(f"tinygrad on {device} needs the CUDA driver (libcuda), not found")
    first_import = "tinygrad" not in sys.modules and "DEV" not in os.environ
    if first_import:
        # tinygrad probes for a default device on import; point it at ours instead.
        os.environ["DEV"] = device
    try:
        try:
            from tinygrad import Device, Tensor, TinyJit
            from tinygrad.helpers import Context
            from tinygrad.nn.onnx import OnnxRunner
        except ImportError as exc:
            raise BackendUnavailable(f"tinygrad is not installed: {exc}") from exc
        try:
            Device[device]                 # opens the device: fails here if it cannot run
        except Exception as exc:           # an unknown device name fails as an ImportError too
            raise BackendUnavailable(f"tinygrad cannot open device {device}: {exc}") from exc
    finally:
        if first_import:
            os.environ.pop("DEV", None)
    return Tensor, TinyJit, OnnxRunner, Context


def refuse_extra_inputs(model) -> None:
    """This runner feeds one image tensor: a model with more inputs is refused by name."""
    names = list(model.graph_inputs)
    if len(names) != 1:
        count = {2: "two", 3: "three"}.get(len(names), str(len(names)))
        raise BackendUnavailable(f"this model has {count} inputs ({', '.join(names)}); tinygrad "
                                 f"feeds the image only: use backend onnxruntime")


class TinygradRunner:
    name = "tinygrad"

    def __init__(self, model_path: str, device: Optional[str] = None, jit: bool = True):
        self.device = tinygrad_device(device)
        Tensor, TinyJit, OnnxRunner, Context = _import_tinygrad(self.device)
        self._Tensor = Tensor
        # Ops create constants on the default device: make that ours while the model runs.
        self._on_device = lambda: Context(DEV=self.device)
        with self._on_device():
            model = OnnxRunner(str(model_path))
            refuse_extra_inputs(model)
            model = model.to(self.device)
        patch_onnx_ops(model)
        (self.input_name, spec), = model.graph_inputs.items()
        self.input_shape = tuple(d if isinstance(d, int) else -1 for d in spec.shape)
        self.input_dtype = np.dtype(spec.dtype.fmt) if spec.dtype.fmt else np.dtype(np.float32)
        self.output_names = list(model.graph_outputs)

        def forward(x):
            outs = model({self.input_name: x})
            return [outs[n].realize() for n in self.output_names]

        # The JIT records kernels on its 2nd call and replays them (as CUDA graphs on CUDA) after.
        self._forward = TinyJit(forward) if jit else forward

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        with self._on_device():
            x = self._Tensor(np.ascontiguousarray(tensor, dtype=self.input_dtype),
                             device=self.device).realize()
            # .numpy() copies out: the JIT reuses its output buffers on the next call.
            return [o.numpy() for o in self._forward(x)]

    def close(self) -> None:
        self._forward = None

    def __repr__(self) -> str:
        return f"TinygradRunner({self.device}, input {self.input_name}{list(self.input_shape)})"
