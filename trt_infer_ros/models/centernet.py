"""CenterNet-style detectors that emit final boxes: output [1, N, 6] = x1,y1,x2,y2,score,class."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from trt_infer_ros.models.base import BaseAdapter, make_detections
from trt_infer_ros.models.spec import Detections, InputSpec


def centernet_input_spec(width: int = 512, height: int = 512, **overrides) -> InputSpec:
    """The default model's input: NHWC RGB floats in 0..255, letterboxed with black, no mean/std.

    The model was trained on aspect-preserving, zero-padded inputs: letterboxing scores real
    objects higher than stretching on non-square photos (models/MODEL_CARD.md has the numbers).
    """
    params = dict(layout="NHWC", color="RGB", resize="letterbox", scale=1.0, pad_value=0)
    params.update(overrides)
    return InputSpec(width=width, height=height, **params)


class CenterNetAdapter(BaseAdapter):
    """Boxes are in network-input pixels; the graph already picked its top N (no NMS inside)."""

    model_type = "centernet"

    def __init__(self, input_spec: Optional[InputSpec] = None, class_names=None, num_classes=None):
        super().__init__(input_spec or centernet_input_spec(), class_names, num_classes)

    def decode(self, outputs: Sequence[np.ndarray], score_threshold: float) -> Detections:
        p = np.asarray(outputs[0], dtype=np.float32)
        p = p.reshape(-1, p.shape[-1])
        keep = p[:, 4] >= score_threshold
        return make_detections(p[keep, :4], p[keep, 4], np.rint(p[keep, 5]).astype(np.int32))
