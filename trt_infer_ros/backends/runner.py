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


def fixed_input_shape(declared, given, model_path: str, input_name: str) -> tuple[int, ...]:
    """The declared input shape with its dynamic dims filled from `given` (the adapter's
    resolved shape); the static dims must agree. Refused when a dim stays dynamic."""
    shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in declared)
    if given is not None:
        given = tuple(int(d) for d in given)
        if len(given) != len(shape) or any(d > 0 and d != g for d, g in zip(shape, given)):
            raise ValueError(f"{model_path}: input {input_name} is {list(declared)}; shape "
                             f"{list(given)} does not fit it")
        shape = given
    if any(d <= 0 for d in shape):
        raise ValueError(f"{model_path}: input {input_name} has dynamic dims {list(declared)}; "
                         "give input_size")
    return shape
