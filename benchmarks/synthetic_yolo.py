"""A YOLOv8-shaped ONNX graph with random weights, for GPU timing and pipeline tests.

Input images [1,3,S,S] (NCHW RGB 0..1); output0 [1,4+nc,N] with N = (S/8)^2 + (S/16)^2 +
(S/32)^2 (8400 at 640), like YOLOv8/YOLO11 exports: cx,cy,w,h in input pixels, then class
scores in 0..1. The backbone is five stride-2 3x3 convolutions with ReLU and a 1x1 head per
stride; it is not a trained detector and is not YOLOv8's architecture, only its I/O contract
(about `gflops(S)` GFLOP per frame).
"""
from __future__ import annotations

import numpy as np

WIDTHS = (32, 64, 128, 256, 512)


def gflops(size: int, nc: int = 80, widths=WIDTHS) -> float:
    total, cin, s = 0.0, 3, size
    for i, w in enumerate(widths):
        s //= 2
        total += 2 * s * s * w * cin * 9
        cin = w
        if i >= 2:
            total += 2 * s * s * (4 + nc) * w
    return total / 1e9


def make_yolov8_shaped(path: str, size: int = 640, nc: int = 80, seed: int = 0,
                       widths=WIDTHS) -> str:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def init(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    x, cin, heads = "images", 3, []
    for i, w in enumerate(widths):
        wname = init(f"w{i}", rng.standard_normal((w, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9)))
        bname = init(f"b{i}", rng.standard_normal(w) * 0.1)
        nodes.append(helper.make_node("Conv", [x, wname, bname], [f"c{i}"], kernel_shape=[3, 3],
                                      strides=[2, 2], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        x, cin = f"r{i}", w
        if i >= 2:
            hw = init(f"hw{i}", rng.standard_normal((4 + nc, w, 1, 1)) * np.sqrt(1.0 / w))
            hb = init(f"hb{i}", np.zeros(4 + nc))
            nodes.append(helper.make_node("Conv", [x, hw, hb], [f"h{i}"], kernel_shape=[1, 1]))
            nodes.append(helper.make_node("Reshape", [f"h{i}", "shape"], [f"f{i}"]))
            heads.append(f"f{i}")
    inits.append(numpy_helper.from_array(np.array([0, 4 + nc, -1], np.int64), "shape"))
    nodes.append(helper.make_node("Concat", heads, ["raw"], axis=2))
    # boxes: sigmoid * size (centres), * size/4 (sizes); classes: sigmoid(x - 3): mostly small
    add = np.full((1, 4 + nc, 1), -3.0, np.float32)
    add[0, :4] = 0.0
    nodes.append(helper.make_node("Add", ["raw", init("add", add)], ["shifted"]))
    nodes.append(helper.make_node("Sigmoid", ["shifted"], ["sig"]))
    scale = np.ones((1, 4 + nc, 1), np.float32)
    scale[0, :2], scale[0, 2:4] = size, size / 4
    nodes.append(helper.make_node("Mul", ["sig", init("scale", scale)], ["output0"]))
    n = sum((size // s) ** 2 for s in (8, 16, 32))
    graph = helper.make_graph(
        nodes, "yolov8_shaped",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + nc, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)
