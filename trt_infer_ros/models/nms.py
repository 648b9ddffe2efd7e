"""Non-maximum suppression (class-aware or across classes) and IoU, in vectorised numpy;
rotated boxes by ProbIoU."""
from __future__ import annotations

import numpy as np


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Area of x1,y1,x2,y2 boxes; inverted boxes count as empty."""
    return np.clip(boxes[..., 2] - boxes[..., 0], 0, None) * np.clip(boxes[..., 3] - boxes[..., 1], 0, None)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix [len(a), len(b)] between two sets of x1,y1,x2,y2 boxes."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    # Zero-area pairs have IoU 0 rather than NaN.
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray | None = None,
    iou_threshold: float = 0.45,
    max_detections: int = 100,
) -> np.ndarray:
    """Greedy NMS; boxes of different classes never suppress each other.

    Returns the kept indices sorted by descending score, at most `max_detections` of them.
    A box is suppressed when its IoU with a kept box of the same class exceeds `iou_threshold`.
    """
    n = int(scores.shape[0])
    if n == 0 or max_detections <= 0:
        return np.zeros((0,), np.int64)
    boxes = np.asarray(boxes, np.float32)
    classes = None if class_ids is None else np.asarray(class_ids)
    order = np.argsort(-np.asarray(scores), kind="stable")
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    areas = box_area(boxes)
    keep: list[int] = []
    while order.size and len(keep) < max_detections:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        union = areas[i] + areas[rest] - inter
        suppress = inter > iou_threshold * union   # IoU > threshold without dividing by 0
        if classes is not None:
            # A mask (not the coordinate-offset trick) keeps IoU exact in float32.
            suppress &= classes[rest] == classes[i]
        order = rest[~suppress]
    return np.asarray(keep, np.int64)


def _covariance(boxes: np.ndarray, angles: np.ndarray):
    """Gaussian covariance terms (a, b, c) of rotated boxes, as in ProbIoU."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    a0, b0 = w * w / 12.0, h * h / 12.0
    cos, sin = np.cos(angles), np.sin(angles)
    return (a0 * cos ** 2 + b0 * sin ** 2, a0 * sin ** 2 + b0 * cos ** 2, (a0 - b0) * cos * sin)


def probiou(boxes: np.ndarray, angles: np.ndarray, i: int, rest: np.ndarray) -> np.ndarray:
    """ProbIoU (1 - Hellinger distance of the boxes' Gaussians) of box i against `rest`.

    The overlap measure Ultralytics uses for oriented boxes; boxes are the unrotated x1,y1,x2,y2.
    """
    eps = 1e-7
    a, b, c = _covariance(boxes, angles)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) * 0.5, (boxes[:, 1] + boxes[:, 3]) * 0.5
    a1, b1, c1, a2, b2, c2 = a[i], b[i], c[i], a[rest], b[rest], c[rest]
    dx, dy = cx[i] - cx[rest], cy[i] - cy[rest]
    denom = (a1 + a2) * (b1 + b2) - (c1 + c2) ** 2 + eps
    t1 = ((a1 + a2) * dy ** 2 + (b1 + b2) * dx ** 2) / denom * 0.25
    t2 = ((c1 + c2) * (-dx) * dy) / denom * 0.5
    det = np.sqrt(np.clip(a1 * b1 - c1 ** 2, 0, None) * np.clip(a2 * b2 - c2 ** 2, 0, None))
    t3 = np.log(denom / (4 * det + eps) + eps) * 0.5
    bd = np.clip(t1 + t2 + t3, eps, 100.0)
    return 1.0 - np.sqrt(1.0 - np.exp(-bd) + eps)


def rotated_nms(boxes: np.ndarray, angles: np.ndarray, scores: np.ndarray,
                class_ids: np.ndarray | None = None, iou_threshold: float = 0.45,
                max_detections: int = 100) -> np.ndarray:
    """Greedy NMS of oriented boxes by ProbIoU; `class_ids` None suppresses across classes."""
    n = int(scores.shape[0])
    if n == 0 or max_detections <= 0:
        return np.zeros((0,), np.int64)
    boxes = np.asarray(boxes, np.float64)
    angles = np.asarray(angles, np.float64)
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < max_detections:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        suppress = probiou(boxes, angles, i, rest) > iou_threshold
        if class_ids is not None:
            suppress &= class_ids[rest] == class_ids[i]
        order = rest[~suppress]
    return np.asarray(keep, np.int64)
