"""Sensitivity and mixed-precision search on a detector built so that one known layer is
sensitive (its input carries a channel 500x wider than the others): the search must find it."""
import numpy as np
import pytest
from onnx import helper

pytest.importorskip("tinygrad", reason="the optimize tools need tinygrad (Python 3.11 or later)")
pytest.importorskip("pycocotools", reason="the agreement measure needs pycocotools")

from onnx_graphs import save_graph
from trt_infer_ros.models.registry import create_adapter
from trt_infer_ros.models.spec import ImageTransform
from trt_infer_ros.optimize.analysis import Analysis
from trt_infer_ros.optimize.frames import Frame
from trt_infer_ros.optimize.search import TargetUnreachable, qdq_model, search
from trt_infer_ros.optimize.sensitivity import measure_sensitivity, ranked

F32 = np.float32
K = 4
SIZE = 64


def make_detector(path, sensitive=True, seed=0, fragile=False) -> str:
    """images [1,64,64,3] -> mean colour -> four MatMul layers -> [1,4,6] boxes (CenterNet's
    output layout): fixed boxes moved by up to 3 px, scores and offsets from the features.
    `fragile`: layer l2 reads 20000 + signal and cancels the 20000 (zero-sum weight columns),
    which float16 cannot represent finely enough: even FP16 breaks it."""
    rng = np.random.default_rng(seed)
    b1 = np.zeros(16, F32)
    if sensitive:
        b1[15] = 5000.0                  # a wide channel into layer "l2", which ignores it
    w2 = rng.normal(0, 0.3, (16, 16)).astype(F32)
    w2[15] = 0
    if fragile:
        b1[:] = 20000.0
        w2 -= w2.mean(axis=0, keepdims=True)
    base = np.array([[[4 + 15 * i, 8, 14 + 15 * i, 30] for i in range(K)]], F32)
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["m", "w1"], ["a"], name="l1"),
        helper.make_node("Add", ["a", "b1"], ["a2"]),
        helper.make_node("MatMul", ["a2", "w2"], ["s"], name="l2"),
        helper.make_node("MatMul", ["s", "w3"], ["t"], name="l3"),
        helper.make_node("MatMul", ["t", "w4"], ["h0"], name="l4"),
        helper.make_node("Add", ["h0", "b4"], ["h"]),
        helper.make_node("Reshape", ["h", "shape"], ["hr"]),
        helper.make_node("Split", ["hr"], ["off", "logit"], axis=2),
        helper.make_node("Tanh", ["off"], ["toff"]),
        helper.make_node("Mul", ["toff", "three"], ["doff"]),
        helper.make_node("Add", ["base", "doff"], ["boxes"]),
        helper.make_node("Sigmoid", ["logit"], ["score"]),
        helper.make_node("Concat", ["boxes", "score", "cls"], ["detections"], axis=2),
    ]
    inits = {"w1": rng.normal(0, 0.02, (3, 16)).astype(F32), "b1": b1, "w2": w2,
             "w3": rng.normal(0, 0.3, (16, 16)).astype(F32),
             "w4": rng.normal(0, 0.3, (16, 2 * K)).astype(F32),
             "b4": np.tile(np.array([0.0, 1.0], F32), K), "shape": np.array([1, K, 2], np.int64),
             "three": np.array(3.0, F32), "base": base,
             "cls": np.arange(K, dtype=F32).reshape(1, K, 1)}
    return save_graph(path, nodes, [("images", [1, SIZE, SIZE, 3], F32)],
                      [("detections", [1, K, 6], F32)], inits)


def frames(count, seed):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        image = rng.uniform(0, 255, (1, SIZE, SIZE, 3)) * rng.uniform(0.2, 1.0, 3)
        out.append(Frame(f"f{i}", image.astype(F32), ImageTransform(1, 1, 0, 0, SIZE, SIZE)))
    return out


def analysis_for(path, method="minmax"):
    adapter = create_adapter("centernet", path)
    return Analysis(path, adapter, frames(12, 1), frames(10, 2), method=method,
                    log=lambda _: None)


def test_search_finds_the_sensitive_layer(tmp_path):
    analysis = analysis_for(make_detector(tmp_path / "det.onnx"))
    rows, full = measure_sensitivity(analysis)
    by_name = {r.name: r for r in rows}
    assert ranked(rows)[0].name == "l2"
    assert by_name["l2"].alone_int8 < 0.5 < min(by_name[n].alone_int8 for n in ("l1", "l3", "l4"))
    # the wide channel dominates the signal: SNR looks fine where agreement collapses
    assert by_name["l2"].activation_snr_db > 30
    assert by_name["l2"].gain > 0 and full < 0.5
    result = search(analysis, rows, 0.9, mode="linear")
    assert result.promoted == ["l2"] and result.value >= 0.9
    assert result.layer_precisions() == ["l2=fp16"]
    assert result.history[0][0] == 0 and result.history[-1][0] == 4
    bisect = search(analysis, rows, 0.9, mode="bisect")
    assert bisect.promoted == ["l2"]
    # the Q/DQ model quantizes only the INT8 layers
    model = qdq_model(analysis, result)
    dq_consumers = {n.name for n in model.graph.node
                    if any(i.endswith("_dq") for i in n.input)}
    assert dq_consumers == {"l1", "l3", "l4"}


def test_unreachable_target_is_refused(tmp_path):
    analysis = analysis_for(make_detector(tmp_path / "det.onnx", fragile=True))
    rows, _ = measure_sensitivity(analysis, kept_fp16=False)
    with pytest.raises(TargetUnreachable, match="every one of the 4 layers in FP16"):
        search(analysis, rows, 0.9)
