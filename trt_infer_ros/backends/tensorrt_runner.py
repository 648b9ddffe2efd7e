"""TensorRT runner: name-based I/O, pinned staging, one CUDA graph per input shape.

Engines are loaded (and checked against their sidecar) by `engine.engine_loader.load_engine`,
which sets the DLA core on the runtime before deserializing. Per input shape the runner:
sets the input shape, allocates device buffers and pinned host staging for every I/O tensor,
binds them with `set_tensor_address`, enqueues once with `execute_async_v3` (TensorRT finishes
its lazy setup there), then captures upload -> execute -> download into a CUDA graph that each
`run` replays. If capture fails, the runner runs eagerly for that shape and says so once in the
log. API used: num_io_tensors, get_tensor_name/mode/shape/dtype, set_input_shape,
set_tensor_address, execute_async_v3 (TensorRT 8.5 and later).

For the whole-frame GPU pipeline the runner also exposes `input_ptr`, `output_ptrs` and
`enqueue(stream)`, which stream capture records into the frame graph (`capture_mode="stream"`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from trt_infer_ros.backends.runner import BackendUnavailable

LOG = logging.getLogger("trt_infer_ros.backends.tensorrt_runner")

_NUMPY_DTYPES = {"float32": np.float32, "float16": np.float16, "int32": np.int32,
                 "int64": np.int64, "int8": np.int8, "uint8": np.uint8, "bool": np.bool_}


def _np_dtype(name: str) -> np.dtype:
    return np.dtype(_NUMPY_DTYPES.get(name, np.float32))


@dataclass
class _ShapeState:
    """Buffers and graph of one input shape."""

    input_shape: tuple[int, ...]
    output_shapes: list[tuple[int, ...]]
    device: dict = field(default_factory=dict)        # tensor name -> DeviceBuffer
    staging: dict = field(default_factory=dict)       # tensor name -> PinnedBuffer
    graph: Optional[object] = None                    # GraphExec, None when eager


class TensorRTRunner:
    name = "tensorrt"
    capture_mode = "stream"

    def __init__(self, model_path: str, device: Optional[str] = None, *,
                 dla_core: Optional[int] = None, onnx_path: Optional[str] = None,
                 use_cuda_graph: bool = True, trt=None, loaded=None, context=None) -> None:
        """`loaded`: an already loaded `LoadedEngine` (tests); otherwise `model_path` is loaded
        through `load_engine`. `device` "DLA0"/"DLA1" picks a DLA core when `dla_core` is None."""
        from trt_infer_ros.engine import trt_compat
        from trt_infer_ros.cuda.context import CudaContext, cuda_unavailable_reason

        if trt is None:
            trt = trt_compat.import_tensorrt()          # raises TensorRTUnavailable
        reason = cuda_unavailable_reason()
        if reason:
            raise BackendUnavailable(f"TensorRT needs a CUDA GPU: {reason}")
        if dla_core is None and device and device.upper().startswith("DLA"):
            dla_core = int(device[3:] or 0)
        self._trt = trt
        self.context = context or CudaContext.primary()
        if loaded is None:
            from trt_infer_ros.engine.engine_loader import load_engine
            loaded = load_engine(str(model_path), trt=trt, onnx_path=onnx_path, dla_core=dla_core)
        self._loaded = loaded
        self.engine = loaded.engine
        core = getattr(loaded.sidecar, "dla_core", -1) if loaded.sidecar is not None else -1
        self.device = f"DLA{core}" if core is not None and core >= 0 else "CUDA"
        if len(loaded.inputs) != 1:
            raise ValueError(f"{model_path}: expected one input tensor, engine has "
                             f"{[s.name for s in loaded.inputs]}")
        spec = loaded.inputs[0]
        self.input_name = spec.name
        self.input_dtype = _np_dtype(spec.dtype)
        self.output_names = [s.name for s in loaded.outputs]
        self._output_dtypes = [_np_dtype(s.dtype) for s in loaded.outputs]
        shape = list(spec.shape)
        if any(d < 0 for d in shape):
            profile = getattr(spec, "profile", None) or {}
            shape = list(profile.get("opt") or [d if d > 0 else 1 for d in shape])
        self.use_cuda_graph = use_cuda_graph
        self._graph_failure_logged = False
        self._states: dict[tuple[int, ...], _ShapeState] = {}
        self._active: Optional[tuple[int, ...]] = None
        self.context.activate()
        self.exec_context = self.engine.create_execution_context()
        if self.exec_context is None:
            raise RuntimeError("TensorRT could not create an execution context")
        from trt_infer_ros.cuda.stream import Stream
        self.stream = Stream(self.context)
        self._prepare(tuple(int(d) for d in shape))
        self.selection = f"tensorrt {self.device}"

    # -- shapes, buffers, graphs ---------------------------------------------------------------

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._active

    @property
    def output_shapes(self) -> list[tuple[int, ...]]:
        return self._states[self._active].output_shapes

    @property
    def output_dtypes(self) -> list[np.dtype]:
        return list(self._output_dtypes)

    @property
    def input_ptr(self) -> int:
        return self._states[self._active].device[self.input_name].ptr

    @property
    def output_ptrs(self) -> list[int]:
        st = self._states[self._active]
        return [st.device[n].ptr for n in self.output_names]

    def _bind(self, state: _ShapeState) -> None:
        ctx = self.exec_context
        if not ctx.set_input_shape(self.input_name, tuple(state.input_shape)):
            raise ValueError(f"TensorRT refused input shape {state.input_shape} for {self.input_name}")
        for name, buf in state.device.items():
            if not ctx.set_tensor_address(name, buf.ptr):
                raise RuntimeError(f"TensorRT refused the address of tensor {name}")
        self._active = state.input_shape

    def _prepare(self, shape: tuple[int, ...]) -> _ShapeState:
        from trt_infer_ros.cuda.buffers import DeviceBuffer, PinnedBuffer

        state = self._states.get(shape)
        if state is not None:
            if self._active != shape:
                self._bind(state)
            return state
        ctx = self.exec_context
        if not ctx.set_input_shape(self.input_name, shape):
            raise ValueError(f"TensorRT refused input shape {shape} for {self.input_name}")
        out_shapes = [tuple(int(d) for d in ctx.get_tensor_shape(n)) for n in self.output_names]
        state = _ShapeState(shape, out_shapes)
        tensors = [(self.input_name, shape, self.input_dtype)] + list(
            zip(self.output_names, out_shapes, self._output_dtypes))
        for name, tshape, dtype in tensors:
            nbytes = max(1, int(np.prod(tshape)) * np.dtype(dtype).itemsize)
            state.device[name] = DeviceBuffer(self.context, nbytes)
            state.staging[name] = PinnedBuffer(self.context, nbytes)
        self._states[shape] = state
        self._bind(state)
        # Enqueue once after any shape/address change, then capture.
        self.enqueue(self.stream)
        self.stream.synchronize()
        if self.use_cuda_graph:
            state.graph = self._capture(state)
        return state

    def _copies_and_execute(self, state: _ShapeState) -> None:
        from trt_infer_ros.cuda.buffers import copy_async

        s = self.stream
        inp = state.device[self.input_name]
        copy_async(inp.ptr, state.staging[self.input_name].ptr, inp.nbytes, s)
        self.enqueue(s)
        for name in self.output_names:
            buf = state.device[name]
            copy_async(state.staging[name].ptr, buf.ptr, buf.nbytes, s)

    def _capture(self, state: _ShapeState):
        from trt_infer_ros.cuda.graph import capture

        try:
            graph = capture(self.stream, lambda: self._copies_and_execute(state))
            try:
                return graph.instantiate()
            finally:
                graph.close()
        except Exception as exc:
            if not self._graph_failure_logged:
                LOG.warning("CUDA graph capture failed for input %s (%s); running eagerly",
                            state.input_shape, exc)
                self._graph_failure_logged = True
            return None

    # -- device-level interface (GPU pipeline) -------------------------------------------------

    def enqueue(self, stream) -> None:
        """Run the engine on `stream` over the bound device buffers (capturable)."""
        if not self.exec_context.execute_async_v3(stream.ptr):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")

    def child_graphs(self):
        return None

    def uses_graph(self, shape: Optional[tuple[int, ...]] = None) -> bool:
        state = self._states.get(tuple(shape) if shape else self._active)
        return state is not None and state.graph is not None

    # -- Runner protocol -----------------------------------------------------------------------

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        tensor = np.asarray(tensor)
        state = self._prepare(tuple(int(d) for d in tensor.shape))
        self.context.activate()
        staged = state.staging[self.input_name].view(self.input_dtype, state.input_shape)
        np.copyto(staged, tensor, casting="same_kind")
        if state.graph is not None:
            state.graph.launch(self.stream)
        else:
            self._copies_and_execute(state)
        self.stream.synchronize()
        return [np.array(state.staging[n].view(dt, shp))
                for n, dt, shp in zip(self.output_names, self._output_dtypes, state.output_shapes)]

    def close(self) -> None:
        for state in self._states.values():
            if state.graph is not None:
                state.graph.close()
            for buf in list(state.device.values()) + list(state.staging.values()):
                buf.close()
        self._states.clear()
        self.exec_context = None
        if getattr(self, "stream", None) is not None:
            self.stream.close()

    def __repr__(self) -> str:
        return f"TensorRTRunner({self.device}, input {self.input_name}{list(self._active or ())})"
