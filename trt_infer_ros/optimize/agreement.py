"""Detection agreement: mAP of a candidate model's detections, scored by pycocotools' COCOeval.

Without labels the ground truth is the FP32 model's own detections (those above
`reference_threshold`) on held-out images, so 1.0 means "INT8 finds what FP32 finds, as
confidently ranked"; with labels (COCO json or YOLO txt) the same evaluator gives true mAP.
Boxes are x1, y1, x2, y2 in source-image pixels; class ids are the model's (0-based).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from trt_infer_ros.models.spec import Detections


class AgreementError(ValueError):
    """The measure is undefined (no reference boxes) or the labels cannot be read."""


@dataclass
class GroundTruth:
    """Boxes (x1, y1, x2, y2 pixels) and 0-based class ids of one image."""

    boxes: np.ndarray
    class_ids: np.ndarray


@dataclass
class Agreement:
    map50: float               # mAP at IoU 0.5
    map50_95: float            # mAP averaged over IoU 0.5:0.05:0.95 (the COCO metric)
    truth_boxes: int
    candidate_boxes: int
    images: int

    def as_dict(self) -> dict:
        return {"map50": round(self.map50, 5), "map50_95": round(self.map50_95, 5),
                "truth_boxes": self.truth_boxes, "candidate_boxes": self.candidate_boxes,
                "images": self.images}

    def __str__(self) -> str:
        return (f"mAP@0.5 {self.map50:.4f}, mAP@0.5:0.95 {self.map50_95:.4f} "
                f"({self.truth_boxes} reference boxes, {self.candidate_boxes} candidate, "
                f"{self.images} images)")


def _xywh(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0],
                     boxes[:, 3] - boxes[:, 1]], axis=1)


def reference_truth(reference: Sequence[Detections], threshold: float) -> list[GroundTruth]:
    """The FP32 detections scoring at least `threshold`, as ground truth."""
    out = []
    for dets in reference:
        keep = np.asarray(dets.scores) >= threshold
        out.append(GroundTruth(np.asarray(dets.boxes)[keep], np.asarray(dets.class_ids)[keep]))
    return out


def _has_area(xywh: np.ndarray) -> bool:
    """COCOeval gives a box without area IoU 0 with everything, itself included: such a box (one
    clipped to the image edge, or lying in the letterbox padding) could never be matched, and
    counted it would make even the FP32 model disagree with itself."""
    return bool(xywh[2] > 0 and xywh[3] > 0)


def coco_map(truth: Sequence[GroundTruth], candidate: Sequence[Detections]) -> Agreement:
    """COCO mAP@0.5 and mAP@0.5:0.95 of `candidate` against `truth`, image by image."""
    from pycocotools.coco import COCO  # noqa: PLC0415 - only the optimization tools need it
    from pycocotools.cocoeval import COCOeval  # noqa: PLC0415

    if len(truth) != len(candidate):
        raise AgreementError(f"{len(truth)} ground-truth images but {len(candidate)} candidates")
    images, annotations, results, classes = [], [], [], set()
    for image_id, (gt, dets) in enumerate(zip(truth, candidate), start=1):
        images.append({"id": image_id})
        for box, cls in zip(_xywh(gt.boxes), np.asarray(gt.class_ids)):
            if not _has_area(box):
                continue
            classes.add(int(cls))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": int(cls) + 1, "bbox": [float(v) for v in box],
                                "area": float(box[2] * box[3]), "iscrowd": 0})
        for box, cls, score in zip(_xywh(dets.boxes), np.asarray(dets.class_ids),
                                   np.asarray(dets.scores)):
            if not _has_area(box):
                continue
            classes.add(int(cls))
            results.append({"image_id": image_id, "category_id": int(cls) + 1,
                            "bbox": [float(v) for v in box], "score": float(score)})
    if not annotations:
        raise AgreementError("the reference has no boxes on these images: agreement is undefined "
                             "(lower the reference score threshold or use images where the "
                             "FP32 model detects something)")
    agreement = Agreement(0.0, 0.0, len(annotations), len(results), len(images))
    if not results:
        return agreement
    with contextlib.redirect_stdout(io.StringIO()):     # pycocotools prints its progress
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations,
                      "categories": [{"id": c + 1, "name": str(c)} for c in sorted(classes)]}
        gt.createIndex()
        dt = gt.loadRes(results)
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    # rounded so that float noise in the 101-point average does not hide a perfect 1.0
    agreement.map50_95 = round(max(float(evaluator.stats[0]), 0.0), 9)
    agreement.map50 = round(max(float(evaluator.stats[1]), 0.0), 9)
    return agreement


def detection_agreement(reference: Sequence[Detections], candidate: Sequence[Detections],
                        reference_threshold: float = 0.3) -> Agreement:
    """Agreement of `candidate` with the FP32 `reference` on the same images."""
    return coco_map(reference_truth(reference, reference_threshold), candidate)


# --- labels ----------------------------------------------------------------------------------

def load_coco_labels(path: str, image_names: Sequence[str]) -> list[GroundTruth]:
    """Ground truth for `image_names` (matched by file name) from a COCO json. Category ids are
    mapped, in ascending order, to the model's contiguous 0-based classes (COCO 1..90 -> 0..79)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        by_name = {os.path.basename(img["file_name"]): img["id"] for img in data["images"]}
        class_of = {c["id"]: i for i, c in enumerate(sorted(data["categories"],
                                                            key=lambda c: c["id"]))}
        boxes: dict = {}
        for ann in data["annotations"]:
            x, y, w, h = ann["bbox"]
            boxes.setdefault(ann["image_id"], []).append(
                ([x, y, x + w, y + h], class_of[ann["category_id"]]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AgreementError(f"{path}: not a readable COCO annotation file ({exc})") from exc
    missing = [n for n in image_names if os.path.basename(n) not in by_name]
    if missing:
        raise AgreementError(f"{path} has no entry for {len(missing)} image(s), e.g. "
                             f"{missing[0]!r}")
    return [_truth(boxes.get(by_name[os.path.basename(n)], [])) for n in image_names]


def load_yolo_labels(directory: str, image_names: Sequence[str],
                     image_sizes: Sequence[tuple[int, int]]) -> list[GroundTruth]:
    """Ground truth from YOLO txt files (`<stem>.txt`: class cx cy w h, normalised) for images
    of the given (width, height); an image without a file has no objects."""
    out = []
    for name, (width, height) in zip(image_names, image_sizes):
        path = os.path.join(directory, os.path.splitext(os.path.basename(name))[0] + ".txt")
        rows = []
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f, start=1):
                    parts = line.split()
                    if not parts:
                        continue
                    try:
                        cls, cx, cy, w, h = int(parts[0]), *map(float, parts[1:5])
                    except (ValueError, TypeError) as exc:
                        raise AgreementError(f"{path}:{number}: expected 'class cx cy w h', "
                                             f"got {line.strip()!r}") from exc
                    rows.append(([(cx - w / 2) * width, (cy - h / 2) * height,
                                  (cx + w / 2) * width, (cy + h / 2) * height], cls))
        out.append(_truth(rows))
    return out


def load_labels(path: str, image_names: Sequence[str],
                image_sizes: Sequence[tuple[int, int]]) -> Optional[list[GroundTruth]]:
    """COCO json (a .json file) or YOLO txt labels (a directory); None when `path` is empty."""
    if not path:
        return None
    if os.path.isdir(path):
        return load_yolo_labels(path, image_names, image_sizes)
    if path.lower().endswith(".json"):
        return load_coco_labels(path, image_names)
    raise AgreementError(f"labels {path!r}: give a COCO .json file or a directory of YOLO .txt")


def _truth(rows) -> GroundTruth:
    if not rows:
        return GroundTruth(np.zeros((0, 4), np.float32), np.zeros((0,), np.int32))
    return GroundTruth(np.array([r[0] for r in rows], np.float32),
                       np.array([r[1] for r in rows], np.int32))
