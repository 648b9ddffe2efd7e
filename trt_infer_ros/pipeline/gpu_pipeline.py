"""The detection pipeline with the whole frame on the GPU (drop-in for DetectionPipeline).

`GpuDetectionPipeline(adapter, runner, settings)` is called like `DetectionPipeline`:
`pipeline(image, encoding) -> Detections` in source pixels, `pipeline.settings` changed live.
Per source shape it keeps one `FrameGraph` (cuda/frame_graph.py): upload, preprocess kernel,
the model, decode/NMS kernels and the result download replayed as one CUDA graph where the
runner allows it. Outputs that are final detections (end-to-end YOLO, RT-DETR) are decoded on
the GPU too, as a top-k without NMS. Outputs the GPU decoder does not cover (NMS-layer outputs,
raw YOLOX heads, segment/pose/OBB heads) still run preprocessing and the model on the GPU and
decode on the CPU exactly as DetectionPipeline does; `decode_text` says which and why.

Runners: TensorRT (engines), onnxruntime's CUDA provider and tinygrad on CUDA; for an ONNX model
`backend: auto` times the installed ones on whole frames and keeps the fastest
(pipeline/gpu_runner_choice.py).

For the ROS node: `build_gpu_pipeline(model_path, model_type, backend, settings)` returns a
ready pipeline or raises BackendUnavailable; `is_available()` / `unavailable_reason()` say
beforehand whether this machine can run it at all.
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from trt_infer_ros.backends.runner import BackendUnavailable
from trt_infer_ros.models.adapter import ModelAdapter
from trt_infer_ros.models.spec import Detections, ImageTransform
from trt_infer_ros.pipeline.detector import (adapter_for, build_pipeline, decode_candidates,
                                              select_final)
from trt_infer_ros.models.model_file import check_model_file
from trt_infer_ros.models.registry import create_adapter
from trt_infer_ros.pipeline.preprocess import CHANNELS, compute_transform, validated_image
from trt_infer_ros.pipeline.settings import DetectionSettings
from trt_infer_ros.pipeline.timing import FrameTimings

if TYPE_CHECKING:
    from trt_infer_ros.cuda.decode_kernel import HeadLayout

LOG = logging.getLogger("trt_infer_ros.pipeline.gpu_pipeline")
GPU_BACKENDS = ("auto", "tensorrt", "onnxruntime", "tinygrad")


def unavailable_reason() -> Optional[str]:
    """None when a CUDA GPU and cuda-python are usable here, else why not."""
    try:
        from trt_infer_ros.cuda.context import cuda_unavailable_reason
    except Exception as exc:          # cuda-python missing
        return f"cuda-python is not importable: {exc}"
    return cuda_unavailable_reason()


def is_available() -> bool:
    return unavailable_reason() is None


def is_gpu_runner(runner) -> bool:
    """True for runners whose tensors live on the GPU and can be driven by GpuDetectionPipeline."""
    return all(hasattr(runner, a) for a in ("context", "capture_mode", "input_ptr", "output_ptrs",
                                            "enqueue"))


def _image_geometry(image: np.ndarray, encoding: str) -> tuple[np.ndarray, int, int, int]:
    """(HxWxC view, width, height, row step in bytes) after validating like the CPU path."""
    image = validated_image(image, encoding)
    if image.ndim == 2:
        image = image[:, :, None]
    c = CHANNELS[encoding]
    h, w = image.shape[:2]
    packed = image.strides[2] == 1 and image.strides[1] == c
    step = image.strides[0] if packed and w * c <= image.strides[0] <= 2 * w * c + 64 else w * c
    return image, w, h, int(step)


TASK_OUTPUTS = {"segment": "masks", "pose": "keypoints", "obb": "rotated boxes"}


def decode_layout(adapter: ModelAdapter, output_shape) -> tuple[Optional["HeadLayout"], str]:
    """(the GPU decode layout of the adapter's first output, or None; why not when None)."""
    from trt_infer_ros.cuda.decode_kernel import head_layout

    task = getattr(adapter, "task", "detect")
    if task != "detect":
        return None, f"{task} head: its {TASK_OUTPUTS.get(task, task)} are decoded on the CPU"
    # The model's class count: a labels file may name more classes than it has.
    num_classes = getattr(adapter, "num_classes", None) or len(adapter.class_names)
    spec = adapter.input_spec
    layout = head_layout(adapter.model_type, output_shape, num_classes,
                         getattr(adapter, "decoded", True), task,
                         getattr(adapter, "layout", None), (spec.width, spec.height))
    if layout is not None:
        return layout, ""
    if adapter.model_type == "end2end":
        return None, "NMS-layer outputs are sliced on the CPU"
    if adapter.model_type == "yolox":
        return None, "raw YOLOX head: its grid decode runs on the CPU"
    return None, f"no GPU decode for {adapter.model_type} output {list(output_shape)}"


class GpuDetectionPipeline:
    """Preprocess, model, decode and NMS of each frame on the GPU."""

    def __init__(self, adapter: ModelAdapter, runner, settings: Optional[DetectionSettings] = None,
                 use_graph: bool = True, max_shapes: int = 4, gpu_decode: bool = True) -> None:
        from trt_infer_ros.cuda.decode_kernel import GpuDecoder
        from trt_infer_ros.cuda.stream import Stream

        if not is_gpu_runner(runner):
            raise BackendUnavailable(f"{type(runner).__name__} does not keep its tensors on the GPU")
        self.adapter = adapter
        self.runner = runner
        self.settings = settings if settings is not None else DetectionSettings()
        self.timings = FrameTimings()
        self.nonfinite_dropped = 0
        self.use_graph = use_graph
        self.max_shapes = max_shapes
        spec = adapter.input_spec
        if tuple(runner.input_shape) != spec.shape:
            raise ValueError(f"the model input is {list(runner.input_shape)} but the "
                             f"{adapter.model_type} preprocessing produces {list(spec.shape)}")
        if np.dtype(runner.input_dtype) != np.dtype(spec.dtype):
            raise ValueError(f"the model input is {np.dtype(runner.input_dtype)} but the spec says "
                             f"{spec.dtype}")
        if hasattr(adapter, "extra_inputs") and adapter.extra_inputs():
            raise BackendUnavailable("the GPU pipeline feeds the image input only; this model "
                                     "needs more inputs and runs on the CPU-side pipeline")
        self.context = runner.context
        # A runner bound to a stream of its own (onnxruntime's user_compute_stream) shares it, so
        # the frame is one ordered sequence with no events in between.
        self._own_stream = getattr(runner, "stream", None) is None
        self.stream = Stream(self.context) if self._own_stream else runner.stream
        layout, self.cpu_decode_reason = (decode_layout(adapter, runner.output_shapes[0])
                                          if gpu_decode else (None, "GPU decode turned off"))
        self.decoder = GpuDecoder(self.context, layout, runner.output_dtypes[0]) if layout else None
        self._frames: "OrderedDict[tuple, object]" = OrderedDict()
        self._jpeg = None            # GpuJpegDecoder once asked for; False when unavailable
        self._jpeg_landing = None    # decoded pixels copied into this context (tinygrad's)
        self.jpeg_text = ""

    @property
    def gpu_decode(self) -> bool:
        return self.decoder is not None

    @property
    def decode_text(self) -> str:
        """Where decoding runs, for the start-up log."""
        if self.decoder is None:
            return f"decode on CPU ({self.cpu_decode_reason})"
        if not self.decoder.layout.suppress:
            return "decode on GPU (top-k by score, no NMS: the model's rows are final detections)"
        return "decode on GPU"

    def _decoder_now(self):
        """The GPU decoder for this frame, or None to decode on the CPU: its NMS kernel is
        per class, so `agnostic_nms` frames take the CPU decoder (same results as the CPU
        pipeline)."""
        return None if self.settings.agnostic_nms else self.decoder

    def frame_for(self, image: np.ndarray, encoding: str):
        """The FrameGraph for this image's shape (built and captured on first sight)."""
        img, w, h, step = _image_geometry(image, encoding)
        return self._frame(w, h, step, encoding), img

    def _frame(self, w: int, h: int, step: int, encoding: str, device_source: Optional[int] = None):
        """The FrameGraph for one source geometry (and device source address, for pixels
        decoded on the GPU), built and captured on first sight, least recently used dropped."""
        from trt_infer_ros.cuda.frame_graph import FrameGraph
        from trt_infer_ros.cuda.preprocess_kernel import GpuPreprocessor, SourceLayout

        decoder = self._decoder_now()
        key = (w, h, step, encoding, decoder is not None, device_source)
        frame = self._frames.get(key)
        if frame is None:
            # A JPEG may be decoding on the stream: capture the new graph on an idle one.
            self.stream.synchronize()
            spec = self.adapter.input_spec
            transform, new_w, new_h = compute_transform(w, h, spec)
            pre = GpuPreprocessor(self.context, spec, SourceLayout(w, h, step, encoding),
                                  (new_w, new_h), (int(transform.pad_x), int(transform.pad_y)))
            frame = FrameGraph(self.runner, pre, decoder, self.stream, self.use_graph,
                               device_source)
            frame.transform = transform
            LOG.info("GPU frame graph for %dx%d %s%s: %s", w, h, encoding,
                     " decoded on the GPU" if device_source is not None else "", frame.mode)
            self._frames[key] = frame
            while len(self._frames) > self.max_shapes:
                _, old = self._frames.popitem(last=False)
                old.close()
        else:
            self._frames.move_to_end(key)
        return frame

    @property
    def jpeg_on_gpu(self) -> bool:
        """Whether JPEG payloads can be given to `detect_jpeg` (nvImageCodec installed)."""
        return self._jpeg_decoder() is not None

    def _jpeg_decoder(self):
        if self._jpeg is None:
            from trt_infer_ros.cuda.jpeg_decoder import GpuJpegDecoder, unavailable_reason

            reason = unavailable_reason()
            if reason is not None:
                self._jpeg = False
                self.jpeg_text = f"JPEG decoded on the CPU ({reason})"
            else:
                self.context.activate()
                self._jpeg = GpuJpegDecoder(self.context.device_ordinal)
                self.jpeg_text = "JPEG decoded on the GPU (nvImageCodec)"
        return self._jpeg or None

    def detect_jpeg(self, data) -> Optional[Detections]:
        """Detections of a JPEG payload decoded on the GPU straight into the frame graph's
        source; None when this pipeline cannot (no nvImageCodec, not a JPEG it reads), and the
        caller decodes on the host."""
        decoder = self._jpeg_decoder()
        if decoder is None:
            return None
        t0 = time.perf_counter()
        same_context = int(decoder.context.handle) == int(self.context.handle)
        failures = decoder.failures
        decoded = decoder.decode(data, self.stream if same_context else None)
        if decoded is None:
            if decoder.failures > failures and failures == 0:
                LOG.warning("nvImageCodec could not decode a JPEG on the GPU (%s); such frames "
                            "are decoded on the CPU", decoder.last_error)
            return None
        source = decoded.ptr
        if not same_context:
            source = self._copy_from_decoder(decoder, decoded)
        frame = self._frame(decoded.width, decoded.height, decoded.step, decoded.encoding, source)
        return self._run(frame, t0)

    def _copy_from_decoder(self, decoder, decoded) -> int:
        """The decoded pixels copied into a buffer of this pipeline's context (kept, grown as
        needed), after the decode finished on the decoder's stream."""
        from trt_infer_ros.cuda.buffers import DeviceBuffer, copy_between_contexts_async

        if self._jpeg_landing is None or self._jpeg_landing.nbytes < decoded.nbytes:
            if self._jpeg_landing is not None:
                self.stream.synchronize()
                self._jpeg_landing.close()
            self.context.activate()
            self._jpeg_landing = DeviceBuffer(self.context, decoded.nbytes)
        decoder.stream.synchronize()
        self.context.activate()
        copy_between_contexts_async(self._jpeg_landing.ptr, self.context, decoded.ptr,
                                    decoder.context, decoded.nbytes, self.stream)
        return self._jpeg_landing.ptr

    def _write_params(self, transform: ImageTransform) -> None:
        s = self.settings
        self.decoder.set_params(s.score_threshold, s.nms_iou_threshold, s.max_detections,
                                s.class_filter,
                                (transform.scale_x, transform.scale_y, transform.pad_x,
                                 transform.pad_y, transform.source_width, transform.source_height))

    def __call__(self, image: np.ndarray, encoding: str) -> Detections:
        t0 = time.perf_counter()
        frame, img = self.frame_for(image, encoding)
        frame.stage_image(img)
        return self._run(frame, t0)

    def _run(self, frame, t0: float) -> Detections:
        """Launch a staged frame, wait, and read its detections; timings from `t0`."""
        if frame.decoder is not None:
            self._write_params(frame.transform)
        t1 = time.perf_counter()
        frame.launch()
        frame.synchronize()
        t2 = time.perf_counter()
        if frame.decoder is not None:
            boxes, scores, class_ids, _ = frame.decoder.read()
            self.nonfinite_dropped += frame.decoder.nonfinite
            result = Detections(boxes, scores, class_ids)
            finite = result.finite_rows()
            if not finite.all():
                self.nonfinite_dropped += int(finite.size - np.count_nonzero(finite))
                result = result.select(finite)
            result = result.with_area()     # as Detections.to_source leaves the CPU decode's
        else:
            result = self._decode_on_cpu(frame.host_outputs(), frame.transform)
        t3 = time.perf_counter()
        self.timings = FrameTimings(preprocess=(t1 - t0) * 1e3, inference=(t2 - t1) * 1e3,
                                    decode=(t3 - t2) * 1e3, total=(t3 - t0) * 1e3)
        return result

    def _decode_on_cpu(self, outputs, transform: ImageTransform) -> Detections:
        dets, dropped = decode_candidates(self.adapter, outputs, self.settings)
        self.nonfinite_dropped += dropped
        dets = select_final(self.adapter, dets, self.settings)
        return dets.to_source(transform)

    def close(self) -> None:
        for frame in self._frames.values():
            frame.close()
        self._frames.clear()
        if self.decoder is not None:
            self.decoder.close()
            self.decoder = None
        if self._jpeg:
            self._jpeg.close()
        self._jpeg = None
        if self._jpeg_landing is not None:
            self._jpeg_landing.close()
            self._jpeg_landing = None
        if self._own_stream:
            self.stream.close()
        self.runner.close()


def create_gpu_runner(backend: str, model_path: str, device: Optional[str] = None,
                      input_shape: Optional[tuple[int, ...]] = None):
    """A GPU runner: TensorRT for engine files (or when asked), else the named one (a backend,
    or a runner of gpu_runner_choice such as its fp16 one), or for "auto" the first GPU runner
    that starts (build_gpu_pipeline times them instead). `input_shape` fixes the dynamic dims of
    an ONNX input."""
    from trt_infer_ros.pipeline.gpu_runner_choice import (FP16_RUNNER, GPU_RUNNERS,
                                                          create_named_gpu_runner,
                                                          installed_gpu_runners)

    backend = (backend or "auto").lower()
    named = GPU_RUNNERS + (FP16_RUNNER,)
    if backend not in GPU_BACKENDS and backend not in named:
        raise BackendUnavailable(f"backend {backend!r} has no GPU pipeline (use one of "
                                 f"{', '.join(GPU_BACKENDS)})")
    reason = unavailable_reason()
    if reason:
        raise BackendUnavailable(f"no GPU pipeline here: {reason}")
    is_engine = Path(model_path).suffix.lower() in (".engine", ".plan", ".trt")
    errors = []
    if backend in ("auto", "tensorrt") and (is_engine or backend == "tensorrt"):
        try:
            from trt_infer_ros.backends.tensorrt_runner import TensorRTRunner
            return TensorRTRunner(model_path, device=device)
        except Exception as exc:
            if backend == "tensorrt" or is_engine:
                raise
            errors.append(f"tensorrt: {exc}")
    names = [backend] if backend in named else installed_gpu_runners()
    for name in names:
        try:
            return create_named_gpu_runner(name, model_path, input_shape, _ordinal(device))
        except BackendUnavailable as exc:
            if backend != "auto":
                raise
            errors.append(f"{name}: {exc}")
    raise BackendUnavailable("no GPU runner for " + str(model_path) + ": "
                             + ("; ".join(errors) or "neither onnxruntime-gpu nor tinygrad is "
                                                     "installed"))


def _ordinal(device: Optional[str]) -> int:
    """The CUDA device number of a `CUDA:<n>` device string (0 otherwise)."""
    if device and device.upper().startswith("CUDA:"):
        return int(device.split(":", 1)[1])
    return 0


def build_gpu_pipeline(model_path: str, model_type: str = "auto", backend: str = "auto",
                       settings: Optional[DetectionSettings] = None, device: Optional[str] = None,
                       use_graph: bool = True, log=None, precision: str = "auto",
                       **adapter_kwargs) -> GpuDetectionPipeline:
    """Adapter + GPU runner + GpuDetectionPipeline for one model file (same arguments as
    `pipeline.detector.build_pipeline`). For an ONNX model every GPU runner `backend` and
    `precision` allow is timed on whole frames and the fastest kept (gpu_runner_choice); an fp16
    candidate must first keep the detections within pipeline/precision.py's tolerance.
    Raises BackendUnavailable when no GPU path exists."""
    say = log or LOG.info
    backend = (backend or "auto").lower()
    adapter, input_shape = None, None
    if Path(model_path).suffix.lower() == ".onnx":
        check_model_file(model_path)
        # The adapter resolves a dynamic input's size (input_size, metadata); the runner is
        # built at that size.
        adapter = create_adapter(model_type, model_path, **adapter_kwargs)
        input_shape = adapter.input_spec.shape

    def make(runner_name: str) -> GpuDetectionPipeline:
        from trt_infer_ros.pipeline.gpu_runner_choice import FP16_RUNNER

        runner = create_gpu_runner(runner_name, model_path, device, input_shape)
        try:
            pipe_adapter = adapter
            if pipe_adapter is None:
                pipe_adapter = adapter_for(model_path, model_type, runner, **adapter_kwargs)
            elif hasattr(pipe_adapter, "set_output_names"):
                pipe_adapter.set_output_names(runner.output_names)
            pipe = GpuDetectionPipeline(pipe_adapter, runner, settings, use_graph=use_graph)
        except Exception:
            runner.close()
            raise
        if runner_name == FP16_RUNNER:
            _check_fp16(pipe, model_path, model_type, precision, say, **adapter_kwargs)
        return pipe

    if adapter is None or backend == "tensorrt" or unavailable_reason() is not None:
        if precision != "auto" and (adapter is None or backend == "tensorrt"):
            say(f"precision {precision} applies to ONNX models on onnxruntime CUDA; a TensorRT "
                "engine keeps the precision it was built with")
        return make(backend)          # an engine, or no GPU: create_gpu_runner says why
    from trt_infer_ros.pipeline.gpu_runner_choice import (cache_key, choose_fastest,
                                                          gpu_candidates, installed_gpu_runners)
    installed = installed_gpu_runners()
    candidates = gpu_candidates(backend, precision, installed)
    if len(candidates) == 1:
        return make(candidates[0])
    if not candidates:
        return make(backend)          # nothing installed: create_gpu_runner says why
    from trt_infer_ros.cuda.context import CudaContext
    gpu = CudaContext.primary(_ordinal(device)).name
    key = cache_key(model_path, input_shape, gpu, candidates)
    return choose_fastest(candidates, make, key, say)


def _check_fp16(pipe: GpuDetectionPipeline, model_path: str, model_type: str, precision: str,
                say, **adapter_kwargs) -> None:
    """Compare the fp16 pipeline's detections with the float32 model's (onnxruntime CPU) on the
    bundled photos: outside the tolerance, refused when fp16 was only offered (precision auto),
    used with a warning when asked for."""
    from trt_infer_ros.pipeline.precision import check_images, check_precision

    reference = build_pipeline(model_path, model_type=model_type, backend="onnxruntime",
                               settings=pipe.settings, device="CPU", **adapter_kwargs)
    try:
        check = check_precision(pipe, reference, check_images())
    finally:
        reference.runner.close()
    if check.passed:
        say(f"fp16 detections against float32: {check}")
        return
    if precision == "fp16":
        LOG.warning("precision fp16 as asked, but its detections differ from float32: %s", check)
        say(f"WARNING: precision fp16 as asked, but its detections differ from float32: {check}")
        return
    pipe.close()
    raise BackendUnavailable(f"fp16 not taken: {check}")


def wants_gpu(backend: str, device: Optional[str]) -> bool:
    """Whether the parameters leave room for the GPU pipeline (not an explicit CPU or
    onnxruntime request)."""
    if device and device.upper().startswith("CPU"):
        return False
    backend = (backend or "auto").lower()
    if backend == "onnxruntime":       # onnxruntime means its CPU provider unless CUDA is named
        return bool(device) and device.upper().startswith("CUDA")
    return backend in GPU_BACKENDS


def build_best_pipeline(model_path: str, model_type: str = "auto", backend: str = "auto",
                        settings: Optional[DetectionSettings] = None,
                        device: Optional[str] = None, log=None, precision: str = "auto",
                        **adapter_kwargs):
    """What detector_node should call: the whole-frame GPU pipeline when the parameters allow it
    and a GPU runner starts here (TensorRT for engines, else the fastest of onnxruntime CUDA
    (fp32, and fp16 within tolerance) and tinygrad CUDA), otherwise the CPU-side
    `DetectionPipeline` from `build_pipeline`. An explicit backend=tensorrt/tinygrad that fails
    on the GPU is not silently replaced. `pipeline.selection` says what was chosen."""

    say = log or LOG.info
    reason = None
    if not wants_gpu(backend, device):
        reason = f"backend {backend!r} on device {device!r} asks for the CPU-side pipeline"
    else:
        reason = unavailable_reason()
    if reason is None:
        try:
            pipe = build_gpu_pipeline(model_path, model_type, backend, settings, device,
                                      log=say, precision=precision, **adapter_kwargs)
            runner_precision = getattr(pipe.runner, "precision", "")
            pipe.selection = (f"GPU pipeline: {pipe.runner.name} {pipe.runner.device}"
                              f"{' ' + runner_precision if runner_precision else ''}, frame "
                              f"graphs per input shape, {pipe.decode_text}; model "
                              f"{getattr(pipe.adapter, 'selection', pipe.adapter.model_type)}")
            say(pipe.selection)
            return pipe
        except Exception as exc:
            explicit_gpu = (backend or "auto").lower() in ("tensorrt", "tinygrad") and \
                not isinstance(exc, BackendUnavailable)
            if explicit_gpu:
                raise
            reason = f"{type(exc).__name__}: {exc}"
    pipe = build_pipeline(model_path, model_type=model_type, backend=backend, settings=settings,
                          device=device, **adapter_kwargs)
    try:
        pipe.selection = (f"CPU-side pipeline ({reason}); model "
                          f"{getattr(pipe.adapter, 'selection', pipe.adapter.model_type)}")
    except AttributeError:
        pass
    say(f"GPU pipeline not used: {reason}")
    if precision == "fp16":
        say("precision fp16 applies to the GPU pipeline; this CPU-side pipeline runs the model "
            "as it is")
    return pipe
