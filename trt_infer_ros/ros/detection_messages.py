"""Detections -> vision_msgs/Detection2DArray."""
from __future__ import annotations

from typing import Sequence

from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

from trt_infer_ros.models.spec import Detections
from trt_infer_ros.pipeline.annotate import label_for


def to_detection_array(detections: Detections, header,
                       class_names: Sequence[str]) -> Detection2DArray:
    """One Detection2D per detection, in source-image pixels, stamped with the image's header."""
    out = Detection2DArray(header=header)
    for box, score, class_id in zip(detections.boxes.tolist(), detections.scores.tolist(),
                                    detections.class_ids.tolist()):
        x1, y1, x2, y2 = box
        det = Detection2D(header=header)
        det.bbox.center.position.x = (x1 + x2) / 2.0
        det.bbox.center.position.y = (y1 + y2) / 2.0
        det.bbox.size_x = x2 - x1
        det.bbox.size_y = y2 - y1
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = label_for(int(class_id), class_names)
        hypothesis.hypothesis.score = float(score)
        det.results.append(hypothesis)
        out.detections.append(det)
    return out
