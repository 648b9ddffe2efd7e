"""Detection agreement through pycocotools on hand-made detections."""
import json

import numpy as np
import pytest

pytest.importorskip("pycocotools", reason="the agreement measure needs pycocotools")

from trt_infer_ros.models.spec import Detections
from trt_infer_ros.optimize.agreement import (AgreementError, coco_map, detection_agreement,
                                              load_coco_labels, load_yolo_labels)


def dets(boxes, scores, classes):
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32),
                      np.array(classes, np.int32))


REFERENCE = [dets([[10, 10, 110, 110], [200, 50, 260, 150]], [0.9, 0.8], [0, 2]),
             dets([[30, 40, 130, 140]], [0.7], [1])]


def test_identical_detections_agree_fully():
    result = detection_agreement(REFERENCE, REFERENCE)
    assert result.map50 == pytest.approx(1.0) and result.map50_95 == pytest.approx(1.0)
    assert result.truth_boxes == 3 and result.images == 2


def test_shifted_box_lowers_the_strict_thresholds_only():
    ref = [dets([[0, 0, 100, 100]], [0.9], [0])]
    # shifted by 23 px: IoU = 77 / 123 = 0.626, a match at IoU 0.5, 0.55, 0.6 of the ten
    shifted = [dets([[23, 0, 123, 100]], [0.9], [0])]
    result = detection_agreement(ref, shifted)
    assert result.map50 == pytest.approx(1.0)
    assert result.map50_95 == pytest.approx(0.3)


def test_missing_and_wrong_class_detections():
    cand = [dets([[10, 10, 110, 110]], [0.9], [0]), dets([[30, 40, 130, 140]], [0.7], [5])]
    result = detection_agreement(REFERENCE, cand)
    # class 0 found (AP 1), class 2 missed (AP 0), class 1 missed (AP 0), class 5 has no truth
    assert result.map50 == pytest.approx(1 / 3, abs=1e-6)
    assert detection_agreement(REFERENCE, [Detections(), Detections()]).map50 == 0.0


def test_reference_threshold_drops_weak_reference_boxes():
    weak = [dets([[0, 0, 50, 50], [60, 60, 90, 90]], [0.9, 0.1], [0, 0])]
    only_strong = [dets([[0, 0, 50, 50]], [0.9], [0])]
    assert detection_agreement(weak, only_strong, 0.3).map50 == pytest.approx(1.0)


def test_no_reference_boxes_is_an_error():
    with pytest.raises(AgreementError, match="no boxes"):
        detection_agreement([dets([[0, 0, 1, 1]], [0.1], [0])], [Detections()], 0.3)


def test_labels_coco_and_yolo(tmp_path):
    coco = {"images": [{"id": 7, "file_name": "a.jpg"}, {"id": 8, "file_name": "b.jpg"}],
            "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 3,
                             "bbox": [10, 20, 30, 40]}]}
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(coco))
    truth = load_coco_labels(str(path), ["dir/a.jpg", "b.jpg"])
    np.testing.assert_allclose(truth[0].boxes, [[10, 20, 40, 60]])
    assert truth[0].class_ids.tolist() == [1] and len(truth[1].boxes) == 0
    (tmp_path / "a.txt").write_text("1 0.5 0.5 0.5 0.25\n")
    yolo = load_yolo_labels(str(tmp_path), ["a.jpg"], [(200, 100)])
    np.testing.assert_allclose(yolo[0].boxes, [[50, 37.5, 150, 62.5]])
    assert coco_map(yolo, [dets([[50, 37.5, 150, 62.5]], [0.5], [1])]).map50_95 == 1.0
    with pytest.raises(AgreementError, match="no entry"):
        load_coco_labels(str(path), ["c.jpg"])
