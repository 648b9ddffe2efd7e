"""Detections -> vision_msgs/Detection2DArray; class names -> vision_msgs/LabelInfo."""
from __future__ import annotations

from typing import Sequence

from vision_msgs.msg import (Detection2D, Detection2DArray, LabelInfo, ObjectHypothesisWithPose,
                             VisionClass)

from trt_infer_ros.models.spec import Detections
from trt_infer_ros.pipeline.annotate import label_for


def to_detection_array(detections: Detections, header,
                       class_names: Sequence[str]) -> Detection2DArray:
    """One Detection2D per detection, in source-image pixels, stamped with the image's header.

    - `bbox`: centre and size; an oriented box (OBB head) has its rotation, radians
      counter-clockwise, in `bbox.center.theta` and its unrotated size in size_x/size_y.
    - `id`: "1", "2", ... in publishing order: the pixel value of this detection in the
      instance-mask image (`~/masks`) of a segmentation model.
    - `results[0]`: the class label string and score. A pose model adds one result per keypoint
      after it: `hypothesis.class_id` "keypoint:<index>:<name>" (COCO names for 17 keypoints),
      `hypothesis.score` the keypoint's confidence, `pose.pose.position` x, y in source pixels.
    """
    out = Detection2DArray(header=header)
    angles = detections.angles.tolist() if detections.angles is not None else None
    keypoints = detections.keypoints
    for i, (box, score, class_id) in enumerate(zip(detections.boxes.tolist(),
                                                   detections.scores.tolist(),
                                                   detections.class_ids.tolist())):
        x1, y1, x2, y2 = box
        det = Detection2D(header=header, id=str(i + 1))
        det.bbox.center.position.x = (x1 + x2) / 2.0
        det.bbox.center.position.y = (y1 + y2) / 2.0
        det.bbox.size_x = x2 - x1
        det.bbox.size_y = y2 - y1
        if angles is not None:
            det.bbox.center.theta = float(angles[i])
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = label_for(int(class_id), class_names)
        hypothesis.hypothesis.score = float(score)
        det.results.append(hypothesis)
        if keypoints is not None:
            det.results.extend(_keypoint_results(keypoints[i]))
        out.detections.append(det)
    return out


COCO_KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
                  "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                  "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")


def _keypoint_results(points) -> list:
    names = COCO_KEYPOINTS if len(points) == len(COCO_KEYPOINTS) else None
    results = []
    for k, (x, y, confidence) in enumerate(points.tolist()):
        result = ObjectHypothesisWithPose()
        result.hypothesis.class_id = f"keypoint:{k}" + (f":{names[k]}" if names else "")
        result.hypothesis.score = float(confidence)
        result.pose.pose.position.x = float(x)
        result.pose.pose.position.y = float(y)
        results.append(result)
    return results


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
