"""trt_infer_ros_compress on models and inputs beyond the plain FP32 detector: fp16 graphs, opset
versioned operators, boxes clipped to nothing, weak detectors, bad arguments, and Ctrl-C during
fine-tuning."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("tinygrad", reason="the optimize tools need tinygrad (Python 3.11 or later)")
pytest.importorskip("pycocotools", reason="the agreement measure needs pycocotools")

from compress_graphs import run, tiny_yolo
from onnx_graphs import IMAGES
from trt_infer_ros.models.registry import create_adapter
from trt_infer_ros.models.spec import Detections
from trt_infer_ros.optimize import compress_cli
from trt_infer_ros.optimize.agreement import detection_agreement
from trt_infer_ros.optimize.distill import Judge
from trt_infer_ros.optimize.frames import load_frames
from trt_infer_ros.optimize.trainable import TrainableModel


def fp16_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with float16 weights, input and output (as an fp16 export writes it)."""
    for init in model.graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            value = numpy_helper.to_array(init).astype(np.float16)
            init.CopyFrom(numpy_helper.from_array(value, init.name))
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.elem_type = TensorProto.FLOAT16
    onnx.checker.check_model(model)
    return model


def io_of(path: str) -> list:
    import onnxruntime as ort  # noqa: PLC0415
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return [(v.name, v.shape, v.type) for v in session.get_inputs() + session.get_outputs()]


@pytest.mark.parametrize("command", [["prune", "--ratio", "0.3", "--round-to", "1"],
                                     ["sparsify", "--pattern", "2:4"]])
def test_fp16_model_keeps_its_precision(tmp_path, command):
    path, out = str(tmp_path / "fp16.onnx"), str(tmp_path / "small.onnx")
    onnx.save(fp16_model(tiny_yolo()), path)
    rc = compress_cli.main([command[0], path, "--out", out, *command[1:], "--images",
                            str(IMAGES), "--augment", "1", "--latency-runs", "2",
                            "--no-gpu-latency"])
    assert rc == 0
    assert io_of(out) == io_of(path)
    assert all(i.data_type != TensorProto.FLOAT for i in onnx.load(out).graph.initializer)
    report = json.load(open(out + ".json"))
    assert report["before"]["agreement"]["map50"] == 1.0


def test_qat_refuses_fp16_model(tmp_path, caplog):
    path, out = str(tmp_path / "fp16.onnx"), tmp_path / "q.onnx"
    onnx.save(fp16_model(tiny_yolo()), path)
    assert compress_cli.main(["qat", path, "--out", str(out), "--images", str(IMAGES),
                              "--augment", "1"]) == 2
    assert "float16" in caplog.text and not out.exists()


def test_softmax_of_opset_13_trains():
    """Operators tinygrad keeps per opset version (Softmax, Dropout) run like onnxruntime."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 1, 1)).astype(np.float32), "w0"),
             numpy_helper.from_array(rng.standard_normal((2, 4, 1, 1)).astype(np.float32), "w1")]
    nodes = [helper.make_node("Conv", ["x", "w0"], ["a"]),
             helper.make_node("Softmax", ["a"], ["s"], axis=1),
             helper.make_node("Conv", ["s", "w1"], ["head"])]
    graph = helper.make_graph(nodes, "softmax", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 4, 4])], [helper.make_tensor_value_info(
            "head", TensorProto.FLOAT, [1, 2, 4, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    x = rng.standard_normal((1, 3, 4, 4)).astype(np.float32)
    got = TrainableModel(model)(x)["head"].numpy()
    np.testing.assert_allclose(got, run(model, x)["head"], rtol=1e-4, atol=1e-5)


def test_boxes_without_area_do_not_lower_self_agreement():
    boxes = np.array([[10, 10, 50, 60], [0, 20, 0, 40], [30, 5, 90, 5]], np.float32)
    dets = [Detections(boxes, np.array([0.9, 0.8, 0.7], np.float32),
                       np.array([0, 0, 1], np.int32))]
    agreement = detection_agreement(dets, dets, 0.3)
    assert agreement.map50 == 1.0 and agreement.map50_95 == 1.0
    assert agreement.truth_boxes == 1


def test_reference_threshold_below_candidate_threshold(tmp_path):
    """A weak detector (scores about 0.02) is measured when the reference threshold is lowered."""
    model = tiny_yolo()
    for init in model.graph.initializer:
        if init.name == "bcls":
            init.CopyFrom(numpy_helper.from_array(np.full(2, -6.0, np.float32), "bcls"))
    path = str(tmp_path / "weak.onnx")
    onnx.save(model, path)
    adapter = create_adapter("auto", path)
    frames = load_frames(adapter, str(IMAGES))
    assert Judge(adapter, model, frames, 0.001).agreement(model).map50 == 1.0


def test_bad_arguments_are_one_sentence(tmp_path, caplog, capsys):
    path = str(tmp_path / "tiny.onnx")
    onnx.save(tiny_yolo(), path)
    not_onnx = tmp_path / "photo.onnx"
    not_onnx.write_bytes(b"\xff\xd8\xff\xe0 not a model")
    other = str(tmp_path / "other.onnx")
    onnx.save(tiny_yolo(size=32), other)
    out = str(tmp_path / "out.onnx")
    refused = {
        "not a complete ONNX": ["prune", str(not_onnx), "--ratio", "0.3", "--out", out],
        "is a directory": ["prune", path, "--ratio", "0.3", "--out", str(tmp_path)],
        "cannot be written": ["prune", path, "--ratio", "0.3", "--out",
                              os.path.join(path, "x.onnx")],
        "are not the teacher's": ["distill", path, "--student", other, "--out", out,
                                  "--images", str(IMAGES)],
        "is the input model": ["distill", path, "--student", other, "--out", other,
                               "--images", str(IMAGES)],
    }
    for expected, argv in refused.items():
        caplog.clear()
        assert compress_cli.main(argv + ["--no-gpu-latency"]) == 2, expected
        assert expected in caplog.text
    for argv in (["--scope", "("], ["--round-to", "0"], ["--ratio", "1.5"], ["--lr", "-1"]):
        with pytest.raises(SystemExit) as stop:
            compress_cli.main(["prune", path, "--ratio", "0.3", "--out", out, *argv])
        assert stop.value.code == 2
        assert "error: argument" in capsys.readouterr().err
    assert not os.path.exists(out)


def test_ctrl_c_keeps_the_best_completed_epoch(tmp_path):
    path, out = str(tmp_path / "tiny.onnx"), str(tmp_path / "tuned.onnx")
    onnx.save(tiny_yolo(size=32), path)
    argv = [sys.executable, "-m", "trt_infer_ros.optimize.compress_cli", "sparsify", path,
            "--out", out, "--pattern", "unstructured", "--images", str(IMAGES), "--augment",
            "2", "--epochs", "1000", "--latency-runs", "0", "--no-gpu-latency"]
    env = dict(os.environ, DEV=os.environ.get("DEV", "CPU"))
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = []
    deadline = time.monotonic() + 120
    for line in iter(proc.stderr.readline, ""):
        lines.append(line)
        if "[compress] epoch 1:" in line or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGINT)         # Ctrl-C reaches the whole group
            break
    lines += proc.stderr.readlines()
    err = "".join(lines)
    assert proc.wait(60) == compress_cli.INTERRUPTED, err
    assert "Traceback" not in err, err
    report = json.load(open(out + ".json"))
    assert report["distillation"]["interrupted"]
    assert len(report["distillation"]["history"]) >= 1
    assert io_of(out) == io_of(path)
