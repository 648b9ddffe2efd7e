"""tinygrad on CUDA as a GPU runner: device-resident input/output tensors and its CUDA graphs.

Unlike `TinygradRunner` (numpy in, numpy out), this runner keeps one input and the output
tensors on the GPU for its whole life and exposes their device addresses, so the GPU pipeline
writes the preprocessed frame straight into the model input and decodes the outputs in place.
After its warm-up, TinyJit replays the model as CUDA graph(s); `child_graphs()` hands those
graphs out so the frame graph can embed them as child-graph nodes (whole frame = one launch).

tinygrad creates its own CUDA context and launches on that context's legacy default stream;
`context` adopts that context, and the frame pipeline uses a blocking stream there so eager
launches stay ordered with tinygrad's.
"""
from __future__ import annotations

import ctypes
import os
from typing import Optional

import numpy as np

from trt_infer_ros.backends.runner import BackendUnavailable, fixed_input_shape
from trt_infer_ros.backends.tinygrad_ops import patch_onnx_ops
from trt_infer_ros.backends.tinygrad_runner import refuse_extra_inputs

WARMUP_CALLS = 3     # TinyJit: 1st call runs, 2nd captures, 3rd replays


def _handle_value(handle) -> int:
    """Integer value of a tinygrad ctypes handle (CUcontext, CUgraph, CUdeviceptr)."""
    value = getattr(handle, "value", None)
    if isinstance(value, int):
        return value
    return int(ctypes.cast(handle, ctypes.c_void_p).value or 0)


class TinygradCudaRunner:
    name = "tinygrad"
    device = "CUDA"
    capture_mode = "child_graphs"

    def __init__(self, model_path: str, input_shape: Optional[tuple[int, ...]] = None) -> None:
        """`input_shape` fixes the dims the ONNX input leaves dynamic (batch, height, width)."""
        from trt_infer_ros.cuda.context import cuda_unavailable_reason

        reason = cuda_unavailable_reason()
        if reason:
            raise BackendUnavailable(f"tinygrad CUDA needs a CUDA GPU: {reason}")
        os.environ.setdefault("DEV", "CUDA")
        try:
            from tinygrad import Device, Tensor, TinyJit
            from tinygrad.helpers import Context
            from tinygrad.nn.onnx import OnnxRunner
            Device["CUDA"]
        except ImportError as exc:
            raise BackendUnavailable(f"tinygrad is not installed: {exc}") from exc
        except Exception as exc:
            raise BackendUnavailable(f"tinygrad cannot open CUDA: {exc}") from exc
        from trt_infer_ros.cuda.context import CudaContext

        self._Context = Context
        self._events = None
        with Context(DEV="CUDA"):
            model = OnnxRunner(str(model_path))
            refuse_extra_inputs(model)
            model = model.to("CUDA")
        patch_onnx_ops(model)
        (self.input_name, spec), = model.graph_inputs.items()
        shape = fixed_input_shape(spec.shape, input_shape, model_path, self.input_name)
        self.input_shape = shape
        self.input_dtype = np.dtype(spec.dtype.fmt) if spec.dtype.fmt else np.dtype(np.float32)
        self.output_names = list(model.graph_outputs)
        self._model = model
        names = self.output_names

        def forward(x):
            outs = model({self.input_name: x})
            return [outs[n].contiguous().realize() for n in names]

        self._jit = TinyJit(forward)
        with Context(DEV="CUDA"):
            self._input = Tensor.zeros(*shape, dtype=spec.dtype, device="CUDA").contiguous().realize()
        dev = Device["CUDA"]
        self.context = CudaContext.adopt(_handle_value(dev.context))
        # Warm up on random data: the JIT compiles, captures, then replays its graphs.
        rng = np.random.default_rng(0)
        sample = rng.uniform(0, 1, size=shape).astype(self.input_dtype)
        for _ in range(WARMUP_CALLS):
            self._upload(sample)
            outs = self._call()
        self._outputs = outs
        self.output_shapes = [tuple(o.shape) for o in outs]
        self.output_dtypes = [np.dtype(o.dtype.fmt) for o in outs]
        self.input_ptr = self._buffer_ptr(self._input)
        self.output_ptrs = [self._buffer_ptr(o) for o in outs]
        self.selection = "tinygrad CUDA (TinyJit CUDA graphs)"

    # -- device-level interface used by the GPU pipeline ---------------------------------------

    def _call(self):
        with self._Context(DEV="CUDA", JIT_BATCH_SIZE=0):
            return self._jit(self._input)

    @staticmethod
    def _buffer_ptr(tensor) -> int:
        buf = tensor.uop.buffer
        return _handle_value(buf._buf)

    def enqueue(self, stream=None) -> None:
        """Launch one inference, ordered after the work already on `stream` and before the work
        put on `stream` afterwards (tinygrad itself launches on the legacy default stream)."""
        from cuda.bindings import driver
        from trt_infer_ros.cuda.errors import check

        if stream is None:
            self._call()
            return
        if self._events is None:
            flags = int(driver.CUevent_flags.CU_EVENT_DISABLE_TIMING)
            self.context.activate()
            self._events = (check(driver.cuEventCreate(flags)), check(driver.cuEventCreate(flags)))
        before, after = self._events
        legacy = driver.CUstream(0)
        check(driver.cuEventRecord(before, stream.handle), "cuEventRecord")
        check(driver.cuStreamWaitEvent(legacy, before, 0), "cuStreamWaitEvent")
        outs = self._call()
        check(driver.cuEventRecord(after, legacy), "cuEventRecord")
        check(driver.cuStreamWaitEvent(stream.handle, after, 0), "cuStreamWaitEvent")
        if [self._buffer_ptr(o) for o in outs] != self.output_ptrs:
            raise RuntimeError("tinygrad moved its output buffers between calls")

    def child_graphs(self) -> Optional[list]:
        """The CUgraph handles TinyJit replays, in order, or None when the captured program is
        not made of CUDA graphs only (then the frame graph runs the model eagerly)."""
        from cuda.bindings import driver
        from tinygrad.engine.realize import graph_cache
        from tinygrad.uop.ops import Ops

        captured = getattr(self._jit, "captured", None)
        if captured is None:
            return None
        graphs = []
        for call in captured.linear.src:
            fn = call.src[0]
            if not (fn.op is Ops.CUSTOM_FUNCTION and fn.arg == "graph"):
                return None
            runner = graph_cache.get(fn)
            handle = getattr(runner, "graph", None)
            if handle is None or getattr(runner, "var_vals_replace", None) \
                    or getattr(runner, "launch_dims_replace", None):
                # symbolic shapes change node parameters per call: cannot be frozen into ours.
                # (Input-buffer nodes are fine: the input tensor is the same buffer every call.)
                return None
            graphs.append(driver.CUgraph(_handle_value(handle)))
        return graphs or None

    # -- Runner protocol (numpy in, numpy out) --------------------------------------------------

    def _upload(self, tensor: np.ndarray) -> None:
        from cuda.bindings import driver
        from trt_infer_ros.cuda.errors import check

        data = np.ascontiguousarray(tensor, dtype=self.input_dtype)
        if data.shape != self.input_shape:
            raise ValueError(f"expected input {self.input_shape}, got {data.shape}")
        ptr = self._buffer_ptr(self._input)
        dev_ctx = getattr(self, "context", None)
        if dev_ctx is not None:
            dev_ctx.activate()
        else:
            from tinygrad import Device
            check(driver.cuCtxSetCurrent(driver.CUcontext(_handle_value(Device["CUDA"].context))))
        check(driver.cuMemcpyHtoD(ptr, data.ctypes.data, data.nbytes), "cuMemcpyHtoD")

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        self._upload(tensor)
        outs = self._call()
        return [o.numpy() for o in outs]

    def close(self) -> None:
        self._jit = None
        self._outputs = None
        self._model = None

    def __repr__(self) -> str:
        return f"TinygradCudaRunner(input {self.input_name}{list(self.input_shape)})"
