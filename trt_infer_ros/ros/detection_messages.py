"""Detections -> vision_msgs/Detection2DArray; class names -> vision_msgs/LabelInfo."""
from __future__ import annotations

from typing import Sequence

from vision_msgs.msg import (Detection2D, Detection2DArray, LabelInfo, ObjectHypothesisWithPose,
                             VisionClass)

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


def to_label_info(class_names: Sequence[str], threshold: float, stamp) -> LabelInfo:
    """The class map, id -> name, as the vision_msgs convention publishes it (once, latched).

    Detections carry the class name itself as hypothesis.class_id, so this map is what a
    consumer needs to get back to the model's numeric ids.
    """
    info = LabelInfo(threshold=float(threshold))
    info.header.stamp = stamp
    info.class_map = [VisionClass(class_id=i, class_name=name)
                      for i, name in enumerate(class_names) if i <= 65535]
    return info
