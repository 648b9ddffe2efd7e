"""The engine builder's accuracy gate (TensorRT through the named fake; the measure is the
simulated Q/DQ model on onnxruntime, as wherever TensorRT cannot run)."""
import os

import cv2
import numpy as np
import pytest

pytest.importorskip("tinygrad", reason="the optimize tools need tinygrad (Python 3.11 or later)")
pytest.importorskip("pycocotools", reason="the agreement measure needs pycocotools")

from fakes.fake_tensorrt import FakeTensorRT
from test_optimize_search import make_detector
from trt_infer_ros.engine.builder import AccuracyGateError, build_engine
from trt_infer_ros.engine.device_info import DeviceInfo
from trt_infer_ros.engine.options import BuildConfigError, BuildOptions
from trt_infer_ros.optimize.cli import main as int8_main

DEVICE = DeviceInfo("Orin", "8.7")


def write_images(directory, count, seed):
    rng = np.random.default_rng(seed)
    directory.mkdir()
    for i in range(count):
        image = (rng.uniform(0, 255, (64, 64, 3)) * rng.uniform(0.2, 1.0, 3)).astype(np.uint8)
        cv2.imwrite(str(directory / f"im{i}.png"), image)
    return str(directory)


@pytest.fixture
def setup(tmp_path):
    model = make_detector(tmp_path / "det.onnx")
    calib = write_images(tmp_path / "calib", 8, 0)
    held = write_images(tmp_path / "held", 6, 1)
    cache = str(tmp_path / "calib.cache")
    assert int8_main(["calibrate", model, "--images", calib, "--cache", cache,
                      "--method", "minmax", "--model-type", "centernet"]) == 0
    return model, held, cache


def build(tmp_path, model, held, cache, logs, **kw):
    options = BuildOptions(onnx=model, precision="int8", calibration_algorithm="minmax",
                           calibration_cache=cache, model_type="centernet",
                           engine=str(tmp_path / "det.engine"), accuracy_target=0.9,
                           validation_images=held, **kw)
    return build_engine(options, trt=FakeTensorRT("10.3.0"), device=DEVICE, log=logs.append,
                        heartbeat_s=0.01)


def test_an_engine_that_misses_the_target_is_not_written(tmp_path, setup):
    logs = []
    with pytest.raises(AccuracyGateError, match="misses accuracy_target 0.9.*not written"):
        build(tmp_path, *setup, logs)
    assert not os.path.exists(tmp_path / "det.engine")
    assert any("simulated INT8 Q/DQ model" in line and "TensorRT cannot run" in line
               for line in logs)


def test_keeping_the_sensitive_layer_in_fp16_passes_the_gate(tmp_path, setup):
    logs = []
    result = build(tmp_path, *setup, logs, layer_precisions=["l2=fp16"])
    assert result.built and os.path.isfile(result.engine_path)
    assert any("meets accuracy_target 0.9" in line for line in logs)


def test_gate_options_are_checked_before_building(tmp_path, setup):
    model, held, _ = setup
    with pytest.raises(BuildConfigError, match="validation_images"):
        BuildOptions(onnx=model, precision="int8", accuracy_target=0.9,
                     calibration_images=held).validate()
    with pytest.raises(BuildConfigError, match="precision fp16 has no INT8"):
        BuildOptions(onnx=model, precision="fp16", accuracy_target=0.9,
                     validation_images=held).validate()
    with pytest.raises(BuildConfigError, match="accuracy_target"):
        BuildOptions(onnx=model, precision="int8", accuracy_target=1.5,
                     validation_images=held, calibration_images=held).validate()
