"""The model-adapter protocol: one model family's input spec and output decoder."""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from trt_infer_ros.models.spec import Detections, InputSpec


class ModelAdapter(Protocol):
    """Knows how one model family wants its input and how to read its outputs.

    `decode` turns raw runner outputs into candidate detections in network-input pixels,
    already filtered by `score_threshold`. NMS is done by the pipeline unless `nms_inside`.
    """

    model_type: str                 # "yolov8", "yolov5", "yolox", "centernet", "end2end"
    input_spec: InputSpec
    class_names: Sequence[str]
    nms_inside: bool

    def decode(self, outputs: Sequence[np.ndarray], score_threshold: float) -> Detections: ...
