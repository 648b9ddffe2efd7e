"""The whole frame on the GPU: upload -> preprocess -> model -> decode/NMS -> download.

One `FrameGraph` per source-image shape. The image's upload is queued on the frame's stream
just before the graph (`stage_image`: straight from the message's memory), then one graph runs
the rest. What is in that graph depends on the runner:

* `capture_mode == "stream"` (TensorRT, onnxruntime CUDA): the runner's `enqueue(stream)` is
  stream-captured between our stages, so the frame is ONE graph: H2D parameters, preprocess
  kernel, the model's kernels, decode kernels, D2H result.
* `capture_mode == "child_graphs"` (tinygrad TinyJit): our preprocess graph, the runner's own
  CUDA graph(s) and our decode+download graph are chained as child-graph nodes of ONE graph,
  launched once per frame.
* If that is refused, mode "split": our two graphs around an eager runner launch (three
  launches, ordered with events); "eager" when even our own capture fails.

`mode` says which one a FrameGraph got. Live settings are read from device memory (filled from a
pinned block by a copy node inside the graph), so thresholds and max detections change without
recapture.
"""
from __future__ import annotations

import logging
from typing import Optional, Protocol, Sequence

import numpy as np
from cuda.bindings import driver

from trt_infer_ros.cuda.buffers import DeviceBuffer, PinnedBuffer, copy_async
from trt_infer_ros.cuda.context import CudaContext
from trt_infer_ros.cuda.errors import check
from trt_infer_ros.cuda.decode_kernel import GpuDecoder
from trt_infer_ros.cuda.graph import capture, chain
from trt_infer_ros.cuda.preprocess_kernel import GpuPreprocessor
from trt_infer_ros.cuda.stream import Stream

LOG = logging.getLogger("trt_infer_ros.cuda.frame_graph")


class GpuRunner(Protocol):
    """A runner whose tensors live on the GPU (TensorRT, onnxruntime CUDA, tinygrad CUDA)."""

    context: CudaContext
    capture_mode: str                 # "stream" or "child_graphs"
    input_ptr: int
    output_ptrs: Sequence[int]
    output_shapes: Sequence[tuple]
    output_dtypes: Sequence[np.dtype]

    def enqueue(self, stream: Stream) -> None: ...

    def child_graphs(self) -> Optional[list]: ...


class FrameGraph:
    """Buffers, kernels and the graph(s) of one source shape."""

    def __init__(self, runner: GpuRunner, preprocessor: GpuPreprocessor,
                 decoder: Optional[GpuDecoder], stream: Stream, use_graph: bool = True,
                 device_source: Optional[int] = None) -> None:
        """`device_source`: the device address of pixels already on the GPU (a JPEG decoded
        there) for every frame of this graph; none of the host staging and upload then."""
        self.runner = runner
        self.context = runner.context
        self.pre = preprocessor
        self.decoder = decoder
        self.stream = stream
        src = preprocessor.source
        self.src_nbytes = src.nbytes
        self.staging = None            # pinned, made for the first strided image only
        if device_source is None:
            self.src_dev = DeviceBuffer(self.context, self.src_nbytes)
            self.source_ptr = self.src_dev.ptr
        else:
            self.src_dev = None
            self.source_ptr = int(device_source)
        # Without a GPU decoder the raw outputs come back (pinned) for the CPU decoder.
        self.outputs_host: list[tuple[PinnedBuffer, int, tuple, np.dtype]] = []
        if decoder is None:
            for ptr, shape, dtype in zip(runner.output_ptrs, runner.output_shapes,
                                         runner.output_dtypes):
                nbytes = max(1, int(np.prod(shape)) * np.dtype(dtype).itemsize)
                self.outputs_host.append((PinnedBuffer(self.context, nbytes), ptr, tuple(shape),
                                          np.dtype(dtype)))
        self._events = None
        self.mode = "eager"
        self.exec = None
        self.pre_exec = None
        self.post_exec = None
        if use_graph:
            self._build()

    # -- stages ---------------------------------------------------------------------------------

    def _enqueue_pre(self) -> None:
        self.pre.enqueue(self.source_ptr, self.runner.input_ptr, self.stream)

    def _enqueue_post(self) -> None:
        if self.decoder is not None:
            self.decoder.enqueue(self.runner.output_ptrs[0], self.stream)
        else:
            for host, ptr, shape, dtype in self.outputs_host:
                copy_async(host.ptr, ptr, host.nbytes, self.stream)

    def _enqueue_all(self) -> None:
        self._enqueue_pre()
        self.runner.enqueue(self.stream)
        self._enqueue_post()

    def _build(self) -> None:
        mode = getattr(self.runner, "capture_mode", "")
        if mode == "stream":
            try:
                # TensorRT: enqueue once after binding (done by the runner), then capture.
                graph = capture(self.stream, self._enqueue_all)
                self.exec = graph.instantiate()
                self.node_count = graph.node_count()
                graph.close()
                self.mode = "one_graph"
                return
            except Exception as exc:
                LOG.warning("whole-frame capture failed (%s); trying split graphs", exc)
                recover = getattr(self.runner, "after_failed_capture", None)
                if recover is not None:
                    recover()
        try:
            pre = capture(self.stream, self._enqueue_pre)
            post = capture(self.stream, self._enqueue_post)
        except Exception as exc:
            LOG.warning("CUDA graph capture of pre/post-processing failed (%s); running eagerly", exc)
            return
        parts = None
        if mode == "child_graphs":
            try:
                parts = self.runner.child_graphs()
            except Exception as exc:
                LOG.warning("runner graphs not reachable (%s)", exc)
        if parts:
            try:
                whole = chain(self.context, [pre, *parts, post])
                self.exec = whole.instantiate()
                self.node_count = whole.node_count()
                whole.close()
                self.mode = "one_graph"
                pre.close()
                post.close()
                return
            except Exception as exc:
                LOG.warning("chaining the runner's graphs into the frame graph failed (%s); "
                            "using split graphs", exc)
        self.pre_exec = pre.instantiate()
        self.post_exec = post.instantiate()
        pre.close()
        post.close()
        self.mode = "split"

    # -- per frame ------------------------------------------------------------------------------

    def stage_image(self, image: np.ndarray) -> None:
        """Queue the image's upload on the stream, ahead of the frame graph: the frame's one
        host copy. Rows laid out as the source layout says (a message's pixels, the usual case)
        go straight from the message's memory: the driver copies pageable memory through its
        own pinned buffers, overlapping that copy with the transfer, and returns once the
        message may be released (1280x720 on the H200 machine: 0.22 ms, against 0.33 ms for a
        copy into our pinned staging and then its transfer; row bands on several threads were
        slower still). Anything else (a strided view) is first gathered into pinned staging."""
        src = self.pre.source
        image = image.reshape(src.height, src.width, src.channels)
        if image.strides == (src.step, src.channels, 1):
            check(driver.cuMemcpyHtoDAsync(self.src_dev.ptr, image.ctypes.data, self.src_nbytes,
                                           self.stream.handle), "cuMemcpyHtoDAsync")
            return
        if self.staging is None:
            self.staging = PinnedBuffer(self.context, self.src_nbytes)
        view = np.lib.stride_tricks.as_strided(
            self.staging.view(np.uint8), shape=(src.height, src.width, src.channels),
            strides=(src.step, src.channels, 1), writeable=True)
        np.copyto(view, image)
        copy_async(self.src_dev.ptr, self.staging.ptr, self.src_nbytes, self.stream)

    def launch(self) -> None:
        """Run one frame (asynchronously on `stream`) on the pixels staged last."""
        self.context.activate()
        if self.mode == "one_graph":
            self.exec.launch(self.stream)
        elif self.mode == "split":
            self.pre_exec.launch(self.stream)
            self.runner.enqueue(self.stream)
            self.post_exec.launch(self.stream)
        else:
            self._enqueue_all()

    def run_eager(self) -> None:
        """The same frame without any graph (graph-vs-eager comparisons and benchmarks)."""
        self.context.activate()
        self._enqueue_all()

    def synchronize(self) -> None:
        self.stream.synchronize()

    def host_outputs(self) -> list[np.ndarray]:
        """Copies of the raw model outputs (CPU-decode mode only), after synchronize()."""
        return [np.array(h.view(dt, shape)) for h, _, shape, dt in self.outputs_host]

    def close(self) -> None:
        for g in (self.exec, self.pre_exec, self.post_exec):
            if g is not None:
                g.close()
        self.exec = self.pre_exec = self.post_exec = None
        for host, *_ in self.outputs_host:
            host.close()
        self.outputs_host = []
        for buf in (self.staging, self.src_dev):
            if buf is not None:
                buf.close()
        self.pre.close()
