"""Whether a half-precision model finds what the float32 model finds: the tolerance fp16 meets.

The stated tolerance (TOLERANCE): on the check images (the bundled photos), the detections of
each model scoring at least CHECK_THRESHOLD (or the pipeline's threshold when lower: more boxes,
a stronger check) are matched one to one, same class, IoU at least
0.9, scores at most 0.02 apart. A detection with no such partner passes only when it is
borderline: its score within 0.02 of the threshold (or of the lowest score kept when
`max_detections` cut the list), where a 0.02 change alone moves it across. Anything else fails.
With no reference detection at all there is nothing to compare, and the check does not pass.
The reference is the float32 model on onnxruntime's CPU provider, the plain reading of the model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from trt_infer_ros.models.nms import iou
from trt_infer_ros.models.spec import Detections


@dataclass(frozen=True)
class Tolerance:
    min_iou: float = 0.9
    max_score_delta: float = 0.02


TOLERANCE = Tolerance()
CHECK_THRESHOLD = 0.1


@dataclass
class PrecisionCheck:
    images: int = 0
    reference_boxes: int = 0
    matched: int = 0
    borderline: int = 0
    worst_iou: float = 1.0
    worst_score_delta: float = 0.0
    failures: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures and self.reference_boxes > 0

    def __str__(self) -> str:
        if not self.reference_boxes:
            return (f"the float32 model finds nothing on the {self.images} check images, so "
                    "there is nothing to compare")
        head = (f"{self.matched} of {self.reference_boxes} reference detections matched on "
                f"{self.images} images (worst IoU {self.worst_iou:.3f}, worst score change "
                f"{self.worst_score_delta:.4f}), {self.borderline} borderline")
        if self.passed:
            return head + f"; within tolerance (IoU >= {TOLERANCE.min_iou}, score +-" \
                          f"{TOLERANCE.max_score_delta})"
        more = f" (+{len(self.failures) - 3} more)" if len(self.failures) > 3 else ""
        return head + "; outside tolerance: " + "; ".join(self.failures[:3]) + more


def _score_floor(dets: Detections, threshold: float, max_detections: int) -> float:
    """The score a detection must beat to be kept: the threshold, or the lowest kept score when
    the list is full."""
    if len(dets) >= max_detections and len(dets):
        return max(threshold, float(dets.scores.min()))
    return threshold


def compare_detections(reference: Detections, candidate: Detections, threshold: float,
                       max_detections: int, check: PrecisionCheck, image_name: str = "",
                       tol: Tolerance = TOLERANCE) -> None:
    """Match one image's detections and add the outcome to `check`."""
    check.images += 1
    check.reference_boxes += len(reference)
    overlap = iou(reference.boxes, candidate.boxes)
    overlap[reference.class_ids[:, None] != candidate.class_ids[None, :]] = 0.0
    used_ref, used_cand = set(), set()
    # Greedy by overlap, best pairs first.
    for flat in np.argsort(-overlap, axis=None, kind="stable"):
        r, c = (int(i) for i in np.unravel_index(flat, overlap.shape))
        if overlap[r, c] < tol.min_iou:
            break
        if r in used_ref or c in used_cand:
            continue
        used_ref.add(r)
        used_cand.add(c)
        delta = abs(float(reference.scores[r]) - float(candidate.scores[c]))
        check.matched += 1
        check.worst_iou = min(check.worst_iou, float(overlap[r, c]))
        check.worst_score_delta = max(check.worst_score_delta, delta)
        if delta > tol.max_score_delta:
            check.failures.append(f"{image_name}: class {int(reference.class_ids[r])} score "
                                  f"{reference.scores[r]:.3f} -> {candidate.scores[c]:.3f}")
    for dets, used, what in ((reference, used_ref, "lost"), (candidate, used_cand, "new")):
        floor = _score_floor(dets, threshold, max_detections)
        for i in range(len(dets)):
            if i in used:
                continue
            if float(dets.scores[i]) - floor <= tol.max_score_delta:
                check.borderline += 1
                continue
            box = ", ".join(f"{v:.0f}" for v in dets.boxes[i])
            check.failures.append(f"{image_name}: {what} class {int(dets.class_ids[i])} "
                                  f"score {dets.scores[i]:.3f} at [{box}]")


def check_images() -> list[tuple[str, np.ndarray]]:
    """(name, bgr8 pixels) of the bundled photos."""
    from trt_infer_ros.optimize.frames import read_directory
    from trt_infer_ros.resources import sample_images_dir

    return [(s.name, s.image) for s in read_directory(str(sample_images_dir()))]


def check_precision(candidate, reference, images: Sequence[tuple[str, np.ndarray]]
                    ) -> PrecisionCheck:
    """Run both pipelines (one settings object, its threshold lowered to CHECK_THRESHOLD for
    the check) on `images` and compare their detections."""
    check = PrecisionCheck()
    settings = candidate.settings
    reference.settings = settings
    kept = settings.score_threshold
    settings.score_threshold = min(kept, CHECK_THRESHOLD)
    try:
        for name, image in images:
            compare_detections(reference(image, "bgr8"), candidate(image, "bgr8"),
                               settings.score_threshold, settings.max_detections, check, name)
    finally:
        settings.score_threshold = kept
    return check
