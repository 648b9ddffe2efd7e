"""onnx_split: head(backbone(x)) == model(x) with onnxruntime, on a YOLO-like graph built here
and on the default CenterNet model, fed real photos."""
from __future__ import annotations

import glob

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from onnx_graphs import DEFAULT_MODEL, IMAGES, save_graph
from onnx import helper

from trt_infer_ros.engine.onnx_split import SplitError, main, split_model, suggest_cut


def yolo_like(path) -> str:
    """Two-scale detector: SiLU conv trunk, per-scale 1x1 head convs, then the decode part
    (reshape, concat, transpose, sigmoid on class scores) that YOLOv8 exports end with."""
    rng = np.random.default_rng(1)
    nodes, inits = [], {}

    def conv(name, x, cin, cout, k, stride):
        inits[f"{name}.w"] = (rng.normal(size=(cout, cin, k, k)) * 0.2).astype(np.float32)
        inits[f"{name}.b"] = (rng.normal(size=cout) * 0.1).astype(np.float32)
        nodes.append(helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [f"{name}.out"],
                                      name=name, strides=[stride] * 2, pads=[k // 2] * 4))
        nodes.append(helper.make_node("Sigmoid", [f"{name}.out"], [f"{name}.sig"],
                                      name=f"{name}/sigmoid"))
        nodes.append(helper.make_node("Mul", [f"{name}.out", f"{name}.sig"], [f"{name}.act"],
                                      name=f"{name}/silu"))
        return f"{name}.act"

    x = conv("stem", "images", 3, 8, 3, 2)
    p3 = conv("p3", x, 8, 16, 3, 2)            # /4
    p4 = conv("p4", p3, 16, 16, 3, 2)          # /8
    heads = []
    for i, feat in enumerate((p3, p4)):
        inits[f"det{i}.w"] = (rng.normal(size=(6, 16, 1, 1)) * 0.2).astype(np.float32)
        inits[f"det{i}.b"] = np.zeros(6, np.float32)
        nodes.append(helper.make_node("Conv", [feat, f"det{i}.w", f"det{i}.b"], [f"det{i}"],
                                      name=f"detect/conv{i}"))
        nodes.append(helper.make_node("Reshape", [f"det{i}", "flat_shape"], [f"flat{i}"],
                                      name=f"detect/reshape{i}"))
        heads.append(f"flat{i}")
    inits["flat_shape"] = np.array([1, 6, -1], np.int64)
    inits["split"] = np.array([4, 2], np.int64)
    nodes += [
        helper.make_node("Concat", heads, ["cat"], name="detect/concat", axis=2),
        helper.make_node("Split", ["cat", "split"], ["box", "cls"], name="detect/split", axis=1),
        helper.make_node("Sigmoid", ["cls"], ["cls_sig"], name="detect/cls_sigmoid"),
        helper.make_node("Concat", ["box", "cls_sig"], ["pred"], name="detect/concat2", axis=1),
        helper.make_node("Transpose", ["pred"], ["output0"], name="detect/transpose",
                         perm=[0, 2, 1]),
    ]
    return save_graph(path, nodes, [("images", [1, 3, 64, 64], np.float32)],
                      [("output0", [1, 320, 6], np.float32)], inits)


def run(model, feeds):
    blob = model if isinstance(model, (str, bytes)) else model.SerializeToString()
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds), [o.name for o in sess.get_outputs()]


def split_equals_whole(model_path, x, cut=None, atol=1e-5):
    result = split_model(model_path, cut)
    input_name = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"]) \
        .get_inputs()[0].name
    whole, _ = run(model_path, {input_name: x})
    feats, names = run(result.backbone, {input_name: x})
    assert names == result.cut_tensors
    parts, _ = run(result.head, dict(zip(names, feats)))
    for a, b in zip(whole, parts):
        np.testing.assert_allclose(b, a, atol=atol, rtol=1e-5)
    return result


def photos():
    files = sorted(glob.glob(str(IMAGES / "*.jpg")))
    if not files:
        pytest.skip(f"no photos in {IMAGES} yet")
    return [cv2.imread(f) for f in files]


def test_suggested_cut_of_a_yolo_graph_is_the_per_scale_head_outputs(tmp_path):
    s = suggest_cut(yolo_like(tmp_path / "yolo.onnx"))
    assert s.tensors == ["det0", "det1"]
    assert s.shapes["det0"] == [1, 6, 16, 16] and s.shapes["det1"] == [1, 6, 8, 8]
    assert "Reshape" in s.reason


def test_yolo_split_matches_the_whole_model(tmp_path):
    path = yolo_like(tmp_path / "yolo.onnx")
    x = np.random.default_rng(2).uniform(0, 1, (1, 3, 64, 64)).astype(np.float32)
    result = split_equals_whole(path, x)
    assert [i.name for i in result.head.graph.input] == ["det0", "det1"]
    assert {n.op_type for n in result.backbone.graph.node} == {"Conv", "Sigmoid", "Mul"}


def test_yolo_split_on_real_photos(tmp_path):
    path = yolo_like(tmp_path / "yolo.onnx")
    for image in photos():
        rgb = cv2.cvtColor(cv2.resize(image, (64, 64)), cv2.COLOR_BGR2RGB)
        x = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], np.float32) / 255.0
        split_equals_whole(path, x)


def test_explicit_cut_earlier_in_the_trunk(tmp_path):
    path = yolo_like(tmp_path / "yolo.onnx")
    x = np.random.default_rng(3).uniform(0, 1, (1, 3, 64, 64)).astype(np.float32)
    split_equals_whole(path, x, cut=["p3.act"])


def test_unclean_cut_is_explained(tmp_path):
    path = yolo_like(tmp_path / "yolo.onnx")
    with pytest.raises(SplitError, match=r"not clean.*\[.images.\]"):
        split_model(path, ["det0"])
    with pytest.raises(SplitError, match="not produced by any node"):
        split_model(path, ["no_such_tensor"])


def test_cli_writes_both_files(tmp_path, capsys):
    path = yolo_like(tmp_path / "yolo.onnx")
    assert main([path, "--out-dir", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "yolo.backbone.onnx").is_file()
    assert (tmp_path / "out" / "yolo.head.onnx").is_file()
    assert "suggested cut: det0,det1" in capsys.readouterr().out


def test_centernet_split_matches_the_whole_model_on_real_photos():
    if not DEFAULT_MODEL.is_file():
        pytest.skip(f"{DEFAULT_MODEL} is not in the repository yet")
    suggestion = suggest_cut(str(DEFAULT_MODEL))
    assert 1 <= len(suggestion.tensors) <= 6
    for image in photos()[:2]:
        rgb = cv2.cvtColor(cv2.resize(image, (512, 512)), cv2.COLOR_BGR2RGB)
        x = np.ascontiguousarray(rgb[None], np.float32)
        split_equals_whole(str(DEFAULT_MODEL), x, suggestion.tensors, atol=1e-3)


def centernet_like(path) -> str:
    """CenterNet-style graph as tf2onnx writes it: NHWC input transposed, conv trunk with a
    squeeze-excite block and an upsampling neck, heatmap/size heads, then the decode part
    (3x3 max-pool peak test, flatten, top-k)."""
    rng = np.random.default_rng(4)
    nodes, inits = [], {}

    def conv(name, x, cin, cout, k=3, stride=1, act="Relu"):
        inits[f"{name}.w"] = (rng.normal(size=(cout, cin, k, k)) * 0.2).astype(np.float32)
        inits[f"{name}.b"] = (rng.normal(size=cout) * 0.1).astype(np.float32)
        nodes.append(helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [f"{name}.c"],
                                      name=name, strides=[stride] * 2, pads=[k // 2] * 4))
        if act is None:
            return f"{name}.c"
        nodes.append(helper.make_node(act, [f"{name}.c"], [f"{name}.a"], name=f"{name}/{act}"))
        return f"{name}.a"

    nodes.append(helper.make_node("Transpose", ["image"], ["nchw"], name="to_nchw",
                                  perm=[0, 3, 1, 2]))
    x = conv("stem", "nchw", 3, 8, stride=2)
    x = conv("block1", x, 8, 16, stride=2)
    nodes += [helper.make_node("ReduceMean", [x], ["se.mean"], name="se/mean", axes=[2, 3],
                               keepdims=1)]
    s = conv("se.fc", "se.mean", 16, 16, k=1, act="Sigmoid")
    nodes.append(helper.make_node("Mul", [x, s], ["se.out"], name="se/scale"))
    inits["scales"] = np.array([1, 1, 2, 2], np.float32)
    nodes.append(helper.make_node("Resize", ["se.out", "", "scales"], ["up"], name="neck/up",
                                  mode="nearest"))
    heat = conv("head.heat", "up", 16, 4, act="Sigmoid")
    size = conv("head.size", "up", 16, 2, act=None)
    inits["flat"] = np.array([1, -1], np.int64)
    inits["k"] = np.array([5], np.int64)
    nodes += [
        helper.make_node("MaxPool", [heat], ["peak"], name="decode/maxpool", kernel_shape=[3, 3],
                         pads=[1] * 4, strides=[1, 1]),
        helper.make_node("Equal", [heat, "peak"], ["is_peak"], name="decode/equal"),
        helper.make_node("Cast", ["is_peak"], ["is_peak_f"], name="decode/cast", to=1),
        helper.make_node("Mul", [heat, "is_peak_f"], ["peaks"], name="decode/mul"),
        helper.make_node("Reshape", ["peaks", "flat"], ["flat_peaks"], name="decode/reshape"),
        helper.make_node("TopK", ["flat_peaks", "k"], ["scores", "indices"], name="decode/topk"),
        helper.make_node("Reshape", [size, "flat"], ["sizes"], name="decode/sizes"),
    ]
    return save_graph(path, nodes, [("image", [1, 64, 64, 3], np.float32)],
                      [("scores", [1, 5], np.float32), ("indices", [1, 5], np.int64),
                       ("sizes", [1, 512], np.float32)], inits)


def test_centernet_like_cut_is_at_the_head_outputs_and_split_matches(tmp_path):
    path = centernet_like(tmp_path / "centernet.onnx")
    s = suggest_cut(path)
    # the 3x3 max-pool of the peak test is DLA work too, so it stays in the backbone
    assert sorted(s.tensors) == ["head.heat.a", "head.size.c", "peak"]
    assert "TopK" in s.reason and "Equal" in s.reason
    x = np.random.default_rng(9).uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
    result = split_equals_whole(path, x, s.tensors)
    assert "Transpose" in {n.op_type for n in result.backbone.graph.node}
    assert "ReduceMean" in {n.op_type for n in result.backbone.graph.node}
