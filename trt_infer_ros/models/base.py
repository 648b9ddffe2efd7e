"""Shared pieces of the model adapters: construction and box-format helpers."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from trt_infer_ros.models.labels import resolve_class_names
from trt_infer_ros.models.spec import Detections, InputSpec


class BaseAdapter:
    """Holds what every adapter exposes; subclasses set `model_type`, `nms_inside`, `decode`."""

    model_type = ""
    nms_inside = False

    def __init__(self, input_spec: InputSpec, class_names: Sequence[str] | None = None,
                 num_classes: int | None = None):
        self.input_spec = input_spec
        self.num_classes = num_classes          # None when the outputs do not say
        self.class_names = resolve_class_names(class_names, num_classes)

    def extra_inputs(self) -> dict[str, np.ndarray]:
        """Model inputs besides the image, by name (most models have none)."""
        return {}

    def __repr__(self) -> str:
        s = self.input_spec
        return f"{type(self).__name__}({s.width}x{s.height} {s.layout} {s.color} {s.resize})"


def cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    out = np.empty((b.shape[0], 4), np.float32)
    half_w, half_h = b[:, 2] * 0.5, b[:, 3] * 0.5
    out[:, 0] = b[:, 0] - half_w
    out[:, 1] = b[:, 1] - half_h
    out[:, 2] = b[:, 0] + half_w
    out[:, 3] = b[:, 1] + half_h
    return out


def make_detections(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray) -> Detections:
    return Detections(np.ascontiguousarray(boxes, np.float32).reshape(-1, 4),
                      np.ascontiguousarray(scores, np.float32).reshape(-1),
                      np.ascontiguousarray(class_ids, np.int32).reshape(-1))


def best_class(rows: np.ndarray, obj: np.ndarray | None, score_threshold: float,
               boxes_cxcywh: np.ndarray) -> Detections:
    """Pick each candidate's best class (score = obj * cls when `obj` is given) and threshold."""
    if obj is not None:
        # score = obj * cls <= obj, so rows whose objectness fails can be dropped first.
        pre = obj >= score_threshold
        rows, obj, boxes_cxcywh = rows[pre], obj[pre], boxes_cxcywh[pre]
    class_ids = np.argmax(rows, axis=1) if rows.shape[0] else np.zeros((0,), np.int64)
    scores = rows[np.arange(rows.shape[0]), class_ids]
    if obj is not None:
        scores = scores * obj
    keep = scores >= score_threshold
    return make_detections(cxcywh_to_xyxy(boxes_cxcywh[keep]), scores[keep], class_ids[keep])
