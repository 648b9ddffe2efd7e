"""Ultralytics export contracts (end-to-end, RT-DETR, segment, pose, OBB, dynamic, metadata)
on real ONNX graphs run by onnxruntime, with known outputs."""
import numpy as np
import pytest
from onnx import helper

from onnx_graphs import DEFAULT_MODEL, save_export, save_rtdetr_deploy, ultralytics_metadata
from trt_infer_ros.backends.onnxruntime_runner import OnnxRuntimeRunner
from trt_infer_ros.models.registry import create_adapter, detect_model_type
from trt_infer_ros.models.yolo import grid_size
from trt_infer_ros.pipeline.detector import build_pipeline
from trt_infer_ros.pipeline.settings import DetectionSettings

N = grid_size(64, 64)                      # 84 anchor points at 64x64
IMAGE = np.zeros((1, 3, 64, 64), np.float32)


def rows_by_score(dets):
    return np.argsort(-dets.scores, kind="stable")


# -- 1. end-to-end [B, 300, 6] ------------------------------------------------------------------

def e2e_output(rows=300):
    out = np.zeros((1, rows, 6), np.float32)
    out[0, 0] = [10, 20, 30, 40, 0.9, 2]
    out[0, 1] = [0, 0, 16, 16, 0.5, 0]
    out[0, 2] = [5, 5, 6, 6, 0.1, 1]                 # below the threshold
    return out


def test_end2end_output_is_its_own_type_with_ultralytics_preprocessing(tmp_path):
    path = save_export(tmp_path / "yolo26n.onnx", {"output0": e2e_output()},
                       metadata=ultralytics_metadata(end2end=True))
    assert detect_model_type(path) == "yolo_end2end"
    adapter = create_adapter("auto", path)
    s = adapter.input_spec
    assert (s.layout, s.color, s.scale, s.pad_value, s.resize, s.pad_placement) == \
        ("NCHW", "RGB", 1 / 255, 114, "letterbox", "center")
    assert adapter.nms_inside and adapter.class_names == ["person", "bicycle", "car"]
    dets = adapter.decode(OnnxRuntimeRunner(path).run(IMAGE), 0.3)
    np.testing.assert_allclose(dets.boxes, [[10, 20, 30, 40], [0, 0, 16, 16]])
    assert dets.class_ids.tolist() == [2, 0]
    # Through the pipeline: a 128x64 image is letterboxed with 16-pixel bands; the second box
    # lies wholly in the top band, so it is no detection in the image.
    pipe = build_pipeline(path, backend="onnxruntime")
    got = pipe(np.zeros((64, 128, 3), np.uint8), "bgr8")
    np.testing.assert_allclose(got.boxes[rows_by_score(got)], [[20, 8, 60, 48]], atol=1e-4)


def test_end2end_is_told_from_centernet_by_the_input_never_by_the_last_dimension(tmp_path):
    nchw = save_export(tmp_path / "a.onnx", {"output0": e2e_output()})              # no metadata
    nhwc = save_export(tmp_path / "b.onnx", {"detections": e2e_output(100)},
                       input_shape=(1, 64, 64, 3))
    assert detect_model_type(nchw) == "yolo_end2end"
    assert detect_model_type(nhwc) == "centernet"
    assert detect_model_type(str(DEFAULT_MODEL)) == "centernet"
    # The NMS-layer type does not fit a [1, 300, 6] output: refused, with what auto chooses.
    with pytest.raises(ValueError, match=r"model_type 'end2end' expects .*auto-detection "
                                         r"chooses 'yolo_end2end'"):
        create_adapter("end2end", nchw)


def test_explicit_model_type_is_checked_against_the_model():
    with pytest.raises(ValueError, match=r"model_type 'yolov8' expects .*\[1,100,6\].*"
                                         r"auto-detection chooses 'centernet'"):
        create_adapter("yolov8", str(DEFAULT_MODEL))
    # Preprocessing-only callers (INT8 calibration of a partial graph) may skip the check.
    assert create_adapter("yolov8", str(DEFAULT_MODEL), check_outputs=False).input_spec.layout == "NHWC"


# -- 2. metadata and labels ---------------------------------------------------------------------

def test_names_and_size_come_from_metadata_and_labels_override(tmp_path):
    out = np.zeros((1, 4 + 3, N), np.float32)
    path = save_export(tmp_path / "m.onnx", {"output0": out}, metadata=ultralytics_metadata())
    adapter = create_adapter("auto", path)
    assert adapter.class_names == ["person", "bicycle", "car"]
    assert "static input shape" in adapter.selection and "yolov8" in adapter.selection
    (tmp_path / "l.txt").write_text("# my classes\ncat\n\ndog\ncow\n")
    (tmp_path / "l.yaml").write_text("names:\n  2: cow\n  0: cat\n  1: dog\n")
    (tmp_path / "l.json").write_text('["cat", "dog", "cow"]')
    for name in ("l.txt", "l.yaml", "l.json"):
        assert create_adapter("auto", path, labels=str(tmp_path / name)).class_names == \
            ["cat", "dog", "cow"]
    (tmp_path / "short.txt").write_text("cat\n")
    with pytest.raises(ValueError, match="1 class names in labels file .* model has 3 classes"):
        create_adapter("auto", path, labels=str(tmp_path / "short.txt"))
    # A background line on top would shift every name by one: refused, not published.
    (tmp_path / "background.txt").write_text("background\ncat\ndog\ncow\n")
    with pytest.raises(ValueError, match="4 class names in labels file .* model has 3 classes"):
        create_adapter("auto", path, labels=str(tmp_path / "background.txt"))


def test_load_labels_errors_are_clear(tmp_path):
    from trt_infer_ros.models.labels import LabelsError, load_labels
    (tmp_path / "gap.yaml").write_text("{0: a, 2: c}")
    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(LabelsError, match="class ids must run 0..1 without gaps"):
        load_labels(tmp_path / "gap.yaml")
    with pytest.raises(LabelsError, match="holds no class names"):
        load_labels(tmp_path / "empty.txt")
    with pytest.raises(LabelsError, match="not valid YAML/JSON"):
        load_labels(tmp_path / "bad.json")
    with pytest.raises(LabelsError, match="does not exist"):
        load_labels(tmp_path / "missing.txt")


def test_metadata_values_are_parsed_without_executing_them():
    from trt_infer_ros.models.metadata import parse_metadata
    meta = parse_metadata({"names": "{0: 'a', 1: 'b'}", "imgsz": "[384, 640]", "stride": "32",
                           "task": "pose", "kpt_shape": "[17, 3]", "end2end": "True",
                           "args": "{'nms': False, 'dynamic': True}",
                           "batch": "__import__('os').system('true')"})
    assert meta.names == ["a", "b"] and meta.imgsz == (384, 640) and meta.stride == 32
    assert meta.task == "pose" and meta.kpt_shape == (17, 3) and meta.end2end is True
    assert meta.batch is None and any("batch" in p for p in meta.problems)


# -- 3. RT-DETR ---------------------------------------------------------------------------------

def test_rtdetr_scores_and_topk_forms(tmp_path):
    scores_form = np.zeros((1, 300, 4 + 3), np.float32)
    scores_form[0, 7] = [0.5, 0.5, 0.25, 0.5, 0.1, 0.8, 0.2]    # cx, cy, w, h of 64x64
    meta = ultralytics_metadata(description="Ultralytics RTDETR-L model", head="RTDETRDecoder")
    old = save_export(tmp_path / "old.onnx", {"output0": scores_form})
    assert detect_model_type(old) == "rtdetr"                       # no metadata needed
    adapter = create_adapter("auto", old)
    dets = adapter.decode(OnnxRuntimeRunner(old).run(IMAGE), 0.3)
    np.testing.assert_allclose(dets.boxes, [[24, 16, 40, 48]])
    assert dets.class_ids.tolist() == [1] and adapter.nms_inside
    topk = np.zeros((1, 300, 6), np.float32)
    topk[0, 0] = [0.5, 0.5, 0.25, 0.5, 0.7, 2]
    new = save_export(tmp_path / "new.onnx", {"output0": topk}, metadata=meta)
    assert detect_model_type(new) == "rtdetr"
    dets = create_adapter("auto", new).decode(OnnxRuntimeRunner(new).run(IMAGE), 0.3)
    np.testing.assert_allclose(dets.boxes, [[24, 16, 40, 48]])
    assert dets.class_ids.tolist() == [2]


def test_rtdetr_deploy_form_gets_the_target_size_input(tmp_path):
    """images + orig_target_sizes -> labels, boxes (in target-size pixels), scores."""
    path = save_rtdetr_deploy(tmp_path / "rtdetr_deploy.onnx")
    assert detect_model_type(path) == "rtdetr"
    pipe = build_pipeline(path, backend="onnxruntime")
    assert pipe.adapter.input_spec.resize == "stretch"
    dets = pipe(np.zeros((32, 128, 3), np.uint8), "bgr8")     # stretched: x / 0.5, y * 2
    np.testing.assert_allclose(dets.boxes, [[32, 8, 64, 24]], atol=1e-4)
    assert dets.class_ids.tolist() == [2]


# -- 4. dynamic exports -------------------------------------------------------------------------

def test_dynamic_exports_take_the_size_from_metadata_or_input_size(tmp_path):
    out = np.zeros((1, 84, N), np.float32)
    dyn = dict(input_shape=("batch", 3, "height", "width"),
               declared={"output0": ("batch", 84, "anchors")})
    with_meta = save_export(tmp_path / "a.onnx", {"output0": out},
                            metadata=ultralytics_metadata(imgsz=(384, 640), dynamic=True,
                                                          names=[str(i) for i in range(80)]), **dyn)
    adapter = create_adapter("auto", with_meta)
    assert adapter.input_spec.shape == (1, 3, 384, 640)
    assert "metadata (imgsz)" in adapter.selection
    assert create_adapter("auto", with_meta, input_size="320x256").input_spec.shape == (1, 3, 256, 320)
    bare = save_export(tmp_path / "b.onnx", {"output0": out}, **dyn)
    with pytest.raises(ValueError, match="dynamic size .* set input_size, e.g. 640 or 640x384"):
        create_adapter("auto", bare)
    with pytest.raises(ValueError, match="not a multiple of the model's stride 32"):
        create_adapter("auto", bare, input_size=650)
    pipe = build_pipeline(bare, backend="onnxruntime", input_size=64)
    assert len(pipe(np.zeros((64, 64, 3), np.uint8), "bgr8")) == 0


# -- 5. transposed YOLOv8 vs YOLOX, non-finite values -------------------------------------------

def test_transposed_yolov8_is_not_read_as_yolox(tmp_path):
    n = grid_size(128, 128)
    big = dict(input_shape=(1, 3, 128, 128))
    out = np.zeros((1, n, 84), np.float32)
    out[0, 3] = 0
    out[0, 3, :4] = [20, 20, 10, 10]
    out[0, 3, 4 + 5] = 0.9
    softmax = [helper.make_node("Softmax", ["c9"], ["dfl"], axis=-1)]   # YOLOv8's DFL
    v8 = save_export(tmp_path / "v8t.onnx", {"output0": out}, extra_nodes=softmax,
                     extra_inits={"c9": np.zeros((1, 4), np.float32)}, **big)
    assert detect_model_type(v8) == "yolov8"
    with_meta = save_export(tmp_path / "meta.onnx", {"output0": out}, **big,
                            metadata=ultralytics_metadata(names=[str(i) for i in range(80)],
                                                          imgsz=(128, 128)))
    assert detect_model_type(with_meta) == "yolov8"
    dets = build_pipeline(v8, backend="onnxruntime")(np.zeros((128, 128, 3), np.uint8), "bgr8")
    np.testing.assert_allclose(dets.boxes, [[15, 15, 25, 25]])
    assert dets.class_ids.tolist() == [5] and np.isfinite(dets.boxes).all()
    yolox = save_export(tmp_path / "x.onnx", {"output": np.zeros((1, n, 85), np.float32)}, **big)
    assert detect_model_type(yolox) == "yolox"


def test_non_finite_detections_are_dropped_and_counted(tmp_path):
    out = np.zeros((1, N, 7), np.float32)
    out[0, 0] = [0.5, 0.5, 200.0, 0.0, 0.9, 0.9, 0.1]         # raw YOLOX: exp(200) = inf
    out[0, 1] = [0.5, 0.5, 0.0, 0.0, 0.9, 0.1, 0.9]           # finite: 8x8 box at (4, 4)
    path = save_export(tmp_path / "x.onnx", {"output": out})
    pipe = build_pipeline(path, model_type="yolox", backend="onnxruntime")
    dets = pipe(np.zeros((64, 64, 3), np.uint8), "bgr8")
    assert len(dets) == 1 and np.isfinite(dets.boxes).all() and pipe.nonfinite_dropped == 1
    pipe(np.zeros((64, 64, 3), np.uint8), "bgr8")
    assert pipe.nonfinite_dropped == 2


# -- 6. segment, pose, OBB ----------------------------------------------------------------------

def test_segmentation_head_gives_boxes_and_instance_masks(tmp_path):
    out = np.zeros((1, 4 + 2 + 32, N), np.float32)
    out[0, :4, 0] = [10, 32, 20, 64]                           # box 0,0 - 20,64
    out[0, 4 + 1, 0] = 0.8
    out[0, 6, 0] = 1.0                                         # mask = prototype 0
    out[0, 6 + 1:, 1:] = 50.0                                  # coefficients never read as scores
    protos = -np.ones((1, 32, 16, 16), np.float32)
    protos[0, 0, :8, :8] = 1.0                                 # top-left quarter
    path = save_export(tmp_path / "seg.onnx", {"output0": out, "output1": protos},
                       metadata=ultralytics_metadata(task="segment", names=["a", "b"]))
    assert detect_model_type(path) == "yolov8_seg"
    pipe = build_pipeline(path, backend="onnxruntime")
    dets = pipe(np.zeros((64, 64, 3), np.uint8), "bgr8")
    assert len(dets) == 1 and dets.class_ids.tolist() == [1] and float(dets.scores[0]) <= 1
    ids = dets.masks.id_image()
    assert ids.shape == (64, 64) and ids.dtype == np.uint16
    want = np.zeros((64, 64), np.uint16)
    want[:32, :20] = 1                                         # prototype quarter, cut to the box
    np.testing.assert_array_equal(ids, want)
    assert dets.masks.boolean().shape == (1, 64, 64)


def test_pose_head_gives_keypoints_in_source_pixels(tmp_path):
    out = np.zeros((1, 4 + 1 + 51, N), np.float32)
    out[0, :4, 2] = [32, 32, 20, 40]
    out[0, 4, 2] = 0.9
    kpts = np.zeros((17, 3), np.float32)
    kpts[:, 0], kpts[:, 1], kpts[:, 2] = np.arange(17) + 20, 30, 0.5
    out[0, 5:, 2] = kpts.reshape(-1)
    out[0, 5:, 3] = 99.0                                        # keypoints never read as scores
    path = save_export(tmp_path / "pose.onnx", {"output0": out},
                       metadata=ultralytics_metadata(task="pose", names=["person"],
                                                     kpt_shape=[17, 3]))
    assert detect_model_type(path) == "yolov8_pose"
    dets = build_pipeline(path, backend="onnxruntime")(np.zeros((32, 128, 3), np.uint8), "bgr8")
    assert len(dets) == 1 and dets.keypoints.shape == (1, 17, 3)
    # 128x32 source -> scale 0.5, 24-pixel bands top and bottom.
    np.testing.assert_allclose(dets.keypoints[0, :, 0], (np.arange(17) + 20) * 2)
    np.testing.assert_allclose(dets.keypoints[0, :, 1], (30 - 24) * 2)
    np.testing.assert_allclose(dets.keypoints[0, :, 2], 0.5)


def test_obb_head_gives_angles_and_suppresses_rotated_overlaps(tmp_path):
    out = np.zeros((1, 4 + 2 + 1, N), np.float32)
    out[0, :4, 0], out[0, 4, 0], out[0, 6, 0] = [32, 32, 40, 10], 0.9, np.pi / 6
    out[0, :4, 1], out[0, 4, 1], out[0, 6, 1] = [32, 32, 40, 10], 0.8, np.pi / 6 + 0.01
    out[0, :4, 2], out[0, 5, 2], out[0, 6, 2] = [32, 32, 40, 10], 0.7, np.pi / 6 + np.pi / 2
    path = save_export(tmp_path / "obb.onnx", {"output0": out},
                       metadata=ultralytics_metadata(task="obb", names=["a", "b"]))
    assert detect_model_type(path) == "yolov8_obb"
    dets = build_pipeline(path, backend="onnxruntime")(np.zeros((64, 64, 3), np.uint8), "bgr8")
    order = rows_by_score(dets)
    np.testing.assert_allclose(dets.scores[order], [0.9, 0.7], rtol=1e-6)
    np.testing.assert_allclose(dets.angles[order], [np.pi / 6, np.pi / 6 + np.pi / 2], rtol=1e-6)
    np.testing.assert_allclose(dets.boxes[order[0]], [12, 27, 52, 37])


# -- 8. agnostic NMS ----------------------------------------------------------------------------

def test_agnostic_nms_keeps_one_box_per_object(tmp_path):
    out = np.zeros((1, 4 + 3, N), np.float32)
    for row, cls, score in ((0, 0, 0.9), (1, 1, 0.8), (2, 2, 0.7)):   # cow, sheep, horse
        out[0, :4, row] = [32, 32, 20, 20]
        out[0, 4 + cls, row] = score
    path = save_export(tmp_path / "m.onnx", {"output0": out})
    settings = DetectionSettings()
    pipe = build_pipeline(path, backend="onnxruntime", settings=settings)
    image = np.zeros((64, 64, 3), np.uint8)
    assert len(pipe(image, "bgr8")) == 3
    settings.agnostic_nms = True                              # live: the next frame
    dets = pipe(image, "bgr8")
    assert dets.class_ids.tolist() == [0]


# -- 9. unreadable files ------------------------------------------------------------------------

@pytest.mark.parametrize("make, words", [
    (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
    (lambda p: p.write_bytes(DEFAULT_MODEL.read_bytes()[:5000]), "is not a complete ONNX model"),
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: p.write_text("<html>404</html>"), "is not an ONNX model (it is text"),
    (lambda p: None, "does not exist"),
])
def test_unreadable_model_files_get_one_clear_sentence(tmp_path, make, words):
    path = tmp_path / "model.onnx"
    make(path)
    for call in (lambda: detect_model_type(str(path)),
                 lambda: build_pipeline(str(path), backend="onnxruntime"),
                 lambda: OnnxRuntimeRunner(str(path))):
        with pytest.raises(ValueError) as err:
            call()
        message = str(err.value)
        assert words in message and "\n" not in message
        assert "export" in message or "path" in message or "file" in message


# -- 11. YOLOX pads at the bottom and right -----------------------------------------------------

def test_yolox_places_the_image_top_left(tmp_path):
    from trt_infer_ros.pipeline.preprocess import preprocess
    spec = create_adapter("yolox", input_size=64).input_spec
    assert spec.pad_placement == "top_left"
    tensor, transform = preprocess(np.full((32, 128, 3), 200, np.uint8), "bgr8", spec)
    assert (transform.pad_x, transform.pad_y) == (0.0, 0.0)
    assert tensor[0, 0, :16].min() == 200 and tensor[0, 0, 16:].max() == 114
    out = np.zeros((1, N, 7), np.float32)
    out[0, :, :2] = 100.0                                      # decoded head: centres spread
    out[0, 0] = [20, 8, 8, 8, 0.9, 0.9, 0.0]
    exp = [helper.make_node("Exp", ["e"], ["exp"])]         # a decoding head has Exp inside
    path = save_export(tmp_path / "x.onnx", {"output": out}, extra_nodes=exp,
                       extra_inits={"e": np.zeros((1,), np.float32)})
    dets = build_pipeline(path, model_type="yolox", backend="onnxruntime")(
        np.zeros((32, 128, 3), np.uint8), "bgr8")
    np.testing.assert_allclose(dets.boxes, [[32, 8, 48, 24]])     # (x / 0.5, y / 0.5), no offset
