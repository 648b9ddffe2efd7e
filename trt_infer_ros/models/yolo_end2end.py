"""Ultralytics end-to-end outputs: NMS-free heads (YOLOv10, YOLO26) and any `nms=True` export.

Output [B, K, 6+E] (K = max_det, 300 by default): x1, y1, x2, y2 in input pixels, score, class
index, then E task channels: 32 mask coefficients (segment, prototypes as a second output),
K*D keypoint values (pose), or the angle (obb; its boxes are cx, cy, w, h instead of corners).
The rows are already the final detections: no NMS.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from trt_infer_ros.models.base import BaseAdapter, cxcywh_to_xyxy, make_detections
from trt_infer_ros.models.spec import Detections, InputSpec
from trt_infer_ros.models.yolo import attach_task_outputs, yolo_input_spec

TASK_EXTRA_NAMES = {"segment": "mask coefficients", "pose": "keypoint values", "obb": "angle"}


class YoloEnd2EndAdapter(BaseAdapter):
    model_type = "yolo_end2end"
    nms_inside = True

    def __init__(self, input_spec: Optional[InputSpec] = None, class_names=None, num_classes=None,
                 task: str = "detect", kpt_shape: Optional[tuple[int, int]] = None):
        super().__init__(input_spec or yolo_input_spec(), class_names, num_classes)
        self.task = task
        self.kpt_shape = tuple(kpt_shape) if kpt_shape else ((17, 3) if task == "pose" else None)

    def decode(self, outputs: Sequence[np.ndarray], score_threshold: float) -> Detections:
        main = next(o for o in outputs if np.ndim(o) == 3)
        p = np.asarray(main, np.float32)
        p = p.reshape(-1, p.shape[-1])
        p = p[p[:, 4] >= score_threshold]
        if self.task == "obb":
            boxes = cxcywh_to_xyxy(p[:, :4])
        else:
            boxes = p[:, :4]
        dets = make_detections(boxes, p[:, 4], np.rint(p[:, 5]).astype(np.int32))
        outputs = [main] + [o for o in outputs if np.ndim(o) == 4]
        return attach_task_outputs(dets, self.task, p[:, 6:], outputs, self.kpt_shape,
                                   (self.input_spec.width, self.input_spec.height))
