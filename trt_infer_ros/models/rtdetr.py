"""RT-DETR family (RT-DETR, RT-DETRv2, D-FINE): transformer detectors whose queries are final
detections, so there is no NMS.

Three output contracts:
- Ultralytics before 8.4: one output [B, Q, 4+nc] = cx, cy, w, h normalised to 0..1 of the
  input, then per-class scores (sigmoid); each query keeps its best class.
- Ultralytics 8.4 and later: [B, K, 6] = cx, cy, w, h normalised, score, class index.
- The deploy form of the RT-DETR / D-FINE repositories: inputs `images` and
  `orig_target_sizes` [B, 2] (width, height), outputs `labels` [B, Q], `boxes` [B, Q, 4]
  (x1, y1, x2, y2 in orig_target_sizes pixels) and `scores` [B, Q]. The pipeline feeds the
  network input size as orig_target_sizes, so boxes come back in input pixels.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from trt_infer_ros.models.base import BaseAdapter, cxcywh_to_xyxy, make_detections
from trt_infer_ros.models.spec import Detections, InputSpec
from trt_infer_ros.models.yolo import yolo_input_spec

SIZE_INPUT_HINTS = ("orig_target_sizes", "orig_size", "target_size", "im_shape")


def rtdetr_deploy_input_spec(width: int = 640, height: int = 640, **overrides) -> InputSpec:
    """The RT-DETR / D-FINE repositories resize to the input size (no letterbox), RGB, 0..1."""
    params = dict(resize="stretch")
    params.update(overrides)
    return InputSpec(width=width, height=height, **params)


class RtDetrAdapter(BaseAdapter):
    """`layout`: "scores" ([B,Q,4+nc]), "topk" ([B,K,6]) or "deploy" (labels/boxes/scores).

    `output_names` (the runner's order) identify the deploy form's three outputs; without
    names they are told apart by shape (boxes [B,Q,4]) and dtype (integer labels).
    """

    model_type = "rtdetr"
    nms_inside = True

    def __init__(self, input_spec: Optional[InputSpec] = None, class_names=None, num_classes=None,
                 layout: str = "scores", size_input: Optional[str] = None,
                 output_names: Optional[Sequence[str]] = None):
        if layout not in ("scores", "topk", "deploy"):
            raise ValueError(f"unknown RT-DETR layout {layout!r}")
        default = rtdetr_deploy_input_spec() if layout == "deploy" else yolo_input_spec()
        super().__init__(input_spec or default, class_names, num_classes)
        self.layout = layout
        self.size_input = size_input
        self.set_output_names(output_names)

    def set_output_names(self, output_names: Optional[Sequence[str]]) -> None:
        self._names = [n.lower() for n in output_names] if output_names else None

    def extra_inputs(self) -> dict[str, np.ndarray]:
        """Inputs besides the image: the deploy form's target size (network input size)."""
        if self.layout != "deploy" or not self.size_input:
            return {}
        s = self.input_spec
        return {self.size_input: np.array([[s.width, s.height]], np.int64)}

    def decode(self, outputs: Sequence[np.ndarray], score_threshold: float) -> Detections:
        w, h = self.input_spec.width, self.input_spec.height
        if self.layout == "deploy":
            labels, boxes, scores = self._deploy_outputs(outputs)
            keep = scores >= score_threshold
            return make_detections(boxes[keep], scores[keep], labels[keep])
        p = np.asarray(outputs[0], np.float32)
        p = p.reshape(-1, p.shape[-1])
        if self.layout == "topk":
            scores, class_ids = p[:, 4], np.rint(p[:, 5]).astype(np.int32)
        else:
            class_ids = np.argmax(p[:, 4:], axis=1) if p.shape[0] else np.zeros(0, np.int64)
            scores = p[np.arange(p.shape[0]), 4 + class_ids]
        keep = scores >= score_threshold
        boxes = cxcywh_to_xyxy(p[keep, :4] * np.array([w, h, w, h], np.float32))
        return make_detections(boxes, scores[keep], class_ids[keep])

    def _deploy_outputs(self, outputs):
        outs = [np.asarray(o) for o in outputs]
        if self._names and len(self._names) == len(outs):
            def role(word):
                hits = [o for n, o in zip(self._names, outs) if word in n]
                return hits[0] if len(hits) == 1 else None
            labels, boxes, scores = role("label"), role("box"), role("score")
            if labels is not None and boxes is not None and scores is not None:
                return (labels.reshape(-1).astype(np.int32), boxes.reshape(-1, 4).astype(np.float32),
                        scores.reshape(-1).astype(np.float32))
        boxes = next(o for o in outs if o.ndim >= 2 and o.shape[-1] == 4)
        rest = [o for o in outs if o is not boxes]
        labels = next((o for o in rest if np.issubdtype(o.dtype, np.integer)), rest[0])
        scores = next(o for o in rest if o is not labels)
        return (labels.reshape(-1).astype(np.int32), boxes.reshape(-1, 4).astype(np.float32),
                scores.reshape(-1).astype(np.float32))
