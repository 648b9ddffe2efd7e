"""The one protocol every inference backend implements."""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np


@runtime_checkable
class Runner(Protocol):
    """Runs one model on batch-1 inputs.

    `run` takes the preprocessed input tensor (shape and dtype as `input_shape`/`input_dtype`)
    and returns the model outputs as numpy arrays, in `output_names` order. Models with inputs
    besides the image (RT-DETR deploy exports: the target size) get them by name in
    `extra_inputs`; a runner that can feed them sets `accepts_extra_inputs = True`.
    """

    name: str                       # backend name, e.g. "onnxruntime"
    device: str                     # "CPU", "CUDA", "DLA0", ...
    input_name: str
    input_shape: tuple[int, ...]
    input_dtype: np.dtype
    output_names: Sequence[str]

    def run(self, tensor: np.ndarray, extra_inputs=None) -> list[np.ndarray]: ...

    def close(self) -> None: ...


class BackendUnavailable(RuntimeError):
    """Raised when a backend cannot run on this machine; the message says why."""
