"""GPU decode + class-aware NMS for YOLO-family and CenterNet outputs, and decode + top-k for
outputs that are already final detections (end-to-end YOLO, RT-DETR): no NMS for those.

Per frame, all on one stream and all capturable into a CUDA graph:
  params (pinned host -> device), count reset, `decode_candidates` (one thread per anchor),
  `sort_nms` (one block: sort by score, greedy class-aware NMS, boxes to source pixels),
  and one small device -> pinned copy of the compact result.
Thresholds, max_detections, the class filter and the source transform are written into the
pinned parameter block on the host before each launch, so a live change needs no new capture.

Matches the numpy decoders and `models.nms.nms` (same >= threshold, first-maximum class, IoU
test `inter > iou * union` in float32; compiled without FMA contraction), except that ties in
score keep the lower anchor index first, as numpy's stable argsort does. Without suppression
the result is what `select_final` gives for `nms_inside` adapters: rows with a non-finite number
dropped (and counted) before the class filter, then the best max_detections by score.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from trt_infer_ros.cuda.buffers import DeviceBuffer, PinnedBuffer, copy_async, memset_u32_async
from trt_infer_ros.cuda.context import CudaContext
from trt_infer_ros.cuda.nvrtc import Module, kernel_source
from trt_infer_ros.cuda.stream import Stream

MAX_DET_CAP = 1024
MAX_CLASSES_FILTERED = 1024
NMS_THREADS = 1024
CLASS_SLICES = 8          # decode_candidates: threads per anchor scanning the classes
HEADER_INTS = 4
ROW_FLOATS = 6


class DecodeParams(ctypes.Structure):
    _fields_ = [("score_thr", ctypes.c_float), ("iou_thr", ctypes.c_float),
                ("max_det", ctypes.c_int32), ("use_class_mask", ctypes.c_int32),
                ("scale_x", ctypes.c_float), ("scale_y", ctypes.c_float),
                ("pad_x", ctypes.c_float), ("pad_y", ctypes.c_float),
                ("src_w", ctypes.c_float), ("src_h", ctypes.c_float),
                ("reserved0", ctypes.c_int32), ("reserved1", ctypes.c_int32),
                ("class_mask", ctypes.c_uint32 * 32)]


class OutputLayout(ctypes.Structure):
    _fields_ = [("n_anchors", ctypes.c_int32), ("anchor_stride", ctypes.c_int32),
                ("attr_stride", ctypes.c_int32), ("fp16", ctypes.c_int32),
                ("box_format", ctypes.c_int32), ("obj_index", ctypes.c_int32),
                ("cls_start", ctypes.c_int32), ("n_classes", ctypes.c_int32),
                ("class_col", ctypes.c_int32), ("box_scale_x", ctypes.c_float),
                ("box_scale_y", ctypes.c_float), ("suppress", ctypes.c_int32)]


@dataclass(frozen=True)
class HeadLayout:
    """How one model output tensor is read: rows (anchors) of attributes."""

    n_anchors: int
    anchor_stride: int
    attr_stride: int
    box_format: int          # 0 cx,cy,w,h; 1 x1,y1,x2,y2
    obj_index: int           # -1: no objectness
    cls_start: int
    n_classes: int
    class_col: int = -1      # CenterNet: class id stored as a number in this column
    box_scale: tuple[float, float] = (1.0, 1.0)   # box x/y attributes times these (normalised)
    suppress: bool = True    # False: the rows are final detections, kept best-first, no NMS


def head_layout(model_type: str, output_shape: Sequence[int], num_classes: int,
                decoded: Optional[bool] = True, task: str = "detect",
                variant: Optional[str] = None,
                input_size: Optional[tuple[int, int]] = None) -> Optional[HeadLayout]:
    """The GPU layout for a model family's first output, or None when the GPU decoder does not
    handle it (NMS-layer outputs, raw YOLOX heads, segment/pose/OBB heads): the pipeline then
    decodes on the CPU. `variant` is RT-DETR's output form ("scores", "topk"); `input_size`
    (width, height) scales its normalised boxes to input pixels."""
    shape = [int(d) for d in output_shape]
    if len(shape) == 3 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 2 or task != "detect":
        return None
    rows, cols = shape
    if model_type == "yolo_end2end":                 # x1,y1,x2,y2 input pixels, score, class
        if cols != 6:
            return None
        return HeadLayout(rows, 6, 1, 1, -1, 4, 1, class_col=5, suppress=False)
    if model_type == "rtdetr":                       # cx,cy,w,h normalised to the input size
        if input_size is None:
            raise ValueError("RT-DETR's GPU layout needs the network input size")
        scale = (float(input_size[0]), float(input_size[1]))
        if variant == "topk" and cols == 6:          # score, class
            return HeadLayout(rows, 6, 1, 0, -1, 4, 1, class_col=5, box_scale=scale,
                              suppress=False)
        if variant == "scores" and cols > 4:         # per-class scores: every column after the box
            return HeadLayout(rows, cols, 1, 0, -1, 4, cols - 4, box_scale=scale, suppress=False)
        return None
    if model_type == "yolov8":
        if rows == 4 + num_classes:                  # [4+nc, N]: attributes first
            return HeadLayout(cols, 1, cols, 0, -1, 4, num_classes)
        if cols == 4 + num_classes:                  # transposed export [N, 4+nc]
            return HeadLayout(rows, cols, 1, 0, -1, 4, num_classes)
        return None
    if model_type in ("yolov5", "yolox"):
        if model_type == "yolox" and decoded is not True:
            return None
        if cols != 5 + num_classes:
            return None
        return HeadLayout(rows, cols, 1, 0, 4, 5, num_classes)
    if model_type == "centernet":
        if cols != 6:
            return None
        return HeadLayout(rows, 6, 1, 1, -1, 4, 1, class_col=5)
    return None


_modules: dict[int, Module] = {}


def decode_module(context: CudaContext) -> Module:
    key = int(context.handle)
    module = _modules.get(key)
    if module is None:
        module = _modules[key] = Module(context, kernel_source("decode.cu"), "decode.cu",
                                        ["--fmad=false"])
    return module


def _next_pow2(n: int) -> int:
    p = 1
    while p < n:
        p <<= 1
    return p


class GpuDecoder:
    """Decode + NMS of one output tensor layout, with its own scratch and result buffers."""

    def __init__(self, context: CudaContext, layout: HeadLayout, output_dtype) -> None:
        self.context = context
        self.layout = layout
        module = decode_module(context)
        self.k_candidates = module.kernel("decode_candidates")
        self.k_nms = module.kernel("sort_nms")
        n = layout.n_anchors
        # sort in shared memory when all keys fit into what the device allows per block
        # (minus the ~21 KB of kept boxes), else in global memory
        from cuda.bindings import driver
        from trt_infer_ros.cuda.errors import check
        optin = int(check(driver.cuDeviceGetAttribute(
            driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
            context.device)))
        static = MAX_DET_CAP * (16 + 4 + 4 + 4)
        want = 8 * _next_pow2(n)
        self.shared_keys_bytes = want if want + static <= optin else 0
        if self.shared_keys_bytes > 48 * 1024 - static:
            self.k_nms.set_max_dynamic_shared(self.shared_keys_bytes)
        self.capacity = n
        self.out_layout = OutputLayout(n, layout.anchor_stride, layout.attr_stride,
                                       1 if np.dtype(output_dtype) == np.float16 else 0,
                                       layout.box_format, layout.obj_index, layout.cls_start,
                                       layout.n_classes, layout.class_col, layout.box_scale[0],
                                       layout.box_scale[1], 1 if layout.suppress else 0)
        self.params_host = PinnedBuffer(context, ctypes.sizeof(DecodeParams))
        self.params = DecodeParams.from_address(self.params_host.ptr)
        self.params_dev = DeviceBuffer(context, ctypes.sizeof(DecodeParams))
        self.keys = DeviceBuffer(context, 8 * _next_pow2(n))
        self.boxes = DeviceBuffer(context, 16 * n)
        self.classes = DeviceBuffer(context, 4 * n)
        self.count = DeviceBuffer(context, 8)     # candidates, non-finite rows dropped
        self.result_nbytes = 4 * (HEADER_INTS + ROW_FLOATS * MAX_DET_CAP)
        self.result_dev = DeviceBuffer(context, self.result_nbytes)
        self.result_host = PinnedBuffer(context, self.result_nbytes)
        self.nonfinite = 0        # rows the last read frame dropped for a non-finite number
        self.set_params(0.3, 0.45, 100, None, (1.0, 1.0, 0.0, 0.0, 1.0, 1.0))

    def set_params(self, score_threshold: float, iou_threshold: float, max_detections: int,
                   class_filter, transform: tuple[float, float, float, float, float, float]) -> None:
        """Write the live parameters into the pinned block (read by the next launch).
        `transform` = (scale_x, scale_y, pad_x, pad_y, source_width, source_height)."""
        p = self.params
        p.score_thr = float(np.float32(score_threshold))
        p.iou_thr = float(np.float32(iou_threshold))
        p.max_det = max(0, min(int(max_detections), MAX_DET_CAP))
        if class_filter is None:
            p.use_class_mask = 0
        else:
            mask = [0] * 32
            for c in class_filter:
                c = int(c)
                if 0 <= c < MAX_CLASSES_FILTERED:
                    mask[c >> 5] |= 1 << (c & 31)
            for i in range(32):
                p.class_mask[i] = mask[i]
            p.use_class_mask = 1
        (p.scale_x, p.scale_y, p.pad_x, p.pad_y, p.src_w, p.src_h) = (float(v) for v in transform)

    def enqueue(self, output_ptr: int, stream: Stream) -> None:
        """Decode the model output at `output_ptr` into the pinned result (in flight on `stream`)."""
        copy_async(self.params_dev.ptr, self.params_host.ptr, ctypes.sizeof(DecodeParams), stream)
        memset_u32_async(self.count.ptr, 0, 2, stream)
        n = self.layout.n_anchors
        self.k_candidates.launch(((n + 31) // 32, 1, 1), (32, CLASS_SLICES, 1), [
            ctypes.c_uint64(output_ptr), self.out_layout, ctypes.c_uint64(self.params_dev.ptr),
            ctypes.c_uint64(self.keys.ptr), ctypes.c_uint64(self.boxes.ptr),
            ctypes.c_uint64(self.classes.ptr), ctypes.c_uint64(self.count.ptr)], stream)
        self.k_nms.launch((1, 1, 1), (NMS_THREADS, 1, 1), [
            ctypes.c_uint64(self.keys.ptr), ctypes.c_uint32(self.capacity),
            ctypes.c_uint64(self.boxes.ptr), ctypes.c_uint64(self.classes.ptr),
            ctypes.c_uint64(self.count.ptr), ctypes.c_uint64(self.params_dev.ptr),
            ctypes.c_uint64(self.result_dev.ptr), ctypes.c_uint32(self.shared_keys_bytes // 8),
            ctypes.c_int32(1 if self.layout.suppress else 0)],
            stream, shared_bytes=self.shared_keys_bytes)
        copy_async(self.result_host.ptr, self.result_dev.ptr, self.result_nbytes, stream)

    def poison_result(self) -> None:
        """Fill the pinned result with garbage (tests check that every frame rewrites it)."""
        self.result_host.view(np.uint8)[:] = 0xA5

    def read(self):
        """(boxes [n,4] source pixels, scores [n], class_ids [n]) from the last finished frame,
        copied out of the pinned buffer; also `candidates` (how many passed the threshold).
        Sets `nonfinite`: rows dropped in the kernel for a non-finite number (layouts without
        suppression; the others keep them, the pipeline drops them after reading)."""
        header = self.result_host.view(np.int32, (HEADER_INTS,))
        n = int(header[0])
        if not 0 <= n <= MAX_DET_CAP:
            raise RuntimeError(f"GPU decode result is corrupt (count {n})")
        rows = self.result_host.view(np.float32, (MAX_DET_CAP, ROW_FLOATS),
                                     offset=4 * HEADER_INTS)[:n]
        boxes = np.array(rows[:, :4], np.float32)
        scores = np.array(rows[:, 4], np.float32)
        class_ids = rows[:, 5].astype(np.int32)
        self.nonfinite = int(header[3])
        return boxes, scores, class_ids, int(header[2])

    def close(self) -> None:
        self.params = None
        for name in ("params_host", "params_dev", "keys", "boxes", "classes", "count",
                     "result_dev", "result_host"):
            buf = getattr(self, name, None)
            if buf is not None:
                buf.close()
        self.params = None
