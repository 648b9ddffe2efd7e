"""`trt_infer_ros_int8` end to end on a small detector: the report it writes, and bad input
refused with a message, a non-zero exit and nothing written."""
import json
import os

import cv2
import numpy as np
import onnx
import pytest
from onnx import helper

pytest.importorskip("tinygrad", reason="the optimize tools need tinygrad (Python 3.11 or later)")
pytest.importorskip("pycocotools", reason="the agreement measure needs pycocotools")

from onnx_graphs import save_graph
from test_engine_bag_reader import png_cdr, write_bag
from test_optimize_search import make_detector
from trt_infer_ros.engine import calibration_cache
from trt_infer_ros.optimize.cli import BAD_INPUT, UNREACHABLE, main


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    directory = tmp_path / "images"
    directory.mkdir()
    for i in range(9):
        image = (rng.uniform(0, 255, (64, 64, 3)) * rng.uniform(0.2, 1.0, 3)).astype(np.uint8)
        cv2.imwrite(str(directory / f"im{i}.png"), image)
    return str(directory)


def test_report_writes_table_plots_and_qdq(tmp_path, images, caplog):
    model = make_detector(tmp_path / "det.onnx")
    out = tmp_path / "report"
    rc = main(["report", model, "--images", images, "--model-type", "centernet",
               "--method", "minmax", "--target", "0.9", "--out", str(out), "--augment", "1"])
    assert rc == 0
    files = set(os.listdir(out))
    assert {"layers.md", "layers.csv", "sensitivity.png", "search.png", "bitwidth.png",
            "summary.json", "layer_precisions.yaml", "det.qdq.onnx"} <= files
    summary = json.loads((out / "summary.json").read_text())
    assert summary["promoted"] == ["l2"] and summary["final"]["map50_95"] >= 0.9
    assert set(summary["methods"]) == {"minmax", "percentile", "entropy"}
    assert [p["bits"] for p in summary["bitwidth"]][0] == 4
    assert "| l2 | MatMul |" in (out / "layers.md").read_text()
    assert '"l2=fp16"' in (out / "layer_precisions.yaml").read_text()
    onnx.checker.check_model(onnx.load(str(out / "det.qdq.onnx")))
    assert "FP16 layers: 1 of 4 (l2)" in caplog.text


def test_calibrate_writes_a_cache_the_builder_reads(tmp_path, images):
    model = make_detector(tmp_path / "det.onnx")
    cache = tmp_path / "calib.cache"
    assert main(["calibrate", model, "--images", images, "--cache", str(cache),
                 "--method", "percentile"]) == 0
    parsed = calibration_cache.CalibrationCache.parse(cache.read_bytes())
    assert "a2" in parsed.scales and parsed.algorithm == "EntropyCalibration2"


def test_bad_input(tmp_path, images, caplog):
    model = make_detector(tmp_path / "det.onnx")
    out = tmp_path / "out"
    common = ["--target", "0.9", "--out", str(out), "--model-type", "centernet"]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"not a jpeg")
    assert main(["search", model, "--images", str(broken)] + common) == BAD_INPUT
    assert "cannot be decoded: a.jpg" in caplog.text
    bag = write_bag(str(tmp_path / "bag"), [("/cam", "sensor_msgs/msg/CompressedImage", 1,
                                             png_cdr(np.zeros((8, 8, 3), np.uint8), 1))])
    assert main(["search", model, "--bag", bag, "--topic", "/other"] + common) == BAD_INPUT
    assert "/other" in caplog.text
    boxes = np.tile(np.array([10, 10, 30, 30, 0.9, 0], np.float32), (1, 4, 1))
    no_layers = [helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
                 helper.make_node("Mul", ["m", "zero"], ["z"]),
                 helper.make_node("Add", ["z", "boxes"], ["detections"])]
    relu = save_graph(tmp_path / "nolayers.onnx", no_layers,
                      [("images", [1, 64, 64, 3], np.float32)],
                      [("detections", [1, 4, 6], np.float32)],
                      {"zero": np.zeros((), np.float32), "boxes": boxes})
    assert main(["search", relu, "--images", images] + common) == BAD_INPUT
    assert "no quantizable layers" in caplog.text
    fragile = make_detector(tmp_path / "fragile.onnx", fragile=True)
    assert main(["search", fragile, "--images", images, "--method", "minmax"]
                + common) == UNREACHABLE
    assert "cannot be met" in caplog.text
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".int8")]
