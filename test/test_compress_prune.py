"""Channel pruning keeps the graph consistent: the pruned model computes exactly what the original
computes when the removed channels' contribution to their consumers is dropped."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compress_graphs import run, small_detector
from trt_infer_ros.optimize.prune_structured import (PruneError, analyze, kept_channels,
                                                     prune_channels)


def _dropped_contribution(model: onnx.ModelProto, plan) -> onnx.ModelProto:
    """The original model with each convolution's input columns for removed channels zeroed."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    inits = {i.name: i for i in out.graph.initializer}
    for node in out.graph.node:
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if node.op_type != "Conv" or group != 1:
            continue
        keep = kept_channels(plan, node.input[0])
        if keep is None:
            continue
        weight = numpy_helper.to_array(inits[node.input[1]]).copy()
        removed = np.setdiff1d(np.arange(weight.shape[1]), keep)
        weight[:, removed] = 0
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(weight, node.input[1]))
    return out


def test_pruned_graph_equals_dropped_contribution():
    model = small_detector()
    result = prune_channels(model, 0.4)
    plan = result.plan
    assert plan.channels_removed() > 0
    x = np.random.default_rng(1).random((1, 3, 16, 16)).astype(np.float32)
    pruned = run(result.model, x)
    reference = run(_dropped_contribution(model, plan), x)
    for name in ("heat", "box"):
        assert pruned[name].shape == reference[name].shape
        np.testing.assert_allclose(pruned[name], reference[name], rtol=1e-4, atol=1e-5)
    # the residual Add joins stem and project into one group: both lose the same channels
    assert np.array_equal(kept_channels(plan, "s2"), kept_channels(plan, "p1"))
    # the concat of the two branches is sliced segment by segment
    concat = kept_channels(plan, "c0")
    assert len(concat) == len(kept_channels(plan, "r0")) + len(kept_channels(plan, "q2"))
    # the heads keep every channel: the decode reads them by position
    assert kept_channels(plan, "heat") is None and kept_channels(plan, "box") is None
    weights = {i.name: i for i in result.model.graph.initializer}
    assert sum(np.prod(i.dims) for i in weights.values()) < \
        sum(np.prod(i.dims) for i in model.graph.initializer)


def test_removed_channels_are_the_weakest():
    model = small_detector()
    result = prune_channels(model, 0.25)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    norms = np.abs(inits["w2"]).reshape(inits["w2"].shape[0], -1).sum(axis=1)
    sid = result.plan.layout["q0"][0][0]
    removed = result.plan.removed[sid]
    assert set(removed) == set(np.argsort(norms)[:len(removed)])


def test_global_ranking_and_scope():
    model = small_detector(width=16)
    by_layer = prune_channels(model, 0.3)
    ranked = prune_channels(model, 0.3, global_ranking=True)
    assert ranked.plan.channels_removed() > 0 and by_layer.plan.channels_removed() > 0
    scoped = prune_channels(model, 0.3, scope="^down$")
    assert [len(v) for v in scoped.plan.removed.values() if len(v)] == [4]


def test_locked_graph_is_refused_with_reason():
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv"),
             helper.make_node("Flatten", ["y"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "g"], ["out"], name="fc", transB=1)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 5])],
        [numpy_helper.from_array(rng.random((8, 3, 1, 1)).astype(np.float32), "w"),
         numpy_helper.from_array(rng.random((5, 128)).astype(np.float32), "g")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(PruneError, match="Flatten flat"):
        prune_channels(model, 0.3)
    assert analyze(model).locked


def test_ratio_out_of_range_is_refused():
    with pytest.raises(PruneError, match="between 0 and 1"):
        prune_channels(small_detector(), 1.0)
