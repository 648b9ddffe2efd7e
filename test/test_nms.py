"""NMS and IoU against straightforward per-pair references."""
import numpy as np
import pytest

from trt_infer_ros.models.nms import iou, nms


def pair_iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reference_nms(boxes, scores, classes, threshold, max_detections):
    keep = []
    for i in sorted(range(len(scores)), key=lambda i: -scores[i]):
        if all(classes[i] != classes[k] or pair_iou(boxes[i], boxes[k]) <= threshold for k in keep):
            keep.append(i)
    return keep[:max_detections]


def random_boxes(rng, n, classes):
    # Jittered copies of a few base boxes, so overlaps span the whole IoU range.
    base = rng.uniform(0, 120, (12, 4))
    pick = rng.integers(0, 12, n)
    xy = base[pick, :2] + rng.normal(0, 3, (n, 2))
    wh = 10 + np.abs(base[pick, 2:]) / 3 + rng.normal(0, 3, (n, 2)).clip(-8, 8)
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    return boxes, rng.random(n).astype(np.float32), rng.integers(0, classes, n).astype(np.int32)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_matches_brute_force_class_aware(seed, threshold):
    rng = np.random.default_rng(seed)
    boxes, scores, classes = random_boxes(rng, 150, classes=4)
    got = nms(boxes, scores, classes, threshold, max_detections=1000)
    want = reference_nms(boxes.tolist(), scores.tolist(), classes.tolist(), threshold, 1000)
    assert got.tolist() == want
    assert 0 < len(want) < 150                # the data really exercises suppression


@pytest.mark.parametrize("seed", range(3))
def test_nms_class_agnostic_and_capped(seed):
    rng = np.random.default_rng(100 + seed)
    boxes, scores, _ = random_boxes(rng, 120, classes=1)
    zeros = [0] * 120
    assert nms(boxes, scores, None, 0.5, 1000).tolist() == \
        reference_nms(boxes.tolist(), scores.tolist(), zeros, 0.5, 1000)
    capped = nms(boxes, scores, None, 0.5, 7)
    assert capped.tolist() == reference_nms(boxes.tolist(), scores.tolist(), zeros, 0.5, 7)
    assert np.all(np.diff(scores[capped]) <= 0)   # sorted by score


def test_overlapping_boxes_of_different_classes_both_survive():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    assert nms(boxes, scores, np.array([0, 0, 1]), 0.5, 10).tolist() == [0, 2]
    assert nms(boxes, scores, None, 0.5, 10).tolist() == [0]


def test_nms_empty_input():
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), None).shape == (0,)


def test_iou_matrix_matches_pairwise():
    rng = np.random.default_rng(7)
    a, _, _ = random_boxes(rng, 9, 1)
    b, _, _ = random_boxes(rng, 6, 1)
    want = np.array([[pair_iou(x, y) for y in b.tolist()] for x in a.tolist()])
    np.testing.assert_allclose(iou(a, b), want, atol=1e-6)
    assert iou(np.array([[0, 0, 0, 0]]), np.array([[0, 0, 0, 0]]))[0, 0] == 0.0
