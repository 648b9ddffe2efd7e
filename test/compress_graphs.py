"""Small CNN detectors built with onnx.helper for the model-compression tests: a residual block, a
squeeze-excite gate, a depthwise convolution, BatchNorm, a Concat of two branches, an upsample,
and a two-head output (like CenterNet's heat map and box sizes)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _conv(name, x, w, b, out, **attrs):
    inputs = [x, w] + ([b] if b else [])
    return helper.make_node("Conv", inputs, [out], name=name, **attrs)


def small_detector(seed: int = 0, size: int = 16, width: int = 8,
                   heads: bool = True) -> onnx.ModelProto:
    """input [1,3,size,size] -> backbone (conv, BN, relu, depthwise, residual, SE) -> a second
    stride-2 branch upsampled and concatenated -> heads `heat` [1,3,..] and `box` [1,4,..]."""
    rng = np.random.default_rng(seed)
    c = width

    def w(*shape, scale=0.4):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    inits = {
        "w0": w(c, 3, 3, 3), "b0": w(c, scale=0.1),
        "bn_s": (1 + 0.1 * rng.standard_normal(c)).astype(np.float32), "bn_b": w(c, scale=0.1),
        "bn_m": w(c, scale=0.1), "bn_v": (1 + 0.2 * rng.random(c)).astype(np.float32),
        "wd": w(c, 1, 3, 3), "bd": w(c, scale=0.1),
        "w1": w(c, c, 1, 1), "b1": w(c, scale=0.1),
        "se_shape": np.array([1, c, 1, 1], np.int64),
        "wse1": w(4, c, 1, 1), "bse1": w(4, scale=0.1), "wse2": w(c, 4, 1, 1),
        "bse2": w(c, scale=0.1), "gain": np.full((1, c, 1, 1), 0.5, np.float32),
        "w2": w(c, c, 3, 3), "b2": w(c, scale=0.1),
        "scales": np.array([1, 1, 2, 2], np.float32), "roi": np.zeros(0, np.float32),
        "w3": w(c, 2 * c, 1, 1), "b3": w(c, scale=0.1),
        "wh": w(3, c, 1, 1), "bh": w(3, scale=0.1), "wb": w(4, c, 1, 1), "bb": w(4, scale=0.1),
    }
    nodes = [
        _conv("stem", "images", "w0", "b0", "s0", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["s0", "bn_s", "bn_b", "bn_m", "bn_v"], ["s1"],
                         name="bn"),
        helper.make_node("Relu", ["s1"], ["s2"], name="relu0"),
        _conv("dw", "s2", "wd", "bd", "d0", group=c, pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["d0"], ["d1"], name="relu1"),
        helper.make_node("GlobalAveragePool", ["d1"], ["g0"], name="se_pool"),
        helper.make_node("Reshape", ["g0", "se_shape"], ["g1"], name="se_reshape"),
        _conv("se1", "g1", "wse1", "bse1", "g2"),
        helper.make_node("Relu", ["g2"], ["g3"], name="se_relu"),
        _conv("se2", "g3", "wse2", "bse2", "g4"),
        helper.make_node("Sigmoid", ["g4"], ["g5"], name="se_sigmoid"),
        helper.make_node("Mul", ["d1", "g5"], ["d2"], name="se_mul"),
        _conv("project", "d2", "w1", "b1", "p0"),
        helper.make_node("Mul", ["p0", "gain"], ["p1"], name="scale"),
        helper.make_node("Add", ["p1", "s2"], ["r0"], name="residual"),
        _conv("down", "r0", "w2", "b2", "q0", strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["q0"], ["q1"], name="relu2"),
        helper.make_node("Resize", ["q1", "roi", "scales"], ["q2"], name="up", mode="nearest"),
        helper.make_node("Concat", ["r0", "q2"], ["c0"], axis=1, name="concat"),
        _conv("fuse", "c0", "w3", "b3", "f0"),
        helper.make_node("Relu", ["f0"], ["f1"], name="relu3"),
        _conv("heat_conv", "f1", "wh", "bh", "heat"),
        _conv("box_conv", "f1", "wb", "bb", "box"),
    ]
    outputs = [helper.make_tensor_value_info("heat", TensorProto.FLOAT, [1, 3, size, size]),
               helper.make_tensor_value_info("box", TensorProto.FLOAT, [1, 4, size, size])]
    graph = helper.make_graph(
        nodes, "small_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        outputs, [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def run(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime as ort  # noqa: PLC0415
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {session.get_inputs()[0].name: x})))


def tiny_yolo(seed: int = 0, size: int = 64, width: int = 16, classes: int = 2) -> onnx.ModelProto:
    """A YOLOv8-style detector: input [1,3,size,size] (RGB 0..1), heads at strides 8, 16 and 32
    (one set of head weights on max-pooled features), output [1, 4+classes, anchors] with
    cx, cy, w, h in input pixels and sigmoid class scores."""
    rng = np.random.default_rng(seed)
    c = width

    def w(*shape, scale=1.0):
        fan_in = int(np.prod(shape[1:])) or 1
        return (rng.standard_normal(shape) * scale / np.sqrt(fan_in)).astype(np.float32)

    grids, strides = [], (8, 16, 32)
    for stride in strides:
        cells = size // stride
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        grids.append(np.stack([(xs.ravel() + 0.5) * stride, (ys.ravel() + 0.5) * stride,
                               np.full(cells * cells, 2.0 * stride),
                               np.full(cells * cells, 2.0 * stride)]))
    grid = np.concatenate(grids, axis=1)
    anchors = grid.shape[1]
    inits = {"w0": w(c, 3, 3, 3, scale=2), "b0": w(c, scale=0.1),
             "w1": w(c, c, 3, 3, scale=2), "b1": w(c, scale=0.1),
             "wd": w(c, 1, 3, 3, scale=1.5), "w2": w(c, c, 1, 1, scale=1.5),
             "w3": w(2 * c, c, 3, 3, scale=2), "b3": w(2 * c, scale=0.1),
             "wbox": w(4, 2 * c, 1, 1), "bbox": np.zeros(4, np.float32),
             "wcls": w(classes, 2 * c, 1, 1, scale=2), "bcls": np.full(classes, -1.0, np.float32),
             "box_gain": np.array([6.0, 6.0, 8.0, 8.0], np.float32).reshape(1, 4, 1),
             "grid": grid.reshape(1, 4, -1).astype(np.float32)}
    for i, stride in enumerate(strides):
        cells = (size // stride) ** 2
        inits[f"box_shape{i}"] = np.array([1, 4, cells], np.int64)
        inits[f"cls_shape{i}"] = np.array([1, classes, cells], np.int64)
    relu = [helper.make_node("Relu", [f"a{i}"], [f"r{i}"]) for i in range(4)]
    nodes = [_conv("c0", "images", "w0", "b0", "a0", strides=[2, 2], pads=[1, 1, 1, 1]), relu[0],
             _conv("c1", "r0", "w1", "b1", "a1", strides=[2, 2], pads=[1, 1, 1, 1]), relu[1],
             _conv("dw", "r1", "wd", "", "d0", group=c, pads=[1, 1, 1, 1]),
             _conv("pw", "d0", "w2", "", "a2"), relu[2],
             helper.make_node("Add", ["r2", "r1"], ["res"]),
             _conv("c3", "res", "w3", "b3", "a3", strides=[2, 2], pads=[1, 1, 1, 1]), relu[3],
             helper.make_node("MaxPool", ["r3"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("MaxPool", ["p1"], ["p2"], kernel_shape=[2, 2], strides=[2, 2])]
    for i, feature in enumerate(("r3", "p1", "p2")):
        nodes += [_conv(f"box_head{i}", feature, "wbox", "bbox", f"box_raw{i}"),
                  _conv(f"cls_head{i}", feature, "wcls", "bcls", f"cls_raw{i}"),
                  helper.make_node("Reshape", [f"box_raw{i}", f"box_shape{i}"], [f"box_flat{i}"]),
                  helper.make_node("Reshape", [f"cls_raw{i}", f"cls_shape{i}"], [f"cls_flat{i}"])]
    nodes += [helper.make_node("Concat", [f"box_flat{i}" for i in range(3)], ["box_all"], axis=2),
              helper.make_node("Concat", [f"cls_flat{i}" for i in range(3)], ["cls_all"], axis=2),
              helper.make_node("Mul", ["box_all", "box_gain"], ["box_scaled"]),
              helper.make_node("Add", ["box_scaled", "grid"], ["boxes"]),
              helper.make_node("Sigmoid", ["cls_all"], ["scores"]),
              helper.make_node("Concat", ["boxes", "scores"], ["output0"], axis=1)]
    graph = helper.make_graph(
        nodes, "tiny_yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + classes, anchors])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
