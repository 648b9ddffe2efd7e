"""Default class names for adapters that were given none."""
from __future__ import annotations

from typing import Sequence


def default_class_names(num_classes: int | None) -> list[str]:
    """COCO names for 80-class models, numbered labels ("0", "1", ...) otherwise."""
    if num_classes is None or num_classes == 80:
        try:
            from trt_infer_ros.models.coco import COCO_CLASSES
            if num_classes is None or len(COCO_CLASSES) == num_classes:
                return list(COCO_CLASSES)
        except ImportError:
            pass
    return [str(i) for i in range(num_classes if num_classes is not None else 80)]


def resolve_class_names(class_names: Sequence[str] | None, num_classes: int | None) -> list[str]:
    return list(class_names) if class_names is not None else default_class_names(num_classes)
