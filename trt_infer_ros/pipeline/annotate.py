"""Draws detections on a copy of a frame for the overlay topic and the demo."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from trt_infer_ros.models.spec import Detections
from trt_infer_ros.pipeline.preprocess import convert_color


def _color(class_id: int) -> tuple[int, int, int]:
    # A fixed colour per class; golden-ratio steps keep neighbouring ids far apart in hue.
    hue = int((class_id * 0.618034) % 1.0 * 180)
    bgr = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def to_bgr(image: np.ndarray, encoding: str) -> np.ndarray:
    """A contiguous BGR copy of an image in any supported encoding (never a view of it)."""
    bgr = convert_color(np.ascontiguousarray(image), encoding, "BGR")
    return bgr.copy() if np.shares_memory(bgr, image) else bgr


def draw_detections(image_bgr: np.ndarray, detections: Detections,
                    class_names: Sequence[str]) -> np.ndarray:
    """Boxes and 'label score' tags drawn in place on a BGR image, which is returned.

    Tags go above their box, best score first; a tag that would cover one already drawn moves
    down, so overlapping boxes (a cup on a table) keep both labels readable.
    """
    thickness = max(1, round(min(image_bgr.shape[:2]) / 300))
    order = np.argsort(-detections.scores, kind="stable")
    for i in order:
        x1, y1, x2, y2 = (int(round(v)) for v in detections.boxes[i])
        cv2.rectangle(image_bgr, (x1, y1), (x2, y2), _color(int(detections.class_ids[i])), thickness)
    placed: list[tuple[int, int, int, int]] = []
    for i in order:
        x1, y1 = (int(round(v)) for v in detections.boxes[i][:2])
        class_id = int(detections.class_ids[i])
        text = f"{label_for(class_id, class_names)} {detections.scores[i]:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        w, h = tw + 2, th + base + 2
        top = max(0, y1 - h)
        while any(x1 < px + pw and px < x1 + w and top < py + ph and py < top + h
                  for px, py, pw, ph in placed) and top + h < image_bgr.shape[0]:
            top += h
        placed.append((x1, top, w, h))
        cv2.rectangle(image_bgr, (x1, top), (x1 + w, top + h), _color(class_id), -1)
        cv2.putText(image_bgr, text, (x1 + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return image_bgr


def label_for(class_id: int, class_names: Sequence[str]) -> str:
    """The class name, or the id as text when the model has no name for it."""
    if 0 <= class_id < len(class_names):
        return class_names[class_id]
    return str(class_id)
