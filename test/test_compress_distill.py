"""Label-free distillation recovers agreement that pruning lost, stops on a diverging loss, and
refuses too few frames; the distilled ONNX runs in the detection pipeline."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

pytest.importorskip("tinygrad", reason="the optimize tools need tinygrad (Python 3.11 or later)")
pytest.importorskip("pycocotools", reason="the agreement measure needs pycocotools")

from compress_graphs import tiny_yolo
from onnx_graphs import IMAGES
from trt_infer_ros.models.registry import create_adapter
from trt_infer_ros.optimize.distill import DistillConfig, DistillError, Judge, distill
from trt_infer_ros.optimize.frames import load_frames, split
from trt_infer_ros.optimize.prune_structured import prune_channels
from trt_infer_ros.optimize.trainable import TrainableModel


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("distill") / "tiny_yolo.onnx")
    teacher = tiny_yolo()
    onnx.save(teacher, path)
    adapter = create_adapter("auto", path)
    train, held = split(load_frames(adapter, str(IMAGES), copies=5), 0.34)
    return path, teacher, adapter, train, held, Judge(adapter, teacher, held)


def test_distillation_recovers_agreement_lost_by_pruning(setup, tmp_path):
    path, teacher, adapter, train, held, judge = setup
    pruned = prune_channels(teacher, 0.5).model
    lost = judge.agreement(pruned)
    student = TrainableModel(pruned)
    result = distill(teacher, student, train, judge, DistillConfig(epochs=4, lr=3e-3),
                     log=lambda _: None, progress=False)
    assert result.before.map50 == pytest.approx(lost.map50)
    # at least a quarter of what pruning lost comes back
    assert result.after.map50 >= lost.map50 + 0.25 * (1.0 - lost.map50), result.as_dict()
    assert result.best_epoch >= 1 and not result.stopped
    assert len(result.history) == 4 and all(np.isfinite(r.loss) for r in result.history)

    # the distilled model runs in the detector pipeline like the original
    from trt_infer_ros.pipeline.detector import build_pipeline  # noqa: PLC0415
    out = tmp_path / "distilled.onnx"
    onnx.save(student.to_onnx(), str(out))
    pipeline = build_pipeline(str(out), backend="onnxruntime")
    image = (np.random.default_rng(0).random((48, 80, 3)) * 255).astype(np.uint8)
    detections = pipeline(image, "rgb8")
    assert detections.boxes.shape[1] == 4


def test_diverging_loss_stops_at_last_good_weights(setup):
    _, teacher, _, train, _, judge = setup
    student = TrainableModel(prune_channels(teacher, 0.3).model)
    start = student.raw_state()
    result = distill(teacher, student, train, judge,
                     DistillConfig(epochs=3, lr=50.0),
                     log=lambda _: None, progress=False)
    assert "diverged" in result.stopped
    assert result.after.map50 == result.before.map50 or result.best_epoch >= 1
    if result.best_epoch == 0:
        for name, value in student.raw_state().items():
            np.testing.assert_array_equal(value, start[name])


def test_too_few_frames_is_refused(setup):
    _, teacher, _, train, _, judge = setup
    with pytest.raises(DistillError, match="too few"):
        distill(teacher, TrainableModel(teacher), train[:2], judge, log=lambda _: None)
