"""Graphs that end in an NMS layer (TensorRT EfficientNMS and the like).

Outputs: num_dets [1,1], boxes [1,K,4] (x1,y1,x2,y2 input pixels), scores [1,K], classes [1,K].
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from trt_infer_ros.models.base import BaseAdapter, make_detections
from trt_infer_ros.models.spec import Detections, InputSpec
from trt_infer_ros.models.yolo import yolo_input_spec

ROLES = ("num", "boxes", "scores", "classes")
_NAME_HINTS = {"num": ("num",), "boxes": ("box",), "scores": ("score",), "classes": ("class", "label")}


def output_roles(names: Sequence[str]) -> Optional[list[int]]:
    """Indices of (num, boxes, scores, classes) found by output name, or None if unclear."""
    found = []
    for role in ROLES:
        hits = [i for i, n in enumerate(names) if any(h in n.lower() for h in _NAME_HINTS[role])]
        if len(hits) != 1:
            return None
        found.append(hits[0])
    return found if len(set(found)) == 4 else None


class End2EndAdapter(BaseAdapter):
    """NMS already ran in the graph: decode just slices the first num_dets rows.

    `output_names` (the runner's order) lets outputs be matched by name; without it they are
    matched by shape (num [1,1], boxes [1,K,4]) and the two [1,K] outputs by dtype (integer
    classes) or else in scores-then-classes order.
    """

    model_type = "end2end"
    nms_inside = True

    def __init__(self, input_spec: Optional[InputSpec] = None, class_names=None, num_classes=None,
                 output_names: Optional[Sequence[str]] = None):
        super().__init__(input_spec or yolo_input_spec(), class_names, num_classes)
        self.set_output_names(output_names)

    def set_output_names(self, output_names: Optional[Sequence[str]]) -> None:
        """Match outputs by these names (the runner's output order) from now on."""
        self._by_name = output_roles(output_names) if output_names else None

    def _split(self, outputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if self._by_name is not None:
            return [np.asarray(outputs[i]) for i in self._by_name]
        outs = [np.asarray(o) for o in outputs]
        num = next(o for o in outs if o.size == 1)
        boxes = next(o for o in outs if o.ndim >= 2 and o.shape[-1] == 4 and o.size > 1)
        pair = [o for o in outs if o is not num and o is not boxes]
        if len(pair) != 2:
            raise ValueError(f"expected 4 NMS outputs, got shapes {[o.shape for o in outs]}")
        if np.issubdtype(pair[0].dtype, np.integer) and not np.issubdtype(pair[1].dtype, np.integer):
            pair.reverse()
        return [num, boxes, pair[0], pair[1]]

    def decode(self, outputs: Sequence[np.ndarray], score_threshold: float) -> Detections:
        num, boxes, scores, classes = self._split(outputs)
        n = int(num.reshape(-1)[0])
        boxes = boxes.reshape(-1, 4)[:n].astype(np.float32)
        scores = scores.reshape(-1)[:n].astype(np.float32)
        classes = classes.reshape(-1)[:n]
        keep = scores >= score_threshold
        return make_detections(boxes[keep], scores[keep], np.rint(classes[keep]).astype(np.int32))
