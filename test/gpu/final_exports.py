"""Models whose rows are final detections (no NMS after them): random outputs of Ultralytics
end-to-end [1,K,6] and RT-DETR [1,K,4+nc] / [1,K,6] exports (the two-input deploy form is
onnx_graphs.save_rtdetr_deploy). Scores lie on a 1/64 grid so equal scores are common (ties keep the
lower row first), and a few rows hold inf or NaN."""
from __future__ import annotations

import numpy as np


def boxes_cxcywh(rng, n, width, height):
    """Boxes clustered around a few centres, in input pixels."""
    centres = rng.uniform(0.1, 0.9, size=(max(1, n // 30), 2)) * [width, height]
    cxcy = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 6, size=(n, 2))
    wh = rng.uniform(4, 0.4 * min(width, height), size=(n, 2))
    return np.concatenate([cxcy, wh], axis=1).astype(np.float32)


def grid_scores(rng, shape):
    return (rng.integers(0, 65, shape) / 64).astype(np.float32)


def with_nonfinite(rng, out, count=6):
    """`count` rows get inf, -inf or NaN in a box or score column."""
    rows = rng.choice(out.shape[1], count, replace=False)
    out[0, rows, rng.integers(0, 5, count)] = rng.choice([np.inf, -np.inf, np.nan], count)
    return out


def end2end_output(rng, n, nc, width=640, height=640):
    """x1, y1, x2, y2 in input pixels, score, class index."""
    b = boxes_cxcywh(rng, n, width, height)
    xyxy = np.concatenate([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], axis=1)
    cls = rng.integers(0, nc, (n, 1)).astype(np.float32)
    return with_nonfinite(rng, np.concatenate([xyxy, grid_scores(rng, (n, 1)), cls], 1)[None])


def rtdetr_topk_output(rng, n, nc, width=640, height=640):
    """cx, cy, w, h normalised to the input size, score, class index."""
    b = boxes_cxcywh(rng, n, width, height) / np.float32([width, height, width, height])
    cls = rng.integers(0, nc, (n, 1)).astype(np.float32)
    return with_nonfinite(rng, np.concatenate([b, grid_scores(rng, (n, 1)), cls], 1)[None])


def rtdetr_scores_output(rng, n, nc, width=640, height=640):
    """cx, cy, w, h normalised to the input size, then one score per class (ties between
    classes too: the first maximum wins)."""
    b = boxes_cxcywh(rng, n, width, height) / np.float32([width, height, width, height])
    scores = grid_scores(rng, (n, nc)) ** 3
    return with_nonfinite(rng, np.concatenate([b, scores], 1).astype(np.float32)[None])


