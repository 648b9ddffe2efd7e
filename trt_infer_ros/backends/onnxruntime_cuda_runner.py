"""onnxruntime's CUDA provider as a GPU runner: our device buffers, our stream, no host wait.

The session is created with the runner's stream as its `user_compute_stream`, so its kernels
queue on the same stream as the frame pipeline's preprocessing and decode, and a run started with
`disable_synchronize_execution_providers` returns without waiting for them. The image input and
every output are bound once (I/O binding) to device buffers this runner owns, so their addresses
never change: after warm-up runs have sized onnxruntime's memory arena and picked its cuDNN
algorithms, a run can be stream-captured into the frame graph (`capture_mode = "stream"`: the
whole frame one CUDA graph). Where onnxruntime's run cannot be captured (a node on the CPU
provider copies through the host, say), the frame graph launches our graphs around an eager run
on the same stream, still without a host wait in between.

`precision="fp16"` runs an fp16 copy of the model (backends/float16.py: half-precision weights
and arithmetic, float32 inputs and outputs), so nothing else in the frame changes; whether its
detections stay within tolerance is checked by the pipeline that chooses it (pipeline/precision.py).

Models whose output shapes change from frame to frame (NMS inside the graph) are refused: the
frame pipeline needs outputs of a fixed size. They run on the CPU-side pipeline instead, where
onnxruntime's CUDA provider still serves them through `OnnxRuntimeRunner`.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from trt_infer_ros.backends.onnxruntime_runner import (numpy_dtype, onnxruntime_providers,
                                                       open_session)
from trt_infer_ros.backends.runner import BackendUnavailable, fixed_input_shape

WARMUP_RUNS = 3          # sizes the memory arena and runs cuDNN's algorithm search before capture
PROVIDER = "CUDAExecutionProvider"


class OnnxRuntimeCudaRunner:
    name = "onnxruntime"
    device = "CUDA"
    capture_mode = "stream"

    def __init__(self, model_path: str, input_shape: Optional[tuple[int, ...]] = None,
                 device_ordinal: int = 0, precision: str = "fp32") -> None:
        from trt_infer_ros.cuda.context import CudaContext, cuda_unavailable_reason
        from trt_infer_ros.cuda.stream import Stream

        reason = cuda_unavailable_reason()
        if reason:
            raise BackendUnavailable(f"onnxruntime CUDA needs a CUDA GPU: {reason}")
        if PROVIDER not in onnxruntime_providers():
            raise BackendUnavailable("onnxruntime has no CUDA provider here (the onnxruntime-gpu "
                                     "package brings it)")
        if precision not in ("fp32", "fp16"):
            raise ValueError(f"precision {precision!r}: fp32 or fp16")
        import onnxruntime as ort

        self.precision = precision
        if precision == "fp16":
            from trt_infer_ros.backends.float16 import float16_model_path
            session_path = float16_model_path(model_path)
        else:
            session_path = model_path
        self.context = CudaContext.primary(device_ordinal)
        self.stream = Stream(self.context)
        self._buffers: list = []
        self._session = None
        try:
            self._open(ort, session_path, model_path, input_shape, device_ordinal)
        except BaseException:
            self.close()
            raise
        self.selection = (f"onnxruntime CUDA {precision} (I/O bound to device buffers, kernels on "
                          "the frame stream)")

    def _open(self, ort, session_path: str, model_path: str, input_shape, ordinal: int) -> None:
        from trt_infer_ros.cuda.buffers import DeviceBuffer

        cuda_options = {"device_id": str(ordinal), "user_compute_stream": str(self.stream.ptr)}
        self._session = open_session(session_path, ort.SessionOptions(),
                                     [(PROVIDER, cuda_options), "CPUExecutionProvider"])
        given = self._session.get_provider_options().get(PROVIDER, {})
        if given.get("has_user_compute_stream") not in ("1", "true", "True"):
            raise BackendUnavailable("this onnxruntime does not take our CUDA stream "
                                     "(user_compute_stream); its runs could not be ordered with "
                                     "the frame pipeline's")
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            count = {2: "two", 3: "three"}.get(len(inputs), str(len(inputs)))
            raise BackendUnavailable(f"this model has {count} inputs "
                                     f"({', '.join(i.name for i in inputs)}); the GPU pipeline "
                                     "feeds the image only: it runs on the CPU-side pipeline")
        inp = inputs[0]
        self.input_name = inp.name
        self.input_shape = fixed_input_shape(inp.shape, input_shape, model_path, inp.name)
        self.input_dtype = numpy_dtype(inp.type)
        self.output_names = [o.name for o in self._session.get_outputs()]
        self._input = DeviceBuffer(self.context,
                                   int(np.prod(self.input_shape)) * self.input_dtype.itemsize)
        self._buffers.append(self._input)
        self._ordinal = ordinal
        self._binding = self._session.io_binding()
        self._binding.bind_input(self.input_name, "cuda", ordinal, self.input_dtype,
                                 list(self.input_shape), self._input.ptr)
        self._run_async = ort.RunOptions()
        self._run_async.add_run_config_entry("disable_synchronize_execution_providers", "1")
        self.output_shapes, self.output_dtypes = self._probe_outputs()
        self.output_ptrs = []
        self._binding.clear_binding_outputs()
        for name, shape, dtype in zip(self.output_names, self.output_shapes, self.output_dtypes):
            buf = DeviceBuffer(self.context, max(1, int(np.prod(shape)) * dtype.itemsize))
            self._buffers.append(buf)
            self.output_ptrs.append(buf.ptr)
            self._binding.bind_output(name, "cuda", ordinal, dtype, list(shape), buf.ptr)
        rng = np.random.default_rng(0)
        for _ in range(WARMUP_RUNS):
            self._upload(rng.uniform(0, 1, self.input_shape).astype(self.input_dtype))
            self.enqueue()
        self.stream.synchronize()
        self.input_ptr = self._input.ptr

    def _probe_outputs(self) -> tuple[list[tuple], list[np.dtype]]:
        """Output shapes and dtypes from two runs on different inputs (onnxruntime allocating);
        refused when they differ, since the frame pipeline binds outputs of one size."""
        seen = []
        for fill in (0.0, 0.5):
            self._upload(np.full(self.input_shape, fill, self.input_dtype))
            for name in self.output_names:
                self._binding.bind_output(name, "cuda", self._ordinal)
            self._session.run_with_iobinding(self._binding)
            values = self._binding.get_outputs()
            seen.append(([tuple(v.shape()) for v in values],
                         [numpy_dtype(v.data_type()) for v in values]))
            self._binding.clear_binding_outputs()
        if seen[0][0] != seen[1][0]:
            raise BackendUnavailable(f"the model's output shapes change with the image "
                                     f"({seen[0][0]} vs {seen[1][0]}: NMS inside?); the GPU "
                                     "pipeline needs outputs of one size")
        return seen[0]

    # -- device-level interface used by the GPU pipeline ---------------------------------------

    def enqueue(self, stream=None) -> None:
        """Queue one inference on the runner's stream, after the work already on `stream` and
        before the work put on `stream` afterwards; the host does not wait."""
        if stream is None or int(stream.handle) == int(self.stream.handle):
            self.context.activate()
            self._session.run_with_iobinding(self._binding, self._run_async)
            return
        from trt_infer_ros.cuda.stream import Event

        if getattr(self, "_events", None) is None:
            self._events = (Event(self.context, timing=False), Event(self.context, timing=False))
        before, after = self._events
        before.record(stream)
        self.stream.wait(before)
        self.enqueue()
        after.record(self.stream)
        stream.wait(after)

    def after_failed_capture(self) -> None:
        """Clear the CUDA runtime's last error a refused capture leaves behind (onnxruntime checks
        it after its launches) and make sure an eager run works again."""
        from cuda.bindings import runtime

        runtime.cudaGetLastError()
        self.enqueue()
        self.stream.synchronize()

    def child_graphs(self) -> None:
        return None

    # -- Runner protocol (numpy in, numpy out) --------------------------------------------------

    def _upload(self, tensor: np.ndarray) -> None:
        data = np.ascontiguousarray(tensor, dtype=self.input_dtype)
        if data.shape != tuple(self.input_shape):
            raise ValueError(f"expected input {tuple(self.input_shape)}, got {data.shape}")
        self._input.upload(data, self.stream)

    def run(self, tensor: np.ndarray, extra_inputs=None) -> list[np.ndarray]:
        if extra_inputs:
            raise BackendUnavailable("this runner feeds the image input only")
        self._upload(tensor)
        self.enqueue()
        outs = []
        for buf, shape, dtype in zip(self._buffers[1:], self.output_shapes, self.output_dtypes):
            out = np.empty(shape, dtype)
            buf.download(out, self.stream)
            outs.append(out)
        return outs

    def close(self) -> None:
        self._session = None
        self._binding = None
        for buf in self._buffers:
            buf.close()
        self._buffers = []
        for event in getattr(self, "_events", None) or ():
            event.close()
        self._events = None
        if getattr(self, "stream", None) is not None:
            self.stream.close()
            self.stream = None

    def __repr__(self) -> str:
        return (f"OnnxRuntimeCudaRunner({self.precision}, input "
                f"{self.input_name}{list(self.input_shape)})")
