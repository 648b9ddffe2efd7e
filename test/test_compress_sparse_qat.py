"""2:4 and magnitude masks (kept through fine-tuning), the engine builder's sparse flag, and
quantization-aware training exported as Q/DQ ONNX."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

pytest.importorskip("tinygrad", reason="the optimize tools need tinygrad (Python 3.11 or later)")
pytest.importorskip("pycocotools", reason="the agreement measure needs pycocotools")

from compress_graphs import run, small_detector, tiny_yolo
from fakes.fake_tensorrt import FakeTensorRT
from onnx_graphs import IMAGES
from trt_infer_ros.engine.builder import build_engine
from trt_infer_ros.engine.device_info import DeviceInfo
from trt_infer_ros.engine.options import BuildOptions
from trt_infer_ros.optimize import compress_cli
from trt_infer_ros.optimize.prune_magnitude import (apply_masks, install, is_two_four,
                                                    magnitude_masks, two_four_masks)
from trt_infer_ros.optimize.qat import fake_quant, fake_quant_weight
from trt_infer_ros.optimize.qdq import has_qdq
from trt_infer_ros.optimize.trainable import TrainableModel


def test_two_four_pattern_and_dense_layers_named():
    model = small_detector(width=8)
    masks = two_four_masks(model)
    assert "stem" in masks.skipped and "3 input channels" in masks.skipped["stem"]
    assert "dw" in masks.skipped and "grouped" in masks.skipped["dw"]
    sparse = {i.name: numpy_helper.to_array(i) for i in apply_masks(model, masks).graph.initializer}
    original = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for name in masks.masks:
        assert is_two_four(sparse[name], 1)
        kept = np.abs(original[name])[sparse[name] != 0]
        dropped = np.abs(original[name])[sparse[name] == 0]
        assert kept.size == dropped.size                        # exactly two of every four
    # the two largest of each group survive
    w = original["w1"]
    groups = np.abs(w).reshape(w.shape[0], w.shape[1] // 4, 4)
    survivors = (sparse["w1"] != 0).reshape(groups.shape)
    assert (np.sort(groups, axis=-1)[..., 2:].sum(-1) ==
            pytest.approx((groups * survivors).sum(-1)))


def test_masks_stay_through_fine_tuning():
    model = small_detector()
    masks = magnitude_masks(model, 0.5)
    trainable = TrainableModel(model)
    install(trainable, masks)
    x = np.random.default_rng(0).random((1, 3, 16, 16)).astype(np.float32)
    loss = sum((v * v).mean() for v in trainable(x).values())
    params = trainable.parameters()
    names = list(trainable.params)
    grads = dict(zip(names, loss.gradient(*params)))
    for name, mask in masks.masks.items():
        assert np.all(grads[name].numpy()[mask == 0] == 0)      # pruned weights learn nothing
        trainable.params[name].assign(trainable.params[name] - 0.1 * grads[name] + 0.01).realize()
    state = trainable.state()
    for name, mask in masks.masks.items():
        assert np.all(state[name][mask == 0] == 0)
        assert abs((state[name] == 0).mean() - 0.5) < 0.05
    out = trainable.to_onnx()
    assert set(run(out, x)) == {"heat", "box"}


def test_engine_builder_sets_sparse_weights_flag(tmp_path):
    path = str(tmp_path / "m.onnx")
    onnx.save(apply_masks(small_detector(), two_four_masks(small_detector())), path)
    for sparse in (True, False):
        fake = FakeTensorRT("10.3.0")
        build_engine(BuildOptions(onnx=path, precision="fp16", sparse_weights=sparse,
                                  engine=str(tmp_path / f"m{sparse}.engine")),
                     trt=fake, device=DeviceInfo("Orin (nvgpu)", "8.7"), log=lambda _: None,
                     heartbeat_s=0.01)
        flags = [args[0] for args in fake.called("config.set_flag")]
        assert (fake.BuilderFlag.SPARSE_WEIGHTS in flags) == sparse


def test_fake_quant_straight_through():
    from tinygrad import Tensor
    x = Tensor([[-3.0, -0.26, 0.0, 0.24, 0.74, 5.0]])
    scale = Tensor([0.5])
    y = fake_quant(x, scale)
    assert y.numpy().tolist() == [[-3.0, -0.5, 0.0, 0.0, 0.5, 5.0]]
    gx, = y.sum().gradient(x)
    assert gx.numpy().tolist() == [[1.0] * 6]                   # inside the int8 range
    big = Tensor([[100.0, -100.0, 1.0]])
    g, = fake_quant(big, scale).sum().gradient(big)
    assert g.numpy().tolist() == [[0.0, 0.0, 1.0]]              # clipped values learn nothing
    w = Tensor(np.array([[1.0, -0.5], [0.01, 0.02]], np.float32))
    q = fake_quant_weight(w, 0).numpy()
    assert q[0, 0] == pytest.approx(1.0) and q[1, 1] == pytest.approx(0.02)


def test_qat_command_writes_qdq_at_least_as_good_as_ptq(tmp_path, capsys):
    path = str(tmp_path / "tiny.onnx")
    onnx.save(tiny_yolo(), path)
    out = str(tmp_path / "tiny.qdq.onnx")
    rc = compress_cli.main(["qat", path, "--out", out, "--images", str(IMAGES), "--augment",
                            "3", "--epochs", "2", "--lr", "1e-4", "--learn-scales",
                            "--latency-runs", "2"])
    assert rc == 0
    model = onnx.load(out)
    assert has_qdq(model)
    assert [o.name for o in model.graph.output] == ["output0"]
    import json
    report = json.load(open(out + ".json"))
    assert report["qat_agreement"]["map50_95"] >= report["ptq_agreement"]["map50_95"]
    assert "ptq agreement" in capsys.readouterr().out


def test_bad_input_writes_nothing(tmp_path):
    path = str(tmp_path / "tiny.onnx")
    onnx.save(tiny_yolo(), path)
    out = tmp_path / "never.onnx"
    assert compress_cli.main(["qat", path, "--out", str(out)]) == 2            # no frames
    assert compress_cli.main(["prune", path, "--ratio", "0.3", "--out", path]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert compress_cli.main(["distill", path, "--student", path, "--out", str(out),
                              "--images", str(empty)]) == 2
    assert not out.exists()
    assert onnx.load(path).graph.output[0].name == "output0"
