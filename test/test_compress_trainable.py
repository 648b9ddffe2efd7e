"""The ONNX graph as a trainable tinygrad model: same forward as onnxruntime, true gradients,
weights written back with the same I/O contract."""
from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("tinygrad", reason="the optimize tools need tinygrad (Python 3.11 or later)")

from compress_graphs import run, small_detector
from onnx_graphs import DEFAULT_MODEL, IMAGES
from trt_infer_ros.optimize.trainable import (TrainableModel, UnsupportedGraph, head_tensors,
                                              parameter_names)


def test_forward_matches_onnxruntime_and_heads_found():
    model = small_detector()
    assert head_tensors(model) == ["heat", "box"]
    x = np.random.default_rng(0).random((1, 3, 16, 16)).astype(np.float32)
    out = {k: v.numpy() for k, v in TrainableModel(model)(x).items()}
    ref = run(model, x)
    for name in ("heat", "box"):
        np.testing.assert_allclose(out[name], ref[name], rtol=1e-4, atol=1e-5)


def _loss(model, x):
    return sum((v * v).mean() for v in model(x).values())


def test_gradient_matches_finite_differences():
    model = small_detector(size=8, width=4)
    x = np.random.default_rng(2).random((1, 3, 8, 8)).astype(np.float32)
    trainable = TrainableModel(model)
    names = ["w0", "bn_s", "wd", "wse2", "w3", "wb"]
    grads = _loss(trainable, x).gradient(*[trainable.params[n] for n in names])
    grads = {n: g.numpy() for n, g in zip(names, grads)}
    base = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in model.graph.initializer}
    rng = np.random.default_rng(3)
    eps = 1e-2
    for name in names:
        for _ in range(1):
            index = tuple(int(rng.integers(0, d)) for d in base[name].shape)
            values = []
            for sign in (1, -1):
                probe = TrainableModel(model)
                value = base[name].copy()
                value[index] += sign * eps
                probe.load_state({name: value})
                values.append(float(_loss(probe, x).numpy()))
            numeric = (values[0] - values[1]) / (2 * eps)
            assert grads[name][index] == pytest.approx(numeric, rel=0.05, abs=2e-3), name


def test_export_keeps_io_contract(tmp_path):
    model = small_detector()
    trainable = TrainableModel(model)
    state = trainable.raw_state()
    state["wh"] = state["wh"] * 2
    trainable.load_state(state)
    exported = trainable.to_onnx()
    onnx.checker.check_model(exported)
    assert [i.name for i in exported.graph.input] == [i.name for i in model.graph.input]
    assert [o.name for o in exported.graph.output] == [o.name for o in model.graph.output]
    x = np.random.default_rng(0).random((1, 3, 16, 16)).astype(np.float32)
    assert np.allclose(run(exported, x)["box"], run(model, x)["box"])
    assert not np.allclose(run(exported, x)["heat"], run(model, x)["heat"])
    assert "wh" in parameter_names(model) and "se_shape" not in parameter_names(model)


def test_unsupported_operator_is_named():
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv"),
             helper.make_node("Hardmax", ["y"], ["h"], name="hm"),
             helper.make_node("Conv", ["h", "w2"], ["out"], name="head")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2, 4, 4])],
        [numpy_helper.from_array(np.ones((3, 3, 1, 1), np.float32), "w"),
         numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(UnsupportedGraph, match="Hardmax"):
        TrainableModel(model)


@pytest.mark.skipif(not os.environ.get("TRT_INFER_ROS_BUNDLED_TINYGRAD"),
                    reason="the bundled CenterNet in tinygrad compiles ~40 s on CPU; set "
                    "TRT_INFER_ROS_BUNDLED_TINYGRAD=1")
def test_bundled_centernet_heads_match_onnxruntime():
    from trt_infer_ros.models.registry import create_adapter
    from trt_infer_ros.optimize.calibrate import observing
    from trt_infer_ros.optimize.frames import load_frames
    model = onnx.load(str(DEFAULT_MODEL))
    frame = load_frames(create_adapter("auto", str(DEFAULT_MODEL)), str(IMAGES), limit=1)[0]
    trainable = TrainableModel(model)
    out = {k: v.numpy() for k, v in trainable(frame.tensor).items()}
    ref = run(observing(model, trainable.targets), frame.tensor)
    for name in trainable.targets:
        scale = np.abs(ref[name]).max()
        assert np.abs(out[name] - ref[name]).max() <= 1e-4 * scale
