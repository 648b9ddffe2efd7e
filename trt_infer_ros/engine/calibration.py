"""INT8 calibration: image batches through the model adapter's preprocessing, calibrators
implementing TensorRT's interfaces, and our own percentile calibration.

- `CalibrationImages`: images from a directory or a rosbag2 topic, as (HxWxC uint8, encoding).
- `CalibrationBatches`: those images through `pipeline.preprocess.preprocess` with the adapter's
  InputSpec -- the same preprocessing inference uses -- stacked into float batches.
- `create_calibrator(trt, ...)`: an instance of a subclass of `trt.IInt8EntropyCalibrator2`,
  `IInt8MinMaxCalibrator` or `IInt8LegacyCalibrator` whose `get_batch` copies each batch into
  device memory (trt_infer_ros.cuda buffers on cuda-python), and whose cache is read
  and written through calibration_cache (reused only when it matches).
- `percentile_ranges(...)`: per-tensor |activation| percentiles computed with onnxruntime; the
  `percentile` algorithm hands them to TensorRT as a calibration cache.
"""
from __future__ import annotations

import logging
import os
from typing import Callable, Iterable, Iterator, Optional, Sequence

import numpy as np

from trt_infer_ros.engine import calibration_cache
from trt_infer_ros.engine.options import IMAGE_SUFFIXES

LOG = logging.getLogger("trt_infer_ros.engine.calibration")

Image = tuple[np.ndarray, str]    # (HxWxC or HxW uint8, encoding)


# --- image sources -------------------------------------------------------------------------

def directory_images(directory: str) -> Iterator[Image]:
    """Images of `directory` in name order, decoded with OpenCV (bgr8)."""
    import cv2  # noqa: PLC0415 - only needed for calibration
    names = sorted(f for f in os.listdir(directory) if f.lower().endswith(IMAGE_SUFFIXES))
    for name in names:
        image = cv2.imread(os.path.join(directory, name), cv2.IMREAD_COLOR)
        if image is None:
            LOG.warning("skipping %s: OpenCV cannot decode it", name)
            continue
        yield image, "bgr8"


def bag_images(bag_path: str, topic: str = "") -> Iterator[Image]:
    from trt_infer_ros.engine.bag_reader import read_images  # noqa: PLC0415
    for message in read_images(bag_path, topic or None):
        yield message.image, message.encoding


def image_source(images_dir: str = "", bag_path: str = "", topic: str = "") -> Iterator[Image]:
    if images_dir:
        return directory_images(images_dir)
    if bag_path:
        return bag_images(bag_path, topic)
    raise ValueError("no calibration images: set calibration_images or calibration_bag")


# --- preprocessing into batches -------------------------------------------------------------

def default_preprocess():
    """The pipeline's preprocess(image, encoding, spec) -> (tensor, ImageTransform)."""
    from trt_infer_ros.pipeline.preprocess import preprocess  # noqa: PLC0415
    return preprocess


def input_spec_for(model_type: str, onnx_path: str, opt_shape=None):
    """The InputSpec of the adapter inference would use for this model (model_type empty:
    detected from the graph); `opt_shape` fills dynamic height/width."""
    from trt_infer_ros.models import registry  # noqa: PLC0415
    size = None
    if opt_shape is not None and len(opt_shape) == 4:
        nchw = opt_shape[1] in (1, 3) and opt_shape[3] not in (1, 3)
        size = (opt_shape[3], opt_shape[2]) if nchw else (opt_shape[2], opt_shape[1])
    # Only the input side matters here: a split backbone's outputs are feature maps, not
    # detections, and still calibrate with its family's preprocessing.
    adapter = registry.create_adapter(model_type or "auto", onnx_path, input_size=size,
                                      check_outputs=False)
    return adapter.input_spec


class CalibrationBatches:
    """Up to `count` images, preprocessed with `spec`, stacked `batch_size` at a time.

    Iterating yields C-contiguous arrays of shape (batch_size, ...) in the spec's dtype; a last
    partial batch is dropped (TensorRT calibration batches have a fixed size).
    """

    def __init__(self, images: Iterable[Image], spec, count: int, batch_size: int = 1,
                 preprocess: Optional[Callable] = None):
        self.images = images
        self.spec = spec
        self.count = int(count)
        self.batch_size = int(batch_size)
        self._preprocess = preprocess
        self.used = 0

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.batch_size,) + tuple(self.spec.shape[1:])

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.spec.dtype).itemsize

    def __iter__(self) -> Iterator[np.ndarray]:
        preprocess = self._preprocess or default_preprocess()
        pending: list[np.ndarray] = []
        self.used = 0
        for image, encoding in self.images:
            if self.used >= self.count:
                break
            tensor, _ = preprocess(image, encoding, self.spec)
            tensor = np.asarray(tensor)
            if tensor.ndim == len(self.shape) - 1:
                tensor = tensor[None]
            pending.append(tensor)
            self.used += 1
            if len(pending) == self.batch_size:
                yield np.ascontiguousarray(np.concatenate(pending, axis=0),
                                           dtype=np.dtype(self.spec.dtype))
                pending = []
        if self.used == 0:
            raise ValueError("the calibration source yielded no images")


# --- device memory (the project's cuda/ layer on cuda-python, imported lazily) --------------

def device_buffer(nbytes: int):
    """A device buffer of `nbytes` in the primary context (the one TensorRT uses)."""
    try:
        from trt_infer_ros.cuda.buffers import DeviceBuffer  # noqa: PLC0415
        from trt_infer_ros.cuda.context import CudaContext, cuda_unavailable_reason  # noqa: PLC0415
    except ImportError as exc:
        raise RuntimeError("INT8 calibration needs cuda-python (`pip install cuda-python`) to "
                           f"put calibration batches in device memory ({exc})") from exc
    reason = cuda_unavailable_reason()
    if reason:
        raise RuntimeError(f"INT8 calibration needs a CUDA device: {reason}")
    return DeviceBuffer(CudaContext.primary(), nbytes)


class CalibratorCore:
    """What every calibrator does, independent of the TensorRT base class."""

    def __init__(self, batches: Optional[CalibrationBatches], cache_path: str = "",
                 cache_meta: Optional[dict] = None, reuse_cache: bool = True,
                 preset_cache: Optional[bytes] = None):
        self.batches = batches
        self.cache_path = cache_path
        self.cache_meta = cache_meta
        self.reuse_cache = reuse_cache
        self.preset_cache = preset_cache
        self._iter: Optional[Iterator[np.ndarray]] = None
        self._buffer = None               # trt_infer_ros.cuda.buffers.DeviceBuffer
        self.batches_served = 0

    @property
    def batch_size(self) -> int:
        return self.batches.batch_size if self.batches is not None else 1

    def get_batch(self, names: Sequence[str]) -> Optional[list[int]]:
        if self.batches is None:
            return None
        if self._iter is None:
            self._iter = iter(self.batches)
            self._buffer = device_buffer(self.batches.nbytes)
        try:
            batch = next(self._iter)
        except StopIteration:
            self.release()
            return None
        self.batches_served += 1
        if self.batches_served % 10 == 0:
            LOG.info("calibration: %d images", self.batches_served * self.batch_size)
        self._buffer.upload(batch)
        return [self._buffer.ptr] * max(len(names), 1)

    def read_cache(self) -> Optional[bytes]:
        if self.preset_cache is not None:
            return self.preset_cache
        if self.reuse_cache and self.cache_path:
            return calibration_cache.read_cache(self.cache_path)
        return None

    def write_cache(self, data) -> None:
        if self.cache_path:
            calibration_cache.write_cache(self.cache_path, bytes(data), self.cache_meta)
            LOG.info("calibration cache written to %s", self.cache_path)

    def release(self) -> None:
        if self._buffer is not None:
            self._buffer.close()
            self._buffer = None


def calibrator_base(trt, algorithm: str):
    names = {"entropy2": "IInt8EntropyCalibrator2", "percentile": "IInt8EntropyCalibrator2",
             "minmax": "IInt8MinMaxCalibrator", "legacy": "IInt8LegacyCalibrator"}
    base = getattr(trt, names[algorithm], None)
    if base is None:
        raise RuntimeError(f"this TensorRT ({getattr(trt, '__version__', '?')}) has no "
                           f"{names[algorithm]}: implicit INT8 calibration is gone in TensorRT 11; "
                           "quantize the ONNX with Q/DQ nodes and build strongly typed")
    return base


def create_calibrator(trt, algorithm: str, core: CalibratorCore, quantile: float = 0.9999,
                      regression_cutoff: float = 1.0):
    """An instance of the TensorRT calibrator class for `algorithm`, driven by `core`."""
    base = calibrator_base(trt, algorithm)

    class _Calibrator(base):
        def __init__(self):
            base.__init__(self)
            self.core = core
            self.algorithm = algorithm

        def get_batch_size(self):
            return self.core.batch_size

        def get_batch(self, names, *args):
            return self.core.get_batch(names)

        def read_calibration_cache(self):
            return self.core.read_cache()

        def write_calibration_cache(self, cache):
            self.core.write_cache(cache)

        if algorithm == "legacy":
            def get_quantile(self):
                return float(quantile)

            def get_regression_cutoff(self):
                return float(regression_cutoff)

            def read_histogram_cache(self, *args):
                return None

            def write_histogram_cache(self, *args):
                return None

    _Calibrator.__name__ = f"{base.__name__.lstrip('I')}FromImages"
    return _Calibrator()


# --- percentile calibration with onnxruntime -----------------------------------------------

def percentile_ranges(onnx_path: str, batches: Iterable[np.ndarray], percentile: float,
                      input_name: Optional[str] = None) -> dict[str, float]:
    """Per-tensor dynamic range: the `percentile` of |activation| per batch, averaged over the
    batches, for the model input and every float tensor a node produces."""
    import onnx  # noqa: PLC0415
    import onnxruntime as ort  # noqa: PLC0415
    from onnx import TensorProto, helper, shape_inference  # noqa: PLC0415

    model = onnx.load(onnx_path)
    try:
        model = shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - shapes are only a convenience here
        pass
    graph = model.graph
    float_types = {TensorProto.FLOAT, TensorProto.FLOAT16}
    known = {v.name: v.type.tensor_type.elem_type for v in
             list(graph.value_info) + list(graph.output) + list(graph.input)}
    existing = {o.name for o in graph.output}
    tensors = []
    for node in graph.node:
        for out in node.output:
            if out and known.get(out, TensorProto.FLOAT) in float_types:
                tensors.append(out)
                if out not in existing:
                    graph.output.append(helper.make_tensor_value_info(
                        out, known.get(out, TensorProto.FLOAT), None))
                    existing.add(out)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    input_name = input_name or session.get_inputs()[0].name
    out_names = [o.name for o in session.get_outputs()]
    sums: dict[str, float] = {}
    count = 0
    for batch in batches:
        values = session.run(out_names, {input_name: batch})
        stats = {input_name: batch}
        stats.update(dict(zip(out_names, values)))
        for name, value in stats.items():
            value = np.asarray(value)
            if value.dtype.kind != "f" or value.size == 0:
                continue
            sums[name] = sums.get(name, 0.0) + float(np.percentile(np.abs(value), percentile))
        count += 1
    if count == 0:
        raise ValueError("percentile calibration got no batches")
    return {name: total / count for name, total in sums.items()}
