"""YOLOv8/YOLO11, YOLOv5 and YOLOX decoders on real ONNX graphs whose outputs are known."""
import numpy as np
import pytest
from onnx import helper

from onnx_graphs import save_graph
from trt_infer_ros.backends.onnxruntime_runner import OnnxRuntimeRunner
from trt_infer_ros.models.registry import create_adapter, detect_model_type
from trt_infer_ros.models.yolo import YoloXAdapter, grid_size

SIZE = 64                      # 64x64 input: 8x8 + 4x4 + 2x2 = 84 anchor points
N = grid_size(SIZE, SIZE)
IMAGE = np.zeros((1, 3, SIZE, SIZE), np.float32)


def run(path):
    return OnnxRuntimeRunner(path).run(IMAGE)


def decode(path, threshold, **kwargs):
    adapter = create_adapter("auto", path, **kwargs)
    return adapter, adapter.decode(run(path), threshold)


def sorted_rows(dets):
    order = np.argsort(-dets.scores)
    return dets.boxes[order], dets.scores[order], dets.class_ids[order]


def test_yolov8_decoder(constant_model):
    rng = np.random.default_rng(0)
    out = np.zeros((1, 4 + 3, N), np.float32)
    out[0, :4] = rng.uniform(5, 40, (4, N))
    out[0, 4:] = rng.uniform(0, 0.25, (3, N))             # background stays below 0.25
    out[0, :4, 5] = [20, 30, 10, 8]
    out[0, 4:, 5] = [0.1, 0.9, 0.2]
    out[0, :4, 70] = [40, 40, 20, 30]
    out[0, 4:, 70] = [0.35, 0.1, 0.05]
    path = constant_model({"output0": out})
    assert detect_model_type(path) == "yolov8"
    adapter, dets = decode(path, 0.3)
    assert adapter.model_type == "yolov8" and not adapter.nms_inside
    boxes, scores, classes = sorted_rows(dets)
    np.testing.assert_allclose(boxes, [[15, 26, 25, 34], [30, 25, 50, 55]])
    np.testing.assert_allclose(scores, [0.9, 0.35], rtol=1e-6)
    assert classes.tolist() == [1, 0] and dets.class_ids.dtype == np.int32
    assert len(adapter.decode(run(path), 0.5)) == 1       # threshold applied in decode
    transposed = adapter.decode([out.transpose(0, 2, 1)], 0.3)   # [1, N, 4+nc] exports
    np.testing.assert_allclose(sorted_rows(transposed)[0], boxes)
    assert len(adapter.decode(run(path), 0.0)) == N


def test_yolov8_class_names_come_from_output_width(constant_model):
    out = np.zeros((1, 4 + 3, N), np.float32)
    adapter = create_adapter("yolo11", constant_model({"output0": out}))
    assert adapter.model_type == "yolov8" and adapter.class_names == ["0", "1", "2"]
    named = create_adapter("yolov8", constant_model({"output0": out}, name="b.onnx"),
                           class_names=["cat", "dog", "cow"])
    assert named.class_names == ["cat", "dog", "cow"]


def yolov5_output(rows):
    rng = np.random.default_rng(1)
    out = np.zeros((1, rows, 5 + 2), np.float32)
    out[0, :, :4] = rng.uniform(5, 40, (rows, 4))
    out[0, :, 4] = rng.uniform(0, 0.5, rows)
    out[0, :, 5:] = rng.uniform(0, 0.5, (rows, 2))       # obj * cls <= 0.25
    out[0, 10] = [32, 16, 8, 4, 0.9, 0.2, 0.8]          # score 0.72, class 1
    out[0, 200] = [10, 10, 4, 4, 0.6, 0.7, 0.1]          # score 0.42, class 0
    out[0, 201] = [50, 50, 4, 4, 0.2, 1.0, 0.0]          # obj too low: 0.2
    return out


def test_yolov5_decoder_multiplies_objectness(constant_model):
    path = constant_model({"output0": yolov5_output(3 * N)})
    assert detect_model_type(path) == "yolov5"
    adapter, dets = decode(path, 0.3)
    boxes, scores, classes = sorted_rows(dets)
    np.testing.assert_allclose(boxes, [[28, 14, 36, 18], [8, 8, 12, 12]])
    np.testing.assert_allclose(scores, [0.72, 0.42], rtol=1e-6)
    assert classes.tolist() == [1, 0]


def yolox_raw_output():
    """Raw head rows for three cells and the boxes they decode to (input pixels)."""
    rng = np.random.default_rng(2)
    out = np.zeros((1, N, 5 + 2), np.float32)
    out[0, :, :4] = rng.uniform(-0.5, 1.5, (N, 4))
    out[0, :, 4:] = rng.uniform(0, 0.4, (N, 3))          # obj * cls < 0.16
    # stride 8, cell (x=3, y=2): row 2*8+3
    out[0, 19] = [0.5, 0.25, np.log(2), np.log(3), 0.9, 0.1, 0.9]
    # stride 16, cell (x=1, y=2): row 64 + 2*4+1
    out[0, 73] = [0.0, 1.0, 0.0, np.log(0.5), 0.8, 0.6, 0.2]
    # stride 32, cell (x=1, y=0): row 64 + 16 + 1
    out[0, 81] = [0.5, 0.5, np.log(1.5), np.log(1.5), 0.5, 0.9, 0.1]
    want = np.array([[28 - 8, 18 - 12, 28 + 8, 18 + 12],        # cx 3.5*8, cy 2.25*8, w 16, h 24
                     [16 - 8, 48 - 4, 16 + 8, 48 + 4],         # cx 1*16, cy 3*16, w 16, h 8
                     [48 - 24, 16 - 24, 48 + 24, 16 + 24]],    # cx 1.5*32, cy .5*32, w=h 48
                    np.float32)
    return out, want, [0.81, 0.48, 0.45], [1, 0, 0]


def decoded_yolox_graph(tmp_path, raw):
    """A graph that decodes the raw head itself, with Exp as exported YOLOX graphs do."""
    grid, stride = YoloXAdapter(num_classes=2, decoded=False,
                                input_spec=create_adapter("yolox", input_size=SIZE).input_spec
                                )._grid_and_strides()
    xy = ((raw[0, :, :2] + grid) * stride)[None].astype(np.float32)
    nodes = [helper.make_node("ReduceMax", ["images"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["mz"]),
             helper.make_node("Add", ["logwh", "mz"], ["logwh_dep"]),
             helper.make_node("Exp", ["logwh_dep"], ["wh_cells"]),
             helper.make_node("Mul", ["wh_cells", "stride"], ["wh"]),
             helper.make_node("Concat", ["xy", "wh", "scores"], ["output"], axis=2)]
    inits = {"zero": np.zeros((), np.float32), "logwh": raw[:, :, 2:4],
             "stride": stride[None].astype(np.float32), "xy": xy, "scores": raw[:, :, 4:]}
    return save_graph(tmp_path / "yolox_decoded.onnx", nodes,
                      [("images", [1, 3, SIZE, SIZE], np.float32)],
                      [("output", [1, N, 7], np.float32)], inits)


def check_yolox(dets, want, scores, classes):
    boxes, got_scores, got_classes = sorted_rows(dets)
    np.testing.assert_allclose(boxes, want, atol=1e-4)
    np.testing.assert_allclose(got_scores, scores, rtol=1e-5)
    assert got_classes.tolist() == classes


def test_yolox_raw_head(constant_model):
    raw, want, scores, classes = yolox_raw_output()
    path = constant_model({"output": raw})
    assert detect_model_type(path) == "yolox"
    adapter, dets = decode(path, 0.3)
    assert adapter.decoded is False                     # no Exp in the graph
    check_yolox(dets, want, scores, classes)


def test_yolox_decoded_in_graph(tmp_path):
    raw, want, scores, classes = yolox_raw_output()
    path = decoded_yolox_graph(tmp_path, raw)
    assert detect_model_type(path) == "yolox"
    adapter, dets = decode(path, 0.3)
    assert adapter.decoded is True                      # the graph exponentiates sizes
    check_yolox(dets, want, scores, classes)


def test_yolox_auto_decides_from_values_without_a_graph(tmp_path, constant_model):
    raw, want, scores, classes = yolox_raw_output()
    for path in (constant_model({"output": raw}), decoded_yolox_graph(tmp_path, raw)):
        adapter = create_adapter("yolox", input_size=SIZE)
        assert adapter.decoded is None
        check_yolox(adapter.decode(run(path), 0.3), want, scores, classes)
    assert create_adapter("yolox").input_spec.color == "BGR"


def test_yolox_raw_rows_must_match_the_grid():
    adapter = YoloXAdapter(input_spec=create_adapter("yolox", input_size=SIZE).input_spec,
                           decoded=False, num_classes=2)
    with pytest.raises(ValueError, match="84"):
        adapter.decode([np.zeros((1, 50, 7), np.float32)], 0.3)


def test_nothing_above_threshold_gives_empty_detections(constant_model):
    raw, _, _, _ = yolox_raw_output()
    cases = [(create_adapter("yolov8", input_size=SIZE), np.zeros((1, 7, N), np.float32)),
             (create_adapter("yolov5", input_size=SIZE), yolov5_output(3 * N)),
             (YoloXAdapter(create_adapter("yolox", input_size=SIZE).input_spec, decoded=False), raw),
             (YoloXAdapter(create_adapter("yolox", input_size=SIZE).input_spec, decoded=True), raw)]
    for adapter, out in cases:
        dets = adapter.decode([out], 1.01)
        assert dets.boxes.shape == (0, 4) and dets.boxes.dtype == np.float32
        assert dets.scores.shape == (0,) and dets.class_ids.dtype == np.int32
