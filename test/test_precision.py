"""fp16 copies of ONNX models and the detection tolerance they must meet (pipeline/precision.py).

The matching rules run on hand-made detections; the whole check runs real onnxruntime CPU
pipelines on the bundled CenterNet and photos: its fp16 copy passes, a copy with one layer's
weights damaged does not."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trt_infer_ros.backends.runner import BackendUnavailable
from trt_infer_ros.models.spec import Detections
from trt_infer_ros.pipeline.precision import (CHECK_THRESHOLD, TOLERANCE, PrecisionCheck,
                                              check_images, check_precision, compare_detections)

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "centernet_mobilenetv3_coco.onnx"


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def dets(rows):
    """Detections from (x1, y1, x2, y2, score, class) rows."""
    a = np.asarray(rows, np.float32).reshape(-1, 6)
    return Detections(a[:, :4].copy(), a[:, 4].copy(), a[:, 5].astype(np.int32))


def compare(reference, candidate, threshold=0.3, max_detections=100):
    check = PrecisionCheck()
    compare_detections(dets(reference), dets(candidate), threshold, max_detections, check, "img")
    return check


BOX = [10, 10, 110, 210]


def test_identical_detections_pass_and_nothing_to_compare_does_not():
    check = compare([BOX + [0.9, 3], [200, 0, 260, 50, 0.5, 1]],
                    [[200, 0, 260, 50, 0.5, 1], BOX + [0.9, 3]])
    assert check.passed and check.matched == 2 and check.worst_iou == 1.0
    empty = compare([], [])
    assert not empty.passed and "nothing to compare" in str(empty)


def test_each_rule_of_the_tolerance():
    moved = [BOX[0] + 8, BOX[1], BOX[2] + 8, BOX[3]]              # IoU 0.85 with BOX
    assert not compare([BOX + [0.9, 3]], [moved + [0.9, 3]]).passed
    assert not compare([BOX + [0.9, 3]], [BOX + [0.9, 4]]).passed  # another class
    step = TOLERANCE.max_score_delta
    assert compare([BOX + [0.9, 3]], [BOX + [0.9 - step / 2, 3]]).passed
    worse = compare([BOX + [0.9, 3]], [BOX + [0.9 - 2 * step, 3]])
    assert not worse.passed and "score 0.900 -> 0.860" in str(worse)
    # a detection only one side has passes when a score change within tolerance crosses the
    # threshold, and fails otherwise
    border = compare([BOX + [0.9, 3], [300, 300, 400, 400, 0.31, 2]], [BOX + [0.9, 3]])
    assert border.passed and border.borderline == 1
    lost = compare([BOX + [0.9, 3], [300, 300, 400, 400, 0.6, 2]], [BOX + [0.9, 3]])
    assert not lost.passed and "lost class 2 score 0.600" in str(lost)
    new = compare([BOX + [0.9, 3]], [BOX + [0.9, 3], [300, 300, 400, 400, 0.6, 2]])
    assert not new.passed and "new class 2" in str(new)
    # a full list: the lowest kept score is the line a borderline detection sits on
    full = compare([BOX + [0.9, 3], [300, 300, 400, 400, 0.61, 2]],
                   [BOX + [0.9, 3], [0, 300, 50, 400, 0.6, 5]], max_detections=2)
    assert full.passed and full.borderline == 2


def test_float16_copy_keeps_float32_io_and_is_cached(cache_home):
    import onnx
    import onnxruntime as ort

    from trt_infer_ros.backends.float16 import float16_model_path

    path = float16_model_path(str(MODEL))
    assert Path(path).parent == cache_home / "trt_infer_ros" / "fp16"
    model = onnx.load(path)
    kinds = {init.data_type for init in model.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in kinds
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert [i.type for i in session.get_inputs()] == ["tensor(float)"]
    assert {o.type for o in session.get_outputs()} == {"tensor(float)"}
    stamp = Path(path).stat().st_mtime_ns
    assert float16_model_path(str(MODEL)) == path and Path(path).stat().st_mtime_ns == stamp


def test_float16_refuses_a_model_whose_input_is_not_float32(cache_home, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from trt_infer_ros.backends.float16 import float16_model_path

    graph = helper.make_graph([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)],
                              "g", [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    path = tmp_path / "u8.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(BackendUnavailable, match="not float32"):
        float16_model_path(str(path))


def _damaged_copy(tmp_path) -> str:
    """The bundled model with its largest 3x3 conv's weights scaled by 1.5."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(MODEL))
    inits = {i.name: i for i in model.graph.initializer}
    weights = [inits[n.input[1]] for n in model.graph.node
               if n.op_type == "Conv" and n.input[1] in inits and len(inits[n.input[1]].dims) == 4
               and inits[n.input[1]].dims[2] == 3]
    target = max(weights, key=lambda w: int(np.prod(w.dims)))
    target.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(target) * 1.5, target.name))
    path = tmp_path / "damaged.onnx"
    onnx.save(model, str(path))
    return str(path)


def test_the_check_passes_fp16_and_refuses_a_damaged_model(cache_home, tmp_path):
    from trt_infer_ros.backends.float16 import float16_model_path
    from trt_infer_ros.pipeline.detector import build_pipeline
    from trt_infer_ros.pipeline.settings import DetectionSettings

    images = check_images()
    assert len(images) >= 3
    settings = DetectionSettings(0.3, 0.45, 100)
    reference = build_pipeline(str(MODEL), backend="onnxruntime", device="CPU", settings=settings)
    pipes = [reference]
    try:
        fp16 = build_pipeline(float16_model_path(str(MODEL)), backend="onnxruntime",
                              device="CPU", settings=settings)
        pipes.append(fp16)
        good = check_precision(fp16, reference, images)
        assert good.passed, str(good)
        assert good.reference_boxes >= 5 and good.worst_iou >= TOLERANCE.min_iou
        damaged = build_pipeline(_damaged_copy(tmp_path), backend="onnxruntime", device="CPU",
                                 settings=settings)
        pipes.append(damaged)
        bad = check_precision(damaged, reference, images)
        assert not bad.passed and "outside tolerance" in str(bad), str(bad)
        # the check lowered the threshold for itself only
        assert settings.score_threshold == 0.3 and CHECK_THRESHOLD < 0.3
    finally:
        for pipe in pipes:
            pipe.runner.close()


@pytest.mark.parametrize("backend, precision, installed, expected", [
    ("auto", "auto", ["onnxruntime", "tinygrad"], ["onnxruntime", "tinygrad", "onnxruntime-fp16"]),
    ("auto", "fp32", ["onnxruntime", "tinygrad"], ["onnxruntime", "tinygrad"]),
    ("auto", "fp16", ["onnxruntime", "tinygrad"], ["onnxruntime-fp16"]),
    ("onnxruntime", "auto", ["onnxruntime", "tinygrad"], ["onnxruntime", "onnxruntime-fp16"]),
    ("tinygrad", "auto", ["onnxruntime", "tinygrad"], ["tinygrad"]),
    ("auto", "auto", ["tinygrad"], ["tinygrad"]),
    ("auto", "fp16", ["tinygrad"], "not installed"),
    ("tinygrad", "fp16", ["onnxruntime", "tinygrad"], "excludes"),
])
def test_gpu_candidates_follow_backend_and_precision(backend, precision, installed, expected):
    from trt_infer_ros.pipeline.gpu_runner_choice import gpu_candidates

    if isinstance(expected, str):
        with pytest.raises(BackendUnavailable, match=expected):
            gpu_candidates(backend, precision, installed)
    else:
        assert gpu_candidates(backend, precision, installed) == expected
