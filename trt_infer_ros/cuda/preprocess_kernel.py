"""GPU preprocessing: uint8 camera image -> network input tensor in one kernel.

Covers bgr8, rgb8, bgra8, rgba8 and mono8 sources with any row step, letterbox or stretch with
cv2.resize INTER_LINEAR on uint8 reproduced (half-pixel centres, 11-bit fixed-point weights,
cv2's edge rules, the rounding of its vectorised vertical pass, and its switch to 2x2
averaging for an exact 2x downscale), scale/mean/std, NCHW
or NHWC, float32 or float16 (values through a 256-entry table per channel, computed like the
CPU path's, so the value mapping is bit-identical). Against `trt_infer_ros.pipeline.preprocess.preprocess` (cv2):
the tensors are meant to be bit-identical; the tests allow one uint8 step (times scale/std) on
at most 0.1% of elements, for cv2 builds whose scalar paths round differently
(test/gpu/test_gpu_preprocess.py reports the measured fraction).
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from trt_infer_ros.cuda.buffers import DeviceBuffer
from trt_infer_ros.cuda.context import CudaContext
from trt_infer_ros.cuda.nvrtc import Module, kernel_source
from trt_infer_ros.cuda.stream import Stream
from trt_infer_ros.models.spec import CHANNELS

# position of R, G, B inside a source pixel
_RGB_POSITION = {"bgr8": (2, 1, 0), "bgra8": (2, 1, 0), "rgb8": (0, 1, 2), "rgba8": (0, 1, 2),
                 "mono8": (0, 0, 0)}
BLOCK = (32, 8, 1)


class PreprocessArgs(ctypes.Structure):
    _fields_ = [("src_w", ctypes.c_int32), ("src_h", ctypes.c_int32),
                ("src_step", ctypes.c_int32), ("src_channels", ctypes.c_int32),
                ("dst_w", ctypes.c_int32), ("dst_h", ctypes.c_int32),
                ("nchw", ctypes.c_int32), ("fp16", ctypes.c_int32),
                ("off_x", ctypes.c_int32), ("off_y", ctypes.c_int32),
                ("new_w", ctypes.c_int32), ("new_h", ctypes.c_int32),
                ("src_channel", ctypes.c_int32 * 3),
                ("pad_value", ctypes.c_int32), ("area2x", ctypes.c_int32)]


@dataclass(frozen=True)
class SourceLayout:
    """A source image's geometry: what the kernel needs to read it."""

    width: int
    height: int
    step: int          # bytes per row (>= width * channels)
    encoding: str

    @property
    def channels(self) -> int:
        return CHANNELS[self.encoding]

    @property
    def nbytes(self) -> int:
        return self.step * (self.height - 1) + self.width * self.channels


_modules: dict[int, Module] = {}


def resize_table(dst: int, src: int, columns: bool, stride: int, area2x: bool) -> np.ndarray:
    """[dst, 4] int32: (offset of sample 0, offset of sample 1, weight 0, weight 1) per output
    column or row, as cv2.resize INTER_LINEAR computes them for uint8: f = (d+0.5)*src/dst-0.5
    (double, then float), floor, 11-bit weights rounded half-to-even; columns clamp at the edges
    with weight 0, rows keep the weights and clamp the row index. `stride`: bytes per pixel
    (columns) or per row (rows). With `area2x` (source exactly twice the size) cv2 averages
    2x2 blocks instead: samples 2d and 2d+1."""
    d = np.arange(dst)
    if area2x:
        i0, i1 = 2 * d, 2 * d + 1
        w0 = w1 = np.full(dst, 1024)
    else:
        scale = 1.0 / (dst / src)
        f = ((d + 0.5) * scale - 0.5).astype(np.float32)
        i = np.floor(f).astype(np.int64)
        frac = (f - i.astype(np.float32)).astype(np.float32)
        if columns:
            low, high = i < 0, i >= src - 1
            i[low], frac[low] = 0, 0
            i[high], frac[high] = src - 1, 0
        i0, i1 = np.clip(i, 0, src - 1), np.clip(i + 1, 0, src - 1)
        w0 = np.rint((np.float32(1) - frac) * np.float32(2048))
        w1 = np.rint(frac * np.float32(2048))
    table = np.stack([i0 * stride, i1 * stride, w0, w1], axis=1).astype(np.int64)
    if table[:, :2].max(initial=0) >= 2**31:
        raise ValueError("source image too large for 32-bit offsets")
    return np.ascontiguousarray(table.astype(np.int32))


def lookup_table(spec) -> np.ndarray:
    """[3, 256] float32: uint8 value -> (value * scale - mean) / std per output channel, rounded
    to the spec's dtype (float16 values are exact in float32), computed as the CPU path does."""
    values = np.arange(256, dtype=np.float32)[None, :] * np.float32(spec.scale)
    table = (values - np.asarray(spec.mean, np.float32)[:, None]) / np.asarray(spec.std, np.float32)[:, None]
    return np.ascontiguousarray(table.astype(spec.dtype).astype(np.float32))


def preprocess_module(context: CudaContext) -> Module:
    key = int(context.handle)
    module = _modules.get(key)
    if module is None:
        module = _modules[key] = Module(context, kernel_source("preprocess.cu"), "preprocess.cu",
                                        ["--fmad=false"])
    return module


class GpuPreprocessor:
    """Launches the preprocessing kernel for one source layout and one InputSpec.

    `spec` is an InputSpec; (new_w, new_h, off_x, off_y) is the resized content region inside
    the network input, as `pipeline.preprocess.compute_transform` defines it.
    """

    def __init__(self, context: CudaContext, spec, source: SourceLayout,
                 new_size: tuple[int, int], offset: tuple[int, int]) -> None:
        if source.encoding not in CHANNELS:
            raise ValueError(f"unsupported encoding {source.encoding!r}")
        if source.step < source.width * source.channels:
            raise ValueError(f"row step {source.step} is shorter than a row of "
                             f"{source.width * source.channels} bytes")
        self.context = context
        self.spec = spec
        self.source = source
        self.kernel = preprocess_module(context).kernel("preprocess")
        a = PreprocessArgs()
        a.src_w, a.src_h, a.src_step, a.src_channels = (source.width, source.height, source.step,
                                                        source.channels)
        a.dst_w, a.dst_h = spec.width, spec.height
        a.nchw = 1 if spec.layout == "NCHW" else 0
        a.fp16 = 1 if spec.dtype == "float16" else 0
        a.new_w, a.new_h = new_size
        a.off_x, a.off_y = offset
        rgb = _RGB_POSITION[source.encoding]
        order = rgb if spec.color == "RGB" else rgb[::-1]
        for c in range(3):
            a.src_channel[c] = order[c]
        a.pad_value = int(spec.pad_value)
        self.lut = DeviceBuffer(context, 3 * 256 * 4)
        self.lut.upload(lookup_table(spec))
        a.area2x = int(source.width == 2 * new_size[0] and source.height == 2 * new_size[1])
        xt = resize_table(new_size[0], source.width, True, source.channels, bool(a.area2x))
        yt = resize_table(new_size[1], source.height, False, source.step, bool(a.area2x))
        self.xtab = DeviceBuffer(context, xt.nbytes)
        self.xtab.upload(xt)
        self.ytab = DeviceBuffer(context, yt.nbytes)
        self.ytab.upload(yt)
        self.args = a
        self.grid = ((spec.width + BLOCK[0] - 1) // BLOCK[0], (spec.height + BLOCK[1] - 1) // BLOCK[1], 1)

    @property
    def output_nbytes(self) -> int:
        return 3 * self.spec.width * self.spec.height * (2 if self.spec.dtype == "float16" else 4)

    def enqueue(self, src_ptr: int, dst_ptr: int, stream: Stream) -> None:
        """Read the source image at `src_ptr` (device), write the tensor at `dst_ptr`."""
        self.kernel.launch(self.grid, BLOCK, [ctypes.c_uint64(src_ptr), ctypes.c_uint64(dst_ptr),
                                              ctypes.c_uint64(self.lut.ptr),
                                              ctypes.c_uint64(self.xtab.ptr),
                                              ctypes.c_uint64(self.ytab.ptr), self.args], stream)

    def close(self) -> None:
        for buf in (self.lut, self.xtab, self.ytab):
            buf.close()
