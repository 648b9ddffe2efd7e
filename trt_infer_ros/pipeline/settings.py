"""Per-frame settings a user may change while the pipeline runs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class DetectionSettings:
    score_threshold: float = 0.3
    nms_iou_threshold: float = 0.45
    max_detections: int = 100
    class_filter: Optional[frozenset[int]] = None   # None keeps every class
    agnostic_nms: bool = False      # NMS across classes: one box per object whatever its label
