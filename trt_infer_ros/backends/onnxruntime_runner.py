"""Runner on onnxruntime: CPUExecutionProvider, or CUDAExecutionProvider for device "CUDA"."""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from trt_infer_ros.backends.runner import BackendUnavailable

_PROVIDERS = {"CPU": "CPUExecutionProvider", "CUDA": "CUDAExecutionProvider"}
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
           "tensor(uint8)": np.uint8, "tensor(int32)": np.int32, "tensor(int64)": np.int64}


def onnxruntime_providers() -> list[str]:
    """Execution providers onnxruntime can use here; empty when it is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return []
    return list(onnxruntime.get_available_providers())


def cpus_allowed() -> Optional[int]:
    """How many CPUs this process may run on when that is fewer than the machine has (taskset,
    a container's cpuset), else None: onnxruntime's default then sizes its pool to the whole
    machine and its threads fight over the few CPUs allowed."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    return allowed if allowed < (os.cpu_count() or allowed) else None


def _load_cuda_libraries(ort) -> None:
    """onnxruntime-gpu (1.21+) finds CUDA and cuDNN installed as pip packages (nvidia-*) only
    after preload_dlls(); elsewhere it loads them from the system paths as before."""
    global _CUDA_PRELOADED
    if not _CUDA_PRELOADED and hasattr(ort, "preload_dlls"):
        _CUDA_PRELOADED = True
        try:
            ort.preload_dlls()
        except Exception:          # libraries the system provides are still found
            pass


_CUDA_PRELOADED = False


def open_session(model_path: str, options, providers: list):
    """An InferenceSession on `providers` (the first one required), or a clear error: an
    unreadable file as such, a provider that did not start as BackendUnavailable."""
    import onnxruntime as ort

    wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
    if wanted == "CUDAExecutionProvider":
        _load_cuda_libraries(ort)

    try:
        session = ort.InferenceSession(str(model_path), options, providers=providers)
    except Exception as exc:
        from trt_infer_ros.models.model_file import check_model_file, unreadable_onnx
        check_model_file(model_path)
        raise unreadable_onnx(model_path, exc) from None
    if wanted not in session.get_providers():
        # onnxruntime falls back to CPU quietly when the CUDA libraries fail to load.
        raise BackendUnavailable(f"onnxruntime could not start {wanted} (missing CUDA/cuDNN "
                                 f"libraries?); it would run on {session.get_providers()}")
    return session


def image_input(session):
    """The image input: the 4-D one (RT-DETR deploy exports add a target-size input)."""
    inputs = session.get_inputs()
    return next((i for i in inputs if len(i.shape) == 4), inputs[0])


def numpy_dtype(ort_type: str) -> np.dtype:
    """numpy dtype of an onnxruntime type string such as 'tensor(float)'."""
    if ort_type not in _DTYPES:
        raise BackendUnavailable(f"tensors of type {ort_type} are not supported")
    return np.dtype(_DTYPES[ort_type])


class OnnxRuntimeRunner:
    name = "onnxruntime"
    accepts_extra_inputs = True

    def __init__(self, model_path: str, device: Optional[str] = None,
                 intra_op_threads: Optional[int] = None):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailable(f"onnxruntime is not installed: {exc}") from exc
        self.device = (device or "CPU").upper()
        if self.device not in _PROVIDERS:
            raise BackendUnavailable(f"onnxruntime runs on CPU or CUDA, not {device!r}")
        provider = _PROVIDERS[self.device]
        if provider not in ort.get_available_providers():
            raise BackendUnavailable(f"onnxruntime has no {provider} here "
                                     f"(available: {ort.get_available_providers()})")
        options = ort.SessionOptions()
        threads = intra_op_threads or cpus_allowed()
        if threads:
            options.intra_op_num_threads = threads
        # Its pool threads spin while a run is on and stop when it returns: between camera
        # frames the cores go to publishing, DDS and sleep instead of spinning (no change in
        # latency measured on the node benchmark, less CPU burnt between frames).
        options.add_session_config_entry("session.force_spinning_stop", "1")
        # CPU stays last so an op the GPU provider lacks still runs.
        providers = [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]
        self._session = open_session(model_path, options, providers)
        inp = image_input(self._session)
        self.input_name = inp.name
        self.input_shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in inp.shape)
        self.input_dtype = numpy_dtype(inp.type)     # refused here, not on every frame
        self.output_names = [o.name for o in self._session.get_outputs()]

    def run(self, tensor: np.ndarray, extra_inputs=None) -> list[np.ndarray]:
        tensor = np.ascontiguousarray(tensor, dtype=self.input_dtype)
        feed = {self.input_name: tensor}
        if extra_inputs:
            feed.update(extra_inputs)
        return self._session.run(self.output_names, feed)

    def run_into(self, tensor: np.ndarray, outputs, extra_inputs=None) -> list[np.ndarray]:
        """run(), with the outputs named in `outputs` written straight into those arrays
        (C-contiguous, the output's shape and dtype: e.g. views of a shared-memory slot), and
        contiguous inputs bound where they lie: neither side is copied. Other outputs are
        allocated by onnxruntime. Returns every output in `output_names` order."""
        import onnxruntime as ort

        binding = self._session.io_binding()
        feed = {self.input_name: np.ascontiguousarray(tensor, dtype=self.input_dtype)}
        feed.update(extra_inputs or {})
        for name, value in feed.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(
                np.ascontiguousarray(value)))
        for name in self.output_names:
            out = outputs.get(name)
            if out is None:
                binding.bind_output(name)
            elif not out.flags.c_contiguous or not out.flags.writeable:
                raise ValueError(f"output {name!r}: the destination must be a writable "
                                 "C-contiguous array")
            else:
                binding.bind_ortvalue_output(name, ort.OrtValue.ortvalue_from_numpy(out))
        self._session.run_with_iobinding(binding)
        produced = binding.get_outputs()
        return [outputs[name] if outputs.get(name) is not None else produced[i].numpy()
                for i, name in enumerate(self.output_names)]

    def close(self) -> None:
        self._session = None

    def __repr__(self) -> str:
        return f"OnnxRuntimeRunner({self.device}, input {self.input_name}{list(self.input_shape)})"
