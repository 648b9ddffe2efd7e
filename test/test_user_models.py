"""A user's own models in detector_node and the split pair: what they get when names, cuts or
inputs do not fit (real nodes over real DDS, real ONNX graphs run by onnxruntime)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("vision_msgs")
pytest.importorskip("onnxruntime")

from sensor_msgs.msg import Image  # noqa: E402

from onnx_graphs import REPO, save_export  # noqa: E402
from ros_harness import spin_until, wait_for_subscribers  # noqa: E402
from test_ros_detector import collect, detector, ros, start  # noqa: E402,F401
from trt_infer_ros.models.graph_info import ModelFileError, inspect_onnx  # noqa: E402
from trt_infer_ros.ros.image_conversion import array_to_image  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from synthetic_yolo import make_yolov8_shaped  # noqa: E402


def frame_message(stamp_sec: int, height=48, width=64):
    msg = array_to_image(np.full((height, width, 3), 90, np.uint8), "bgr8")
    msg.header.frame_id = "cam"
    msg.header.stamp.sec = stamp_sec
    return msg


def publish_until(executor, publisher, done, msg, timeout_s=20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        publisher.publish(msg)
        if spin_until(executor, done, 0.25):
            return True
    return False


def test_a_background_line_in_labels_is_refused_at_start(ros, tmp_path):
    context, executor, _, nodes = ros
    out = np.zeros((1, 4 + 3, 84), np.float32)
    path = save_export(tmp_path / "m.onnx", {"output0": out})
    (tmp_path / "labels.txt").write_text("background\ncat\ndog\nbird\n")
    with pytest.raises(ValueError, match="4 class names in labels file .* 3 classes"):
        detector(context, executor, nodes, model_path=path,
                 labels=str(tmp_path / "labels.txt"))


def test_class_ids_beyond_the_labels_are_published_by_number_and_noted(ros, tmp_path):
    """A CenterNet-style graph does not tell its class count: a short labels file is only
    found out when the model emits a class it does not name."""
    context, executor, helper, nodes = ros
    rows = np.array([[[8, 8, 24, 24, 0.9, 1], [30, 30, 50, 50, 0.8, 5]]], np.float32)
    path = save_export(tmp_path / "c.onnx", {"out": rows}, input_shape=(1, 64, 64, 3))
    (tmp_path / "labels.txt").write_text("cat\ndog\nbird\n")
    node = detector(context, executor, nodes, model_path=path, model_type="centernet",
                    labels=str(tmp_path / "labels.txt"), qos_reliability="reliable")
    results = collect(helper, "/detector_node/detections")
    publisher = helper.create_publisher(Image, "image", 5)
    wait_for_subscribers(executor, publisher)
    assert publish_until(executor, publisher, lambda: results, frame_message(7, 64, 64))
    assert sorted(d.results[0].hypothesis.class_id for d in results[0].detections) == ["5", "dog"]
    assert node._output.unnamed_class_ids == {5}


def test_an_integer_image_input_is_named_with_the_way_out(tmp_path):
    from onnx import TensorProto, helper, numpy_helper
    import onnx
    nodes = [helper.make_node("Cast", ["images"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMax", ["f"], ["output0"], keepdims=0)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("images", TensorProto.INT8, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [])],
        [numpy_helper.from_array(np.zeros((), np.float32), "unused")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "q.onnx"))
    with pytest.raises(ModelFileError, match=r"images\[1, 3, 64, 64\] int8; export the model "
                                             r"with a float32 or float16 image input"):
        inspect_onnx(str(tmp_path / "q.onnx"))


def test_a_head_given_another_cut_says_so_and_keeps_running(ros, tmp_path):
    from trt_infer_ros.ros.backbone_node import BackboneNode
    from trt_infer_ros.ros.head_node import HeadNode
    from rclpy.parameter import Parameter
    context, executor, helper, nodes = ros
    model = make_yolov8_shaped(str(tmp_path / "y.onnx"), size=64, nc=3, widths=(4, 4, 4, 4, 4))
    cache = str(tmp_path / "split")
    start(BackboneNode, context, executor, nodes, model_path=model, backend="onnxruntime",
          split_cache_dir=cache, qos_reliability="reliable")
    head = HeadNode(context=context,
                    cli_args=["--ros-args", "-r", "features:=/backbone_node/features"],
                    parameter_overrides=[Parameter(k, value=v) for k, v in dict(
                        model_path=model, backend="onnxruntime", split_cache_dir=cache,
                        cut_tensors="r2").items()])
    executor.add_node(head)
    nodes.append(head)
    results = collect(helper, "/head_node/detections")
    publisher = helper.create_publisher(Image, "image", 5)
    wait_for_subscribers(executor, publisher)
    diagnostics = head._diagnostics
    assert publish_until(executor, publisher, lambda: diagnostics.total("dropped") >= 2,
                         frame_message(3))
    assert diagnostics.total("rejected") == 0 and results == []
    assert Path(model).is_file()
