"""Decoders for the YOLO families: YOLOv8/YOLO11, YOLOv5 and YOLOX (raw or decoded heads)."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from trt_infer_ros.models.base import BaseAdapter, best_class, cxcywh_to_xyxy, make_detections
from trt_infer_ros.models.spec import Detections, InputSpec

YOLOX_STRIDES = (8, 16, 32)


def yolo_input_spec(width: int = 640, height: int = 640, **overrides) -> InputSpec:
    """Ultralytics preprocessing: RGB, letterboxed with grey 114, scaled to 0..1."""
    return InputSpec(width=width, height=height, **overrides)


def yolox_input_spec(width: int = 640, height: int = 640, **overrides) -> InputSpec:
    """YOLOX preprocessing (0.1.1+): BGR, raw 0..255 values, the resized image at the top left
    and 114 padding at the bottom and right (YOLOX's `preproc`)."""
    params = dict(color="BGR", scale=1.0, pad_placement="top_left")
    params.update(overrides)
    return InputSpec(width=width, height=height, **params)


def grid_size(width: int, height: int, strides: Sequence[int] = YOLOX_STRIDES) -> int:
    """Number of anchor points of a multi-stride head for this input size."""
    return sum((height // s) * (width // s) for s in strides)


TASK_TYPES = {"detect": "yolov8", "segment": "yolov8_seg", "pose": "yolov8_pose",
              "obb": "yolov8_obb"}


class YoloV8Adapter(BaseAdapter):
    """YOLOv8 / YOLO11 / YOLO12 heads (and YOLO26 exported without end2end): output
    [1, 4+nc+E, N] = cx, cy, w, h, nc class scores (no objectness), E task channels:

    - detect: E = 0;
    - segment: E = 32 mask coefficients, with prototypes [1, 32, H/4, W/4] as the second output;
    - pose: E = K*D keypoint values (x, y[, visibility]) per keypoint, `kpt_shape` = (K, D);
    - obb: E = 1, the rotation angle in radians.
    The extra channels are never read as class scores.
    """

    def __init__(self, input_spec: Optional[InputSpec] = None, class_names=None, num_classes=None,
                 task: str = "detect", kpt_shape: Optional[tuple[int, int]] = None,
                 mask_channels: int = 32):
        if task not in TASK_TYPES:
            raise ValueError(f"unknown YOLO task {task!r}; one of {', '.join(TASK_TYPES)}")
        super().__init__(input_spec or yolo_input_spec(), class_names, num_classes)
        self.task = task
        self.model_type = TASK_TYPES[task]
        self.num_classes = num_classes
        self.kpt_shape = tuple(kpt_shape) if kpt_shape else ((17, 3) if task == "pose" else None)
        self.extra = {"detect": 0, "segment": mask_channels, "obb": 1,
                      "pose": (self.kpt_shape[0] * self.kpt_shape[1]) if self.kpt_shape else 0}[task]

    def _attributes_first(self, p: np.ndarray) -> np.ndarray:
        """[4+nc+E, N] whichever way the export laid it out."""
        if self.num_classes is not None:
            channels = 4 + self.num_classes + self.extra
            if p.shape[0] == channels:
                return p
            if p.shape[1] == channels:
                return p.T
            raise ValueError(f"{self.model_type} output {list(p.shape)} has no axis of "
                             f"{channels} = 4 + {self.num_classes} classes + {self.extra}")
        return p.T if p.shape[0] > p.shape[1] else p   # transposed exports: N is the larger

    def decode(self, outputs: Sequence[np.ndarray], score_threshold: float) -> Detections:
        p = np.asarray(outputs[0])
        p = self._attributes_first(p.reshape(p.shape[-2:]) if p.ndim == 3 else p)
        nc = p.shape[0] - 4 - self.extra
        cls = p[4:4 + nc].astype(np.float32, copy=False)
        # Threshold on the best score first so argmax runs on the few survivors only.
        best = cls.max(axis=0) if cls.shape[1] and nc else np.zeros((p.shape[1],), np.float32)
        keep = np.flatnonzero(best >= score_threshold)
        class_ids = np.argmax(cls[:, keep], axis=0) if nc else np.zeros(keep.shape, np.int64)
        boxes = cxcywh_to_xyxy(p[:4, keep].T.astype(np.float32))
        dets = make_detections(boxes, best[keep], class_ids)
        extra = p[4 + nc:, keep].T.astype(np.float32)          # [n, E]
        return attach_task_outputs(dets, self.task, extra, outputs, self.kpt_shape,
                                   (self.input_spec.width, self.input_spec.height))


def attach_task_outputs(dets: Detections, task: str, extra: np.ndarray, outputs,
                        kpt_shape, input_size) -> Detections:
    """Fill the task fields of `dets` from its rows' extra channels `extra` [n, E]."""
    if task == "obb":
        dets.angles = np.ascontiguousarray(extra[:, 0], np.float32)
    elif task == "pose":
        k, d = kpt_shape
        kpts = extra.reshape(-1, k, d)
        if d == 2:                         # no visibility channel: every keypoint counts as seen
            kpts = np.concatenate([kpts, np.ones((kpts.shape[0], k, 1), np.float32)], axis=2)
        dets.keypoints = np.ascontiguousarray(kpts, np.float32)
    elif task == "segment":
        from trt_infer_ros.models.masks import InstanceMasks
        protos = np.asarray(outputs[1], np.float32)
        dets.masks = InstanceMasks(extra, protos.reshape(protos.shape[-3:]), dets.boxes, input_size)
    return dets


class YoloV5Adapter(BaseAdapter):
    """YOLOv5 (and v7-style heads): output [1, N, 5+nc] = cx, cy, w, h, obj, class scores."""

    model_type = "yolov5"

    def __init__(self, input_spec: Optional[InputSpec] = None, class_names=None, num_classes=None):
        super().__init__(input_spec or yolo_input_spec(), class_names, num_classes)

    def decode(self, outputs: Sequence[np.ndarray], score_threshold: float) -> Detections:
        p = np.asarray(outputs[0], dtype=np.float32)
        p = p.reshape(-1, p.shape[-1])
        return best_class(p[:, 5:], p[:, 4], score_threshold, p[:, :4])


class YoloXAdapter(BaseAdapter):
    """YOLOX: output [1, N, 5+nc]; obj and class scores are already sigmoids.

    `decoded`: True when the graph decodes boxes itself (exported with decode_in_inference),
    False for the raw head (grid offsets and log sizes per stride), None to decide from the
    first output: raw is only possible when N matches the stride grid, and raw offsets are
    small numbers while decoded centres spread over the image.
    """

    model_type = "yolox"

    def __init__(self, input_spec: Optional[InputSpec] = None, class_names=None, num_classes=None,
                 decoded: Optional[bool] = None, strides: Sequence[int] = YOLOX_STRIDES):
        super().__init__(input_spec or yolox_input_spec(), class_names, num_classes)
        self.decoded = decoded
        self.strides = tuple(strides)
        self._grid: Optional[tuple[np.ndarray, np.ndarray]] = None

    def _grid_and_strides(self) -> tuple[np.ndarray, np.ndarray]:
        if self._grid is None:
            w, h = self.input_spec.width, self.input_spec.height
            cells, steps = [], []
            for s in self.strides:
                ys, xs = np.meshgrid(np.arange(h // s), np.arange(w // s), indexing="ij")
                cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
                steps.append(np.full((xs.size, 1), s))
            self._grid = (np.concatenate(cells).astype(np.float32),
                          np.concatenate(steps).astype(np.float32))
        return self._grid

    def _is_decoded(self, p: np.ndarray) -> bool:
        if self.decoded is None:
            raw_possible = p.shape[0] == grid_size(self.input_spec.width, self.input_spec.height,
                                                   self.strides)
            self.decoded = not raw_possible or float(np.median(np.abs(p[:, 0]))) > 4.0
        return self.decoded

    def decode(self, outputs: Sequence[np.ndarray], score_threshold: float) -> Detections:
        p = np.asarray(outputs[0], dtype=np.float32)
        p = p.reshape(-1, p.shape[-1])
        obj = p[:, 4]
        if self._is_decoded(p):
            return best_class(p[:, 5:], obj, score_threshold, p[:, :4])
        if p.shape[0] != grid_size(self.input_spec.width, self.input_spec.height, self.strides):
            raise ValueError(f"raw YOLOX output has {p.shape[0]} rows, but a "
                             f"{self.input_spec.width}x{self.input_spec.height} input with strides "
                             f"{self.strides} gives {grid_size(self.input_spec.width, self.input_spec.height, self.strides)}")
        # Decode only rows that can pass the threshold: exp() on every row is the slow part.
        rows = np.flatnonzero(obj >= score_threshold)
        grid, stride = self._grid_and_strides()
        boxes = np.empty((rows.size, 4), np.float32)
        boxes[:, :2] = (p[rows, :2] + grid[rows]) * stride[rows]
        with np.errstate(over="ignore"):          # an overflow becomes inf: dropped and counted
            boxes[:, 2:] = np.exp(p[rows, 2:4]) * stride[rows]
        return best_class(p[rows, 5:], obj[rows], score_threshold, boxes)
