"""Conformance of trt_infer_ros.engine with a real TensorRT (8.5 .. 11).

Skipped (pytestmark below) where `import tensorrt` fails or there is no GPU. On a machine with
TensorRT it checks:
  - the FakeTensorRT used by the CPU tests has the same version-guarded names as this TensorRT;
  - a tiny ONNX builds in fp32, fp16, int8 and best, and the engine's outputs match
    onnxruntime (TensorRT 11: fp16/int8 come from fp16 / Q/DQ ONNX, strongly typed);
  - dynamic shapes: a min/opt/max profile builds and runs at min and max;
  - the timing cache is written, read back by the next build and still accepted by TensorRT;
  - INT8 calibration through our calibrators writes a cache our parser reads, with the header
    version code we compute; a second build reuses it; percentile calibration's cache is
    accepted;
  - per-layer precision overrides build with the constraint flag (TensorRT <= 10);
  - the progress monitor is called (TensorRT >= 10);
  - sidecar validation rejects a tampered engine file, a tampered sidecar and a changed ONNX,
    and a good engine loads with the I/O the sidecar records;
  - on a device with DLA: a DLA build, its placement report and the runtime DLA core.

Run it on the target:  python -m pytest -v test/tensorrt
"""
from __future__ import annotations

import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from trt_infer_ros.engine import trt_compat
from trt_infer_ros.engine.builder import build_engine
from trt_infer_ros.engine.calibration_cache import CalibrationCache
from trt_infer_ros.engine.device_info import current_device
from trt_infer_ros.engine.engine_loader import EngineMismatchError, load_engine
from trt_infer_ros.engine.options import BuildOptions
from trt_infer_ros.engine.sidecar import sidecar_path
from trt_infer_ros.models.spec import InputSpec



def _skip_reason():
    reason = trt_compat.tensorrt_unavailable_reason()
    if reason is not None:
        return (f"no TensorRT here: {reason} -- this conformance suite runs on a machine with "
                "TensorRT (JetPack 5/6 on Jetson, or the tensorrt wheel on x86 with a GPU)")
    try:
        from trt_infer_ros.cuda.context import cuda_unavailable_reason
    except ImportError as exc:
        return f"TensorRT is installed but cuda-python is not ({exc})"
    reason = cuda_unavailable_reason()
    return f"TensorRT is installed but there is no usable GPU: {reason}" if reason else None


SKIP_REASON = _skip_reason()
pytestmark = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")


@pytest.fixture(scope="module")
def trt():
    return trt_compat.import_tensorrt()


SIZE = 32
SPEC = InputSpec(width=SIZE, height=SIZE, layout="NCHW", color="RGB", resize="stretch")


def tiny_onnx(path, dynamic=False, fp16=False, qdq=False) -> str:
    """conv3x3-relu-conv1x1-sigmoid: small, deterministic, every precision handles it."""
    rng = np.random.default_rng(0)
    dt, et = (np.float16, TensorProto.FLOAT16) if fp16 else (np.float32, TensorProto.FLOAT)
    shape = ["N", 3, "H", "W"] if dynamic else [1, 3, SIZE, SIZE]
    out_shape = ["N", 4, "H", "W"] if dynamic else [1, 4, SIZE, SIZE]
    nodes, x = [], "images"
    inits = [numpy_helper.from_array((rng.normal(size=(8, 3, 3, 3)) * 0.3).astype(dt), "w1"),
             numpy_helper.from_array((rng.normal(size=8) * 0.1).astype(dt), "b1"),
             numpy_helper.from_array((rng.normal(size=(4, 8, 1, 1)) * 0.3).astype(dt), "w2"),
             numpy_helper.from_array(np.zeros(4, dt), "b2")]
    if qdq:
        inits += [numpy_helper.from_array(np.array(1 / 127, np.float32), "s_in"),
                  numpy_helper.from_array(np.array(0, np.int8), "z"),
                  numpy_helper.from_array(np.full(8, 0.01, np.float32), "s_w1")]
        nodes += [helper.make_node("QuantizeLinear", ["images", "s_in", "z"], ["xq"], name="q_in"),
                  helper.make_node("DequantizeLinear", ["xq", "s_in", "z"], ["xdq"],
                                   name="dq_in"),
                  helper.make_node("QuantizeLinear", ["w1", "s_w1", "z"], ["w1q"], name="q_w1",
                                   axis=0),
                  helper.make_node("DequantizeLinear", ["w1q", "s_w1", "z"], ["w1dq"],
                                   name="dq_w1", axis=0)]
        x, w1 = "xdq", "w1dq"
    else:
        w1 = "w1"
    nodes += [helper.make_node("Conv", [x, w1, "b1"], ["c1"], name="backbone/conv1", pads=[1] * 4),
              helper.make_node("Relu", ["c1"], ["r1"], name="backbone/relu1"),
              helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="head/conv2"),
              helper.make_node("Sigmoid", ["c2"], ["scores"], name="head/sigmoid")]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("images", et, shape)],
                              [helper.make_tensor_value_info("scores", et, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def reference(onnx_path, x):
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    return sess.run(None, {"images": x})[0]


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    import cv2
    out = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(1)
    for i in range(16):
        cv2.imwrite(str(out / f"{i:02d}.png"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    return str(out)


def sample(rng_seed=2, shape=(1, 3, SIZE, SIZE)):
    return np.random.default_rng(rng_seed).uniform(0, 1, shape).astype(np.float32)


def build(options: BuildOptions, trt, logs=None):
    lines = logs if logs is not None else []
    return build_engine(options, trt=trt, log=lines.append, input_spec=SPEC)


def major(trt) -> int:
    return trt_compat.version(trt)[0]


# --- the fake has what this TensorRT has -------------------------------------------------------

def test_fake_tensorrt_guards_agree_with_this_tensorrt(trt):
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from fakes.fake_tensorrt import FakeTensorRT
    fake = FakeTensorRT(trt.__version__)
    for guard in ("supports_strongly_typed", "always_strongly_typed", "supports_implicit_int8",
                  "supports_precision_constraints", "supports_progress_monitor",
                  "supports_optimization_level"):
        assert getattr(trt_compat, guard)(fake) == getattr(trt_compat, guard)(trt), guard
    for flag in ("FP16", "INT8", "GPU_FALLBACK", "OBEY_PRECISION_CONSTRAINTS"):
        assert hasattr(fake.BuilderFlag, flag) == hasattr(trt.BuilderFlag, flag), flag
    for flag in ("EXPLICIT_BATCH", "STRONGLY_TYPED"):
        assert hasattr(fake.NetworkDefinitionCreationFlag, flag) == \
            hasattr(trt.NetworkDefinitionCreationFlag, flag), flag
    for name in ("IInt8EntropyCalibrator2", "IInt8MinMaxCalibrator", "IInt8LegacyCalibrator",
                 "IProgressMonitor"):
        assert hasattr(fake, name) == hasattr(trt, name), name
    for attr in ("int8_calibrator", "progress_monitor", "builder_optimization_level",
                 "set_calibration_profile", "set_memory_pool_limit", "create_timing_cache",
                 "set_timing_cache", "get_timing_cache", "can_run_on_DLA", "DLA_core",
                 "default_device_type", "profiling_verbosity"):
        assert hasattr(fake.IBuilderConfig, attr) == hasattr(trt.IBuilderConfig, attr), attr
    assert hasattr(fake.get_plugin_registry(), "load_library") == \
        hasattr(trt.get_plugin_registry(), "load_library")


# --- every precision against onnxruntime -------------------------------------------------------

@pytest.mark.parametrize("precision,atol", [("fp32", 1e-4), ("fp16", 2e-2), ("int8", 0.12),
                                            ("best", 0.12)])
def test_every_precision_matches_onnxruntime(trt, tmp_path, calib_dir, precision, atol):
    strong = trt_compat.always_strongly_typed(trt)
    if strong and precision == "best":
        pytest.skip("TensorRT 11 has no weakly typed 'best' (fp16+int8) mode")
    fp16_model = strong and precision == "fp16"
    qdq_model = strong and precision == "int8"
    onnx_path = tiny_onnx(tmp_path / "tiny.onnx", fp16=fp16_model, qdq=qdq_model)
    options = BuildOptions(onnx=onnx_path, engine=str(tmp_path / f"{precision}.engine"),
                           precision=precision, workspace_mib=256)
    if precision in ("int8", "best") and not qdq_model:
        options.calibration_images = calib_dir
        options.calibration_count = 16
        options.calibration_cache = str(tmp_path / "calib.cache")
    result = build(options, trt)
    assert result.built and os.path.getsize(result.engine_path) > 0
    loaded = load_engine(result.engine_path, trt=trt, onnx_path=onnx_path)
    x = sample()
    if fp16_model:
        x = x.astype(np.float16)
    got = run_engine_out(loaded, x)
    want = reference(onnx_path, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), atol=atol)


def run_engine_out(loaded, x):
    from trt_run import run_engine
    return run_engine(loaded, x)["scores"]


def test_dynamic_profile_runs_at_min_and_max(trt, tmp_path):
    onnx_path = tiny_onnx(tmp_path / "dyn.onnx", dynamic=True)
    result = build(BuildOptions(onnx=onnx_path, engine=str(tmp_path / "dyn.engine"),
                                precision="fp32", min_shape="1x3x16x16",
                                opt_shape="1x3x32x32", max_shape="2x3x64x64"), trt)
    (spec,) = result.sidecar.inputs
    assert spec.shape == [-1, 3, -1, -1] and spec.profile["max"] == [2, 3, 64, 64]
    loaded = load_engine(result.engine_path, trt=trt)
    for shape in ((1, 3, 16, 16), (2, 3, 64, 64)):
        x = sample(shape=shape)
        np.testing.assert_allclose(run_engine_out(loaded, x), reference(onnx_path, x),
                                   atol=1e-4)


# --- timing cache --------------------------------------------------------------------------

def test_timing_cache_is_written_and_reused(trt, tmp_path):
    onnx_path = tiny_onnx(tmp_path / "t.onnx")
    cache = tmp_path / "timing.cache"
    build(BuildOptions(onnx=onnx_path, engine=str(tmp_path / "a.engine"), precision="fp32",
                       timing_cache=str(cache)), trt)
    first = cache.read_bytes()
    assert len(first) > 0
    logs = []
    build(BuildOptions(onnx=onnx_path, engine=str(tmp_path / "b.engine"), precision="fp32",
                       timing_cache=str(cache)), trt, logs)
    assert any(f"timing cache: read {len(first)} bytes" in line for line in logs)
    second = cache.read_bytes()
    assert len(second) >= len(first)
    # TensorRT itself accepts what we wrote back
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    config = builder.create_builder_config()
    assert config.create_timing_cache(second) is not None


# --- calibration ---------------------------------------------------------------------------

def test_calibration_cache_format_and_reuse(trt, tmp_path, calib_dir):
    if not trt_compat.supports_implicit_int8(trt):
        pytest.skip(f"TensorRT {trt.__version__} has no implicit INT8 calibration")
    onnx_path = tiny_onnx(tmp_path / "c.onnx")
    cache = tmp_path / "entropy.cache"
    opts = dict(onnx=onnx_path, precision="int8", calibration_images=calib_dir,
                calibration_count=8, calibration_cache=str(cache))
    build(BuildOptions(engine=str(tmp_path / "a.engine"), **opts), trt)
    parsed = CalibrationCache.parse(cache.read_bytes())
    assert parsed.header == f"TRT-{trt_compat.version_code(trt)}-EntropyCalibration2"
    assert "images" in parsed.scales and all(s > 0 for s in parsed.scales.values())
    logs = []
    build(BuildOptions(engine=str(tmp_path / "b.engine"), **opts), trt, logs)
    assert any("reusing calibration cache" in line for line in logs)
    assert CalibrationCache.parse(cache.read_bytes()).scales == parsed.scales


@pytest.mark.parametrize("algorithm", ["minmax", "legacy", "percentile"])
def test_other_calibration_algorithms_build_and_run(trt, tmp_path, calib_dir, algorithm):
    if not trt_compat.supports_implicit_int8(trt):
        pytest.skip(f"TensorRT {trt.__version__} has no implicit INT8 calibration")
    onnx_path = tiny_onnx(tmp_path / "c.onnx")
    cache = tmp_path / f"{algorithm}.cache"
    result = build(BuildOptions(onnx=onnx_path, engine=str(tmp_path / "m.engine"),
                                precision="int8", calibration_algorithm=algorithm,
                                calibration_images=calib_dir, calibration_count=8,
                                calibration_cache=str(cache)), trt)
    assert CalibrationCache.parse(cache.read_bytes()).scales
    x = sample()
    got = run_engine_out(load_engine(result.engine_path, trt=trt), x)
    np.testing.assert_allclose(got, reference(onnx_path, x), atol=0.15)


# --- layer precisions, progress ----------------------------------------------------------------

def test_layer_precision_override_builds_with_the_constraint_flag(trt, tmp_path):
    if not trt_compat.supports_precision_constraints(trt):
        pytest.skip("TensorRT 11 is strongly typed: no per-layer precision constraints")
    onnx_path = tiny_onnx(tmp_path / "l.onnx")
    logs = []
    result = build(BuildOptions(onnx=onnx_path, engine=str(tmp_path / "l.engine"),
                                precision="fp16", layer_precisions=["head/*=fp32"]), trt, logs)
    assert any("2 layer precision override(s)" in line for line in logs)
    x = sample()
    np.testing.assert_allclose(run_engine_out(load_engine(result.engine_path, trt=trt), x),
                               reference(onnx_path, x), atol=2e-2)


def test_progress_monitor_reports_phases(trt, tmp_path):
    if not trt_compat.supports_progress_monitor(trt):
        pytest.skip(f"TensorRT {trt.__version__} has no IProgressMonitor (heartbeat instead)")
    logs = []
    build(BuildOptions(onnx=tiny_onnx(tmp_path / "p.onnx"), engine=str(tmp_path / "p.engine"),
                       precision="fp32"), trt, logs)
    assert any(": started (" in line for line in logs)
    assert any("%" in line and "/" in line for line in logs)


# --- sidecar validation --------------------------------------------------------------------------

@pytest.fixture
def good_engine(trt, tmp_path):
    onnx_path = tiny_onnx(tmp_path / "s.onnx")
    result = build(BuildOptions(onnx=onnx_path, engine=str(tmp_path / "s.engine"),
                                precision="fp32"), trt)
    return onnx_path, result.engine_path


def test_good_engine_loads_with_the_recorded_io(trt, good_engine):
    onnx_path, path = good_engine
    loaded = load_engine(path, trt=trt, onnx_path=onnx_path, dla_core=-1)
    assert [(s.name, s.shape, s.dtype) for s in loaded.inputs] == [
        ("images", [1, 3, SIZE, SIZE], "float32")]
    device = current_device()
    assert loaded.sidecar.gpu_name == device.gpu_name
    assert loaded.sidecar.compute_capability == device.compute_capability
    assert loaded.sidecar.tensorrt_version == trt.__version__


def test_tampered_engine_is_rejected(trt, good_engine):
    _, path = good_engine
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x5A
    open(path, "wb").write(bytes(data))
    with pytest.raises(EngineMismatchError, match="engine_sha256"):
        load_engine(path, trt=trt)


def test_tampered_sidecar_is_rejected(trt, good_engine):
    _, path = good_engine
    side = json.load(open(sidecar_path(path)))
    side["compute_capability"] = "5.3"
    json.dump(side, open(sidecar_path(path), "w"))
    with pytest.raises(EngineMismatchError, match="compute_capability"):
        load_engine(path, trt=trt)


def test_changed_onnx_is_rejected_or_rebuilt(trt, good_engine):
    onnx_path, path = good_engine
    model = onnx.load(onnx_path)
    model.graph.initializer[3].raw_data = np.ones(4, np.float32).tobytes()
    onnx.save(model, onnx_path)
    with pytest.raises(EngineMismatchError, match="onnx_sha256"):
        load_engine(path, trt=trt, onnx_path=onnx_path)
    loaded = load_engine(path, trt=trt, onnx_path=onnx_path,
                         rebuild=BuildOptions(onnx=onnx_path, precision="fp32"))
    x = sample()
    np.testing.assert_allclose(run_engine_out(loaded, x), reference(onnx_path, x), atol=1e-4)


# --- DLA -----------------------------------------------------------------------------------

def test_dla_build_and_placement_report(trt, tmp_path, calib_dir):
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    if int(getattr(builder, "num_DLA_cores", 0)) == 0:
        pytest.skip("this device has no DLA core")
    onnx_path = tiny_onnx(tmp_path / "d.onnx")
    logs = []
    result = build(BuildOptions(onnx=onnx_path, engine=str(tmp_path / "d.engine"),
                                precision="fp16", dla_core=0), trt, logs)
    assert result.sidecar.dla_core == 0
    assert result.dla_plan is not None and result.dla_plan.total_layers >= 4
    assert result.sidecar.dla_summary["placement"] is not None
    assert result.sidecar.dla_summary["placement"]["dla_subgraphs"] >= 1
    loaded = load_engine(result.engine_path, trt=trt, dla_core=0)
    assert loaded.runtime.DLA_core == 0
    x = sample()
    np.testing.assert_allclose(run_engine_out(loaded, x), reference(onnx_path, x), atol=3e-2)
