"""The full per-frame pipeline: real graphs through onnxruntime, boxes back in source pixels."""
import cv2
import numpy as np
import pytest

from onnx_graphs import DEFAULT_MODEL, IMAGES
from trt_infer_ros.backends.onnxruntime_runner import OnnxRuntimeRunner
from trt_infer_ros.models.registry import create_adapter
from trt_infer_ros.models.yolo import grid_size
from trt_infer_ros.pipeline.detector import DetectionPipeline, build_pipeline
from trt_infer_ros.pipeline.settings import DetectionSettings

N = grid_size(64, 64)


@pytest.fixture
def yolov8_model(constant_model):
    """64x64 YOLOv8 head: two overlapping class-0 boxes, one class-2 box on them, one far away."""
    out = np.zeros((1, 4 + 3, N), np.float32)
    out[0, 4:] = 0.01
    rows = {3: ([20, 20, 20, 20], 0, 0.9),      # box 10,10 - 30,30
            9: ([21, 21, 20, 20], 0, 0.8),      # IoU with row 3 ~ 0.82: suppressed
            12: ([20, 20, 20, 20], 2, 0.7),     # same place, other class: kept
            40: ([50, 50, 10, 10], 1, 0.6),
            50: ([50, 10, 8, 8], 1, 0.2)}       # below the default threshold
    for row, (box, cls, score) in rows.items():
        out[0, :4, row] = box
        out[0, 4 + cls, row] = score
    return constant_model({"output0": out})


def test_pipeline_maps_boxes_back_through_the_letterbox(yolov8_model):
    pipeline = build_pipeline(yolov8_model, backend="onnxruntime")
    image = np.zeros((64, 128, 3), np.uint8)       # 2:1 -> scale 0.5, 16 px bands top and bottom
    dets = pipeline(image, "bgr8")
    order = np.argsort(-dets.scores)
    np.testing.assert_allclose(dets.scores[order], [0.9, 0.7, 0.6], rtol=1e-6)
    assert dets.class_ids[order].tolist() == [0, 2, 1]
    # input (x, y) -> source ((x - 0) / 0.5, (y - 16) / 0.5), clipped to the 128x64 image
    np.testing.assert_allclose(dets.boxes[order], [[20, 0, 60, 28], [20, 0, 60, 28],
                                                   [90, 58, 110, 64]], atol=1e-4)
    t = pipeline.timings
    assert t.total > 0 and t.inference > 0 and t.preprocess > 0
    assert abs(t.total - (t.preprocess + t.inference + t.decode + t.nms + t.postprocess)) < 1e-6


def test_a_box_in_the_letterbox_padding_is_not_a_detection(constant_model):
    """Clipped to the image it has no area: it is dropped, the one beside it kept."""
    out = np.zeros((1, 4 + 3, N), np.float32)
    out[0, :4, 5], out[0, 4, 5] = [40, 6, 10, 8], 0.95     # y 2..10: inside the top band
    out[0, :4, 6], out[0, 5, 6] = [40, 30, 10, 8], 0.5     # inside the picture
    pipeline = build_pipeline(constant_model({"output0": out}), backend="onnxruntime")
    dets = pipeline(np.zeros((64, 128, 3), np.uint8), "bgr8")   # 16 px bands top and bottom
    assert dets.class_ids.tolist() == [1]
    np.testing.assert_allclose(dets.boxes, [[70, 20, 90, 36]], atol=1e-4)


def test_settings_changes_apply_on_the_next_frame(yolov8_model):
    adapter = create_adapter("auto", yolov8_model)
    settings = DetectionSettings()
    pipeline = DetectionPipeline(adapter, OnnxRuntimeRunner(yolov8_model), settings)
    image = np.zeros((64, 64, 3), np.uint8)
    assert len(pipeline(image, "rgb8")) == 3
    settings.score_threshold = 0.1
    assert len(pipeline(image, "rgb8")) == 4
    settings.nms_iou_threshold = 0.9              # the overlapping pair no longer merges
    assert len(pipeline(image, "rgb8")) == 5
    settings.max_detections = 2
    assert pipeline(image, "rgb8").scores.tolist() == pytest.approx([0.9, 0.8])
    settings.max_detections = 100
    settings.class_filter = frozenset({1, 2})
    assert sorted(pipeline(image, "rgb8").class_ids.tolist()) == [1, 1, 2]
    settings.class_filter = frozenset()
    assert len(pipeline(image, "rgb8")) == 0


def test_end2end_pipeline_skips_nms_but_keeps_limits(constant_model):
    boxes = np.zeros((1, 5, 4), np.float32)
    boxes[0, :3] = [[10, 10, 30, 30], [11, 11, 30, 30], [40, 40, 50, 50]]   # first two overlap
    scores = np.array([[0.5, 0.9, 0.7, 0, 0]], np.float32)
    classes = np.array([[0, 0, 1, 0, 0]], np.int32)
    path = constant_model({"num_dets": np.array([[3]], np.int32), "det_boxes": boxes,
                           "det_scores": scores, "det_classes": classes})
    settings = DetectionSettings(score_threshold=0.3)
    pipeline = build_pipeline(path, backend="onnxruntime", settings=settings)
    image = np.zeros((64, 64, 3), np.uint8)
    dets = pipeline(image, "bgr8")
    assert dets.scores.tolist() == pytest.approx([0.9, 0.7, 0.5])      # overlap kept, sorted
    settings.max_detections = 1
    assert dets.scores.tolist()[:1] == pipeline(image, "bgr8").scores.tolist()
    settings.max_detections, settings.class_filter = 10, frozenset({1})
    assert pipeline(image, "bgr8").class_ids.tolist() == [1]


def test_mismatched_input_size_is_an_error(yolov8_model):
    adapter = create_adapter("yolov8", input_size=320)
    with pytest.raises(ValueError, match="preprocessing produces"):
        DetectionPipeline(adapter, OnnxRuntimeRunner(yolov8_model))


@pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason=f"default model {DEFAULT_MODEL} not there yet")
@pytest.mark.skipif(not (IMAGES / "astronaut.jpg").is_file(), reason="data/images/astronaut.jpg missing")
def test_default_model_finds_the_astronaut():
    pipeline = build_pipeline(str(DEFAULT_MODEL), backend="onnxruntime")
    assert pipeline.adapter.model_type == "centernet"
    image = cv2.imread(str(IMAGES / "astronaut.jpg"))
    h, w = image.shape[:2]
    dets = pipeline(image, "bgr8")
    people = [i for i, c in enumerate(dets.class_ids)
              if pipeline.adapter.class_names[c] in ("person", "0")]
    assert people, f"no person among {list(zip(dets.class_ids, dets.scores))}"
    best = max(people, key=lambda i: dets.scores[i])
    x1, y1, x2, y2 = dets.boxes[best]
    # The astronaut fills most of the photo: a big box, centred left of the middle.
    assert dets.scores[best] > 0.5
    assert (x2 - x1) * (y2 - y1) > 0.2 * w * h
    assert x1 < w / 2 < x2 and y1 < h / 2 < y2


def test_non_onnx_model_files_use_the_sidecar_or_the_runner(yolov8_model, tmp_path):
    # onnxruntime reads the graph whatever the file is called: it stands in for an engine here.
    engine = tmp_path / "model.engine"
    engine.write_bytes(open(yolov8_model, "rb").read())
    with pytest.raises(ValueError, match="model_type"):
        build_pipeline(str(engine), backend="onnxruntime")
    # Named type: input size and layout come from the runner.
    pipeline = build_pipeline(str(engine), model_type="yolov8", backend="onnxruntime")
    assert pipeline.adapter.input_spec.shape == (1, 3, 64, 64)
    assert len(pipeline(np.zeros((64, 64, 3), np.uint8), "bgr8")) == 3
    # The engine builder's sidecar names the ONNX and model type.
    (tmp_path / "model.engine.json").write_text(
        f'{{"onnx_path": "{yolov8_model}", "build_settings": {{"model_type": "yolov8"}}}}')
    pipeline = build_pipeline(str(engine), backend="onnxruntime")
    assert pipeline.adapter.model_type == "yolov8" and len(pipeline.adapter.class_names) == 3
