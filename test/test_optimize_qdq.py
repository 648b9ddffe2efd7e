"""Q/DQ simulation of INT8: exact where every scale is exact, within the predicted error
elsewhere; placement and sharing of Q/DQ pairs; quantizable-layer discovery."""
import numpy as np
import onnx
import pytest
from onnx import helper

pytest.importorskip("tinygrad", reason="the optimize tools need tinygrad (Python 3.11 or later)")

from onnx_graphs import save_graph
from trt_infer_ros.optimize.layers import (NoQuantizableLayers, precision_pattern,
                                           quantizable_layers, require_layers)
from trt_infer_ros.optimize.qdq import build_model, has_qdq
from trt_infer_ros.optimize.simulate import session_for

F32 = np.float32


def run(model, x):
    return session_for(model, ["CPUExecutionProvider"]).run(None, {"x": x})[0]


def conv_model(tmp_path, weight, bias):
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", pads=[1, 1, 1, 1])]
    path = save_graph(tmp_path / "conv.onnx", nodes, [("x", [1, 2, 5, 5], F32)],
                      [("y", [1, 3, 5, 5], F32)], {"w": weight, "b": bias})
    return onnx.load(path)


def test_exact_scales_give_the_fp32_output(tmp_path):
    rng = np.random.default_rng(0)
    # integer weights whose largest |w| per output channel is 127: weight scale exactly 1
    w = rng.integers(-127, 128, (3, 2, 3, 3)).astype(F32)
    w[:, 0, 0, 0] = 127
    model = conv_model(tmp_path, w, rng.standard_normal(3).astype(F32))
    x = rng.integers(-127, 128, (1, 2, 5, 5)).astype(F32)     # activation amax 127: scale 1
    layers = quantizable_layers(model)
    q = build_model(model, layers, {"conv": "int8"}, {"x": 127.0})
    assert has_qdq(q)
    np.testing.assert_array_equal(run(q, x), run(model, x))


def test_error_within_the_predicted_bound(tmp_path):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((16, 8)).astype(F32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    model = onnx.load(save_graph(tmp_path / "mm.onnx", nodes, [("x", [4, 16], F32)],
                                 [("y", [4, 8], F32)], {"w": w}))
    x = rng.standard_normal((4, 16)).astype(F32)
    amax = float(np.abs(x).max())
    q = build_model(model, quantizable_layers(model), {"mm": "int8"}, {"x": amax})
    got, ref = run(q, x), x @ w
    sx, sw = amax / 127, np.abs(w).max(axis=0) / 127          # per-tensor x, per-column w
    # |xw - x'w'| <= |x||dw| + |dx||w| + |dx||dw| with |dx| <= sx/2, |dw| <= sw/2
    bound = (np.abs(x) @ np.ones_like(w)) * sw / 2 + sx / 2 * np.abs(w).sum(axis=0) \
        + 16 * sx * sw / 4
    err = np.abs(got - ref)
    assert np.all(err <= bound + 1e-5) and err.max() > 0


def test_plan_precisions_and_shared_pairs(tmp_path):
    rng = np.random.default_rng(2)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], name="c1"),
             helper.make_node("Conv", ["x", "w2"], ["b"], name="c2"),
             helper.make_node("Add", ["a", "b"], ["y"], name="add")]
    model = onnx.load(save_graph(tmp_path / "two.onnx", nodes, [("x", [1, 2, 4, 4], F32)],
                                 [("y", [1, 3, 4, 4], F32)],
                                 {"w1": rng.standard_normal((3, 2, 1, 1)).astype(F32),
                                  "w2": rng.standard_normal((3, 2, 1, 1)).astype(F32)}))
    layers = quantizable_layers(model)
    assert [x.name for x in layers] == ["c1", "c2"]
    both = build_model(model, layers, {"c1": "int8", "c2": "int8"}, {"x": 3.0})
    ops = [n.op_type for n in both.graph.node]
    # one Q/DQ pair for the shared input, one weight DQ per layer, Q/DQ only before the convs
    assert ops.count("QuantizeLinear") == 1 and ops.count("DequantizeLinear") == 3
    assert ops.index("QuantizeLinear") < ops.index("Conv") and ops[-1] == "Add"
    x = rng.standard_normal((1, 2, 4, 4)).astype(F32)
    fp32 = build_model(model, layers, {}, {})
    np.testing.assert_array_equal(run(fp32, x), run(model, x))
    half = build_model(model, layers, {"c1": "fp16", "c2": "fp16"}, {})
    assert [n.op_type for n in half.graph.node].count("Cast") == 2
    np.testing.assert_allclose(run(half, x), run(model, x), rtol=2e-3, atol=2e-3)
    with pytest.raises(KeyError, match="no calibrated range"):
        build_model(model, layers, {"c1": "int8"}, {})


def test_layer_discovery(tmp_path):
    nodes = [helper.make_node("Gemm", ["x", "w"], ["g"], transB=1),
             helper.make_node("Relu", ["g"], ["y"], name="relu")]
    model = onnx.load(save_graph(tmp_path / "gemm.onnx", nodes, [("x", [2, 4], F32)],
                                 [("y", [2, 3], F32)], {"w": np.ones((3, 4), F32)}))
    (layer,) = quantizable_layers(model)
    assert layer.name == "node_of_g" and layer.axis == 0 and layer.activation == "x"
    relu_only = onnx.load(save_graph(tmp_path / "relu.onnx",
                                     [helper.make_node("Relu", ["x"], ["y"])],
                                     [("x", [2, 4], F32)], [("y", [2, 4], F32)]))
    with pytest.raises(NoQuantizableLayers, match="no quantizable layers.*Relu"):
        require_layers(relu_only)
    assert precision_pattern("a[1]*") == "a[[]1[]][*]"
