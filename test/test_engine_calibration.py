"""INT8 calibration: the cache text format, batches through the pipeline's preprocessing,
percentile ranges with onnxruntime, and calibrators fed into real device memory (where a CUDA
GPU and cuda-python exist). TensorRT itself is FakeTensorRT (a recording fake)."""
from __future__ import annotations

import glob
import hashlib
import struct

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from onnx_graphs import IMAGES
from fakes.fake_tensorrt import FakeTensorRT
from test_engine_builder import conv_graph, run_build

from trt_infer_ros.engine import calibration
from trt_infer_ros.engine.calibration_cache import (CalibrationCache, CalibrationCacheError,
                                                   cache_matches, float_to_hex, hex_to_float,
                                                   read_meta, write_cache)
from trt_infer_ros.engine.options import BuildConfigError
from trt_infer_ros.models.spec import InputSpec

SPEC = InputSpec(width=32, height=32, layout="NCHW", color="RGB", resize="letterbox")


def _preprocess():
    try:
        from trt_infer_ros.pipeline.preprocess import preprocess
    except ImportError as exc:
        pytest.skip(f"trt_infer_ros.pipeline.preprocess is not there yet ({exc})")
    return preprocess


@pytest.fixture
def image_dir(tmp_path):
    """Real photos when the repository has them, else a few drawn test images."""
    out = tmp_path / "calib"
    out.mkdir()
    photos = sorted(glob.glob(str(IMAGES / "*.jpg")))
    if photos:
        for p in photos:
            img = cv2.imread(p)
            cv2.imwrite(str(out / p.split("/")[-1]), img)
    else:
        rng = np.random.default_rng(7)
        for i in range(5):
            img = np.zeros((60 + 10 * i, 80, 3), np.uint8)
            cv2.circle(img, (40, 30), 10 + i * 3, tuple(int(c) for c in rng.integers(0, 255, 3)),
                       -1)
            cv2.imwrite(str(out / f"img{i}.png"), img)
    return out


# --- cache format ----------------------------------------------------------------------------

def test_scale_hex_is_the_big_endian_float_bit_pattern():
    assert float_to_hex(1.0) == "3f800000"
    assert hex_to_float("3c010204") == struct.unpack(">f", bytes.fromhex("3c010204"))[0]
    assert hex_to_float("3c010204") == pytest.approx(0.00788, rel=1e-3)


def test_cache_text_round_trip():
    text = ("TRT-8601-EntropyCalibration2\n"
            "images: 3c010a14\n"
            "backbone/conv1:0: 3d8f5c29\n"
            "(Unnamed Layer* 3) [Activation]_output: 3e4ccccd\n")
    cache = CalibrationCache.parse(text)
    assert (cache.version_code, cache.algorithm) == (8601, "EntropyCalibration2")
    assert list(cache.scales) == ["images", "backbone/conv1:0",
                                  "(Unnamed Layer* 3) [Activation]_output"]
    assert cache.scales["(Unnamed Layer* 3) [Activation]_output"] == pytest.approx(0.2)
    assert cache.dynamic_range("backbone/conv1:0") == pytest.approx(127 * 0.07)
    assert cache.to_text() == text
    assert CalibrationCache.parse(cache.to_bytes()).scales == cache.scales


@pytest.mark.parametrize("bad", ["", "hello\n", "TRT-x-Entropy\n",
                                 "TRT-8601-EntropyCalibration2\nimages 3c010a14\n",
                                 "TRT-8601-EntropyCalibration2\nimages: zz\n"])
def test_malformed_caches_are_rejected(bad):
    with pytest.raises(CalibrationCacheError):
        CalibrationCache.parse(bad)


def test_cache_reuse_only_when_it_matches(tmp_path):
    path = str(tmp_path / "c.cache")
    meta = {"onnx_sha256": "aa", "algorithm": "entropy2", "input_spec": "spec"}
    ok, why = cache_matches(path, "entropy2", meta)
    assert not ok and "no calibration cache" in why
    write_cache(path, CalibrationCache(8601, "EntropyCalibration2", {"x": 0.1}).to_bytes(), meta)
    assert read_meta(path) == meta
    assert cache_matches(path, "entropy2", meta)[0]
    ok, why = cache_matches(path, "minmax", meta)
    assert not ok and "MinMaxCalibration" in why
    ok, why = cache_matches(path, "entropy2", dict(meta, onnx_sha256="bb"))
    assert not ok and "onnx_sha256" in why
    with open(path, "w") as f:
        f.write("garbage")
    assert not cache_matches(path, "entropy2", meta)[0]


# --- batches -------------------------------------------------------------------------------------

def test_batches_are_the_pipeline_preprocessing_stacked(image_dir):
    preprocess = _preprocess()
    images = list(calibration.directory_images(str(image_dir)))
    batches = calibration.CalibrationBatches(iter(images), SPEC, count=4, batch_size=2)
    out = list(batches)
    assert len(out) == 2 and batches.used == 4
    assert out[0].shape == (2, 3, 32, 32) and out[0].dtype == np.float32
    assert out[0].flags.c_contiguous
    expected = preprocess(images[1][0], "bgr8", SPEC)[0][0]
    np.testing.assert_array_equal(out[0][1], expected)
    assert batches.nbytes == 2 * 3 * 32 * 32 * 4


def test_partial_last_batch_is_dropped_and_empty_source_fails(image_dir):
    _preprocess()
    images = list(calibration.directory_images(str(image_dir)))
    out = list(calibration.CalibrationBatches(iter(images[:3]), SPEC, count=10, batch_size=2))
    assert len(out) == 1
    with pytest.raises(ValueError, match="no images"):
        list(calibration.CalibrationBatches(iter([]), SPEC, count=10))


def test_bag_and_directory_sources_are_chosen_by_parameter(image_dir):
    assert next(calibration.image_source(images_dir=str(image_dir)))[1] == "bgr8"
    with pytest.raises(ValueError, match="no calibration images"):
        calibration.image_source()


# --- percentile calibration ------------------------------------------------------------------

def test_percentile_ranges_match_numpy_on_the_activations(tmp_path):
    onnx = conv_graph(tmp_path / "m.onnx")
    rng = np.random.default_rng(8)
    batches = [rng.normal(size=(1, 3, 32, 32)).astype(np.float32) for _ in range(3)]
    ranges = calibration.percentile_ranges(onnx, batches, 99.0)
    sess = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    expected_in = np.mean([np.percentile(np.abs(b), 99.0) for b in batches])
    assert ranges["images"] == pytest.approx(expected_in, rel=1e-6)
    expected_out = np.mean([np.percentile(np.abs(sess.run(None, {"images": b})[0]), 99.0)
                            for b in batches])
    assert ranges["output0"] == pytest.approx(expected_out, rel=1e-5)
    assert {"c1", "r1", "c2", "flat"} <= set(ranges)
    assert ranges["r1"] <= ranges["c1"] + 1e-6          # relu never grows |x|


def test_percentile_build_hands_tensorrt_our_cache(tmp_path, image_dir):
    _preprocess()
    onnx = conv_graph(tmp_path / "m.onnx")
    cache = tmp_path / "percentile.cache"
    fake = FakeTensorRT("10.3.0")
    result = run_build(fake, onnx=onnx, precision="int8", calibration_algorithm="percentile",
                       calibration_percentile=99.9, calibration_images=str(image_dir),
                       calibration_cache=str(cache), model_type="yolov8",
                       engine=str(tmp_path / "m.engine"))
    parsed = CalibrationCache.parse(cache.read_bytes())
    assert parsed.header == "TRT-100300-EntropyCalibration2"
    assert {"images", "c1", "r1", "output0"} <= set(parsed.scales)
    (given,) = fake.called("calibrator.read_calibration_cache")[0:1][0]
    assert given == cache.read_bytes()
    assert not fake.called("calibrator.get_batch")
    assert result.sidecar.calibration_cache_sha256 == hashlib.sha256(cache.read_bytes()).hexdigest()
    assert read_meta(str(cache))["algorithm"] == "percentile"


def test_calibration_batch_must_fit_the_input(tmp_path, image_dir):
    onnx = conv_graph(tmp_path / "m.onnx")
    with pytest.raises(BuildConfigError) as err:
        run_build(FakeTensorRT("10.3.0"), onnx=onnx, precision="int8", calibration_batch=4,
                  calibration_images=str(image_dir))
    assert err.value.parameters == ["calibration_batch"] and "calibration_batch:=1" in str(err.value)


def test_calibration_is_refused_on_tensorrt_11():
    with pytest.raises(RuntimeError, match="gone in TensorRT 11"):
        calibration.calibrator_base(FakeTensorRT("11.0.0"), "entropy2")


# --- device memory (real CUDA) ---------------------------------------------------------------

def _cuda_or_skip():
    try:
        from trt_infer_ros.cuda.context import cuda_unavailable_reason
    except ImportError as exc:
        pytest.skip(f"cuda-python is not installed here ({exc})")
    reason = cuda_unavailable_reason()
    if reason:
        pytest.skip(f"no CUDA device here: {reason}")


def test_calibrator_uploads_each_batch_to_device_memory(image_dir):
    _cuda_or_skip()
    _preprocess()
    images = list(calibration.directory_images(str(image_dir)))
    batches = calibration.CalibrationBatches(iter(images), SPEC, count=4, batch_size=2)
    expected = list(calibration.CalibrationBatches(iter(images), SPEC, count=4, batch_size=2))
    core = calibration.CalibratorCore(batches)
    seen = []
    while True:
        ptrs = core.get_batch(["images"])
        if ptrs is None:
            break
        host = np.empty(batches.shape, np.float32)
        core._buffer.download(host)
        seen.append(host)
        assert ptrs == [core._buffer.ptr]
    assert len(seen) == 2 and core._buffer is None            # freed after the last batch
    for got, want in zip(seen, expected):
        np.testing.assert_array_equal(got, want)


def test_int8_build_calibrates_through_device_memory_and_writes_the_cache(tmp_path, image_dir):
    _cuda_or_skip()
    _preprocess()
    onnx = conv_graph(tmp_path / "m.onnx")
    cache = tmp_path / "entropy.cache"
    fake = FakeTensorRT("8.6.1")
    run_build(fake, onnx=onnx, precision="int8", calibration_images=str(image_dir),
              calibration_count=3, calibration_cache=str(cache), model_type="yolov8",
              engine=str(tmp_path / "m.engine"))
    assert fake.called("calibrator.batches") == [(3,)]
    assert all(ptr != 0 for (ptrs,) in fake.called("calibrator.get_batch") for ptr in ptrs)
    assert CalibrationCache.parse(cache.read_bytes()).header == "TRT-8600-EntropyCalibration2"
    # a second build reuses the cache: TensorRT asks for no batch
    fake2 = FakeTensorRT("8.6.1")
    run_build(fake2, onnx=onnx, precision="int8", calibration_images=str(image_dir),
              calibration_count=3, calibration_cache=str(cache), model_type="yolov8",
              engine=str(tmp_path / "m2.engine"))
    assert not fake2.called("calibrator.get_batch")


def test_default_model_calibrates_with_its_adapters_preprocessing():
    """The calibration input spec is the one the detector uses for the same ONNX."""
    from onnx_graphs import DEFAULT_MODEL
    if not DEFAULT_MODEL.is_file():
        pytest.skip(f"{DEFAULT_MODEL} is not in the repository yet")
    photos = sorted(glob.glob(str(IMAGES / "*.jpg")))
    if not photos:
        pytest.skip(f"no photos in {IMAGES} yet")
    from trt_infer_ros.models.registry import create_adapter
    spec = calibration.input_spec_for("", str(DEFAULT_MODEL))
    assert spec == create_adapter("auto", str(DEFAULT_MODEL)).input_spec
    assert (spec.layout, spec.width, spec.height) == ("NHWC", 512, 512)
    images = calibration.directory_images(str(IMAGES))
    batches = list(calibration.CalibrationBatches(images, spec, count=2))
    assert [b.shape for b in batches] == [(1, 512, 512, 3)] * 2
    first = cv2.imread(photos[0])
    np.testing.assert_array_equal(batches[0], _preprocess()(first, "bgr8", spec)[0])
