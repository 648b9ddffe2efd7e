"""Instance masks of segmentation heads, rendered only when someone asks for them.

A YOLO segmentation head gives each detection 32 mask coefficients and the frame one prototype
tensor [32, H/4, W/4]; a detection's mask is sigmoid(coefficients . prototypes) > 0.5 (logit > 0)
inside its box. Rendering at source resolution costs far more than decoding, so the pipeline
keeps the coefficients and renders when the mask topic has a subscriber.
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from trt_infer_ros.models.spec import ImageTransform


class InstanceMasks:
    """Masks of N detections: coefficients [N, C], prototypes [C, mh, mw], boxes [N, 4].

    `boxes` are in network-input pixels (`input_size` = (width, height)); after `in_source`
    the rendered masks are in source-image pixels.
    """

    def __init__(self, coefficients: np.ndarray, prototypes: np.ndarray, boxes: np.ndarray,
                 input_size: tuple[int, int], transform: Optional[ImageTransform] = None):
        self.coefficients = np.asarray(coefficients, np.float32)             # [N, C]
        self.prototypes = np.asarray(prototypes, np.float32)
        self.boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        self.input_size = input_size
        self.transform = transform

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def select(self, keep) -> "InstanceMasks":
        return InstanceMasks(self.coefficients[keep], self.prototypes, self.boxes[keep],
                             self.input_size, self.transform)

    def in_source(self, transform: ImageTransform) -> "InstanceMasks":
        return InstanceMasks(self.coefficients, self.prototypes, self.boxes, self.input_size,
                             transform)

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the rendered masks."""
        t = self.transform
        return (t.source_width, t.source_height) if t else self.input_size

    def _rendered(self):
        """Yield (row, [H, W] bool mask) one detection at a time (bounded memory)."""
        c, mh, mw = self.prototypes.shape
        in_w, in_h = self.input_size
        out_w, out_h = self.image_size
        t = self.transform
        # The part of the prototype map that shows the image (letterbox bands cut off).
        x0, y0 = (t.pad_x, t.pad_y) if t else (0.0, 0.0)
        x1 = x0 + (t.source_width * t.scale_x if t else in_w)
        y1 = y0 + (t.source_height * t.scale_y if t else in_h)
        sx, sy = mw / in_w, mh / in_h
        region = (slice(max(0, int(round(y0 * sy))), min(mh, int(round(y1 * sy)))),
                  slice(max(0, int(round(x0 * sx))), min(mw, int(round(x1 * sx)))))
        boxes = t.to_source(self.boxes) if t else self.boxes
        protos = self.prototypes.reshape(c, -1)
        for i in range(len(self)):
            logits = (self.coefficients[i] @ protos).reshape(mh, mw)[region]
            full = cv2.resize(np.ascontiguousarray(logits), (out_w, out_h),
                              interpolation=cv2.INTER_LINEAR)
            mask = np.zeros((out_h, out_w), bool)
            bx0, by0 = int(np.floor(max(boxes[i, 0], 0))), int(np.floor(max(boxes[i, 1], 0)))
            bx1, by1 = int(np.ceil(min(boxes[i, 2], out_w))), int(np.ceil(min(boxes[i, 3], out_h)))
            mask[by0:by1, bx0:bx1] = full[by0:by1, bx0:bx1] > 0.0
            yield i, mask

    def boolean(self) -> np.ndarray:
        """[N, H, W] bool masks, row i for detection i."""
        w, h = self.image_size
        out = np.zeros((len(self), h, w), bool)
        for i, mask in self._rendered():
            out[i] = mask
        return out

    def id_image(self) -> np.ndarray:
        """[H, W] uint16 instance image: 0 background, i + 1 where detection i is; where masks
        overlap the earlier (higher-scoring) detection wins."""
        w, h = self.image_size
        out = np.zeros((h, w), np.uint16)
        for i, mask in self._rendered():
            out[mask & (out == 0)] = i + 1
        return out
