"""CenterNet-style [1,N,6] and end-to-end NMS decoders on real ONNX graphs with known outputs."""
import numpy as np
import onnx
from onnx import TensorProto, helper

from trt_infer_ros.backends.onnxruntime_runner import OnnxRuntimeRunner
from trt_infer_ros.models.end2end import End2EndAdapter
from trt_infer_ros.models.registry import create_adapter, detect_model_type

NHWC = (1, 512, 512, 3)


def centernet_output():
    out = np.zeros((1, 100, 6), np.float32)
    out[0, :, 4] = np.linspace(0.2, 0.01, 100)           # the graph's own top-100, sorted
    out[0, 0] = [100, 50, 300, 450, 0.92, 0]
    out[0, 1] = [10, 20, 60, 80, 0.55, 41]
    out[0, 2] = [5, 5, 15, 15, 0.31, 79]
    return out


def test_centernet_decoder(constant_model):
    path = constant_model({"tower_0/detections": centernet_output()}, input_shape=NHWC,
                          input_name="input")
    assert detect_model_type(path) == "centernet"
    adapter = create_adapter("auto", path)
    spec = adapter.input_spec
    assert (spec.width, spec.height, spec.layout, spec.color, spec.resize, spec.scale) == \
        (512, 512, "NHWC", "RGB", "letterbox", 1.0)
    assert spec.mean == (0.0, 0.0, 0.0) and spec.std == (1.0, 1.0, 1.0)
    outputs = OnnxRuntimeRunner(path).run(np.zeros(NHWC, np.float32))
    dets = adapter.decode(outputs, 0.3)
    np.testing.assert_allclose(dets.boxes, [[100, 50, 300, 450], [10, 20, 60, 80], [5, 5, 15, 15]])
    np.testing.assert_allclose(dets.scores, [0.92, 0.55, 0.31], rtol=1e-6)
    assert dets.class_ids.tolist() == [0, 41, 79]
    assert len(adapter.decode(outputs, 0.5)) == 2
    assert len(adapter.class_names) == 80 and not adapter.nms_inside


def test_centernet_fp16_model(constant_model):
    path = constant_model({"detections": centernet_output().astype(np.float16)},
                          input_shape=NHWC, input_dtype=np.float16)
    adapter = create_adapter("centernet", path)
    assert adapter.input_spec.dtype == "float16"
    dets = adapter.decode(OnnxRuntimeRunner(path).run(np.zeros(NHWC, np.float16)), 0.3)
    assert dets.boxes.dtype == np.float32 and dets.class_ids.tolist() == [0, 41, 79]


def end2end_outputs():
    boxes = np.zeros((1, 10, 4), np.float32)
    boxes[0, :3] = [[1, 2, 30, 40], [50, 60, 70, 90], [5, 5, 9, 9]]
    scores = np.zeros((1, 10), np.float32)
    scores[0, :3] = [0.9, 0.6, 0.2]
    scores[0, 3:] = 0.99                 # past num_dets: padding that must be ignored
    classes = np.zeros((1, 10), np.int32)
    classes[0, :3] = [2, 7, 2]
    return {"det_scores": scores, "num_dets": np.array([[3]], np.int32),
            "det_classes": classes, "det_boxes": boxes}


def test_end2end_decoder_by_name_in_any_order(constant_model):
    path = constant_model(end2end_outputs())                # scores, num, classes, boxes
    assert detect_model_type(path) == "end2end"
    adapter = create_adapter("auto", path)
    assert adapter.nms_inside
    dets = adapter.decode(OnnxRuntimeRunner(path).run(np.zeros((1, 3, 64, 64), np.float32)), 0.3)
    np.testing.assert_allclose(dets.boxes, [[1, 2, 30, 40], [50, 60, 70, 90]])
    np.testing.assert_allclose(dets.scores, [0.9, 0.6])
    assert dets.class_ids.tolist() == [2, 7]


def test_end2end_decoder_by_shape_and_dtype():
    outs = end2end_outputs()
    shuffled = [outs["det_classes"], outs["det_boxes"], outs["num_dets"], outs["det_scores"]]
    dets = End2EndAdapter().decode(shuffled, 0.1)
    assert dets.class_ids.tolist() == [2, 7, 2]
    np.testing.assert_allclose(dets.scores, [0.9, 0.6, 0.2])
    # float classes (some exports): scores-then-classes order decides
    floats = [outs["num_dets"], outs["det_boxes"], outs["det_scores"],
              outs["det_classes"].astype(np.float32)]
    assert End2EndAdapter().decode(floats, 0.1).class_ids.tolist() == [2, 7, 2]


def test_end2end_graph_with_efficient_nms_node_is_recognised(tmp_path):
    # The TensorRT plugin op cannot run here, but the registry reads the graph only.
    node = helper.make_node("EfficientNMS_TRT", ["boxes", "scores"],
                            ["num_detections", "detection_boxes", "detection_scores",
                             "detection_classes"], domain="")
    nodes = [helper.make_node("Identity", ["images"], ["boxes"]),
             helper.make_node("Identity", ["images"], ["scores"]), node]
    path = tmp_path / "e2e.onnx"
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "images", TensorProto.FLOAT, [1, 3, 64, 64])], [
        helper.make_tensor_value_info("num_detections", TensorProto.INT32, [1, 1]),
        helper.make_tensor_value_info("detection_boxes", TensorProto.FLOAT, [1, 100, 4]),
        helper.make_tensor_value_info("detection_scores", TensorProto.FLOAT, [1, 100]),
        helper.make_tensor_value_info("detection_classes", TensorProto.INT32, [1, 100])])
    onnx.save(helper.make_model(graph), str(path))
    assert detect_model_type(str(path)) == "end2end"
