"""Which TensorRT calls each build-parameter combination makes, on TensorRT 8.5, 8.6, 10 and 11.

The TensorRT API is FakeTensorRT (test/fakes), a recording fake: no engine is really built here.
The ONNX graphs are real (onnx.helper) and are read by the fake parser.
"""
from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess

import numpy as np
import pytest
from onnx_graphs import save_graph
from fakes.fake_tensorrt import FakeTensorRT
from onnx import helper

from trt_infer_ros.engine import builder as builder_mod
from trt_infer_ros.engine.builder import build_engine
from trt_infer_ros.engine.calibration_cache import CalibrationCache, write_cache
from trt_infer_ros.engine.device_info import DeviceInfo
from trt_infer_ros.engine.engine_loader import EngineMismatchError
from trt_infer_ros.engine.options import BuildConfigError, BuildOptions
from trt_infer_ros.engine.sidecar import read_sidecar

VERSIONS = ["8.5.3", "8.6.1", "10.3.0", "11.0.0"]
ORIN = DeviceInfo("Orin (nvgpu)", "8.7")


def conv_graph(path, dynamic=False, fp16=False, qdq=False):
    """A small YOLO-like graph: conv-relu-conv backbone, reshape/transpose head."""
    rng = np.random.default_rng(0)
    dt = np.float16 if fp16 else np.float32
    shape_in = ["batch", 3, "height", "width"] if dynamic else [1, 3, 32, 32]
    nodes = []
    x = "images"
    if qdq:
        nodes += [helper.make_node("QuantizeLinear", ["images", "s", "zp"], ["q"], name="quant"),
                  helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["dq"], name="dequant")]
        x = "dq"
    nodes += [
        helper.make_node("Conv", [x, "w1", "b1"], ["c1"], name="backbone/conv1", pads=[1] * 4),
        helper.make_node("Relu", ["c1"], ["r1"], name="backbone/relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="head/conv2"),
        helper.make_node("Reshape", ["c2", "shape"], ["flat"], name="head/reshape"),
        helper.make_node("Transpose", ["flat"], ["output0"], name="head/transpose", perm=[0, 2, 1]),
    ]
    inits = {"w1": rng.normal(size=(8, 3, 3, 3)).astype(dt), "b1": np.zeros(8, dt),
             "w2": rng.normal(size=(6, 8, 1, 1)).astype(dt), "b2": np.zeros(6, dt),
             "shape": np.array([0, 6, -1], np.int64)}
    if qdq:
        inits.update({"s": np.array(0.02, np.float32), "zp": np.array(0, np.int8)})
    out_shape = ["batch", "anchors", 6] if dynamic else [1, 1024, 6]
    return save_graph(path, nodes, [("images", shape_in, dt)], [("output0", out_shape, dt)],
                      inits)


@pytest.fixture
def onnx_path(tmp_path):
    return conv_graph(tmp_path / "model.onnx")


@pytest.fixture
def dynamic_onnx(tmp_path):
    return conv_graph(tmp_path / "dynamic.onnx", dynamic=True)


def run_build(fake, logs=None, **kw):
    options = BuildOptions(**kw)
    lines = logs if logs is not None else []
    return build_engine(options, trt=fake, device=ORIN, log=lines.append, heartbeat_s=0.01)


def built(fake) -> bool:
    return bool(fake.called("builder.build_serialized_network"))


# --- precision flags and network flags -------------------------------------------------------

@pytest.mark.parametrize("version", ["8.5.3", "8.6.1", "10.3.0"])
@pytest.mark.parametrize("precision,flags", [("fp32", []), ("fp16", ["FP16"])])
def test_precision_flags_before_11(tmp_path, onnx_path, version, precision, flags):
    fake = FakeTensorRT(version)
    run_build(fake, onnx=onnx_path, precision=precision, engine=str(tmp_path / "m.engine"))
    assert fake.flags_set() == flags


def test_best_precision_sets_fp16_and_int8_and_attaches_calibrator(tmp_path, onnx_path):
    fake = FakeTensorRT("10.3.0")
    cache = tmp_path / "calib.cache"
    write_cache(str(cache), CalibrationCache(100300, "EntropyCalibration2",
                                             {"images": 0.0078}).to_bytes())
    run_build(fake, onnx=onnx_path, precision="best", calibration_cache=str(cache),
              engine=str(tmp_path / "m.engine"))
    assert sorted(fake.flags_set()) == ["FP16", "INT8"]
    (calibrator,) = fake.called("config.int8_calibrator")[0]
    assert type(calibrator).__mro__[1] is fake.IInt8EntropyCalibrator2
    # TensorRT read our cache and therefore never asked for a batch
    assert fake.called("calibrator.read_calibration_cache")[0][0] == cache.read_bytes()
    assert not fake.called("calibrator.get_batch")


@pytest.mark.parametrize("version,expected_bits", [
    ("8.5.3", {"EXPLICIT_BATCH"}), ("8.6.1", {"EXPLICIT_BATCH"}), ("10.3.0", set()),
    ("11.0.0", {"STRONGLY_TYPED"})])
def test_network_creation_flags(tmp_path, version, expected_bits):
    fake = FakeTensorRT(version)
    model = conv_graph(tmp_path / "m16.onnx", fp16=(version == "11.0.0"))
    run_build(fake, onnx=model, precision="fp32" if version != "11.0.0" else "fp16",
              engine=str(tmp_path / "m.engine"))
    (flags,) = fake.called("builder.create_network")[0]
    enum = fake.NetworkDefinitionCreationFlag
    assert {m.name for m in enum if flags & (1 << int(m))} == expected_bits


def test_tensorrt_11_sets_no_precision_flags_and_reads_types_from_onnx(tmp_path):
    fake = FakeTensorRT("11.0.0")
    model = conv_graph(tmp_path / "m16.onnx", fp16=True)
    run_build(fake, onnx=model, precision="fp16", engine=str(tmp_path / "m.engine"))
    assert fake.flags_set() == []
    assert not hasattr(fake.BuilderFlag, "FP16")


def test_tensorrt_11_rejects_fp16_for_an_fp32_onnx_before_building(onnx_path, tmp_path):
    fake = FakeTensorRT("11.0.0")
    with pytest.raises(BuildConfigError) as err:
        run_build(fake, onnx=onnx_path, precision="fp16", engine=str(tmp_path / "m.engine"))
    assert err.value.parameters == ["precision"]
    assert "float16" in str(err.value) and "strongly typed" in str(err.value)
    assert not built(fake)


def test_tensorrt_11_int8_needs_qdq_not_calibration(tmp_path, onnx_path):
    import cv2
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.jpg"), np.full((48, 64, 3), 128, np.uint8))
    fake = FakeTensorRT("11.0.0")
    with pytest.raises(BuildConfigError) as err:
        run_build(fake, onnx=onnx_path, precision="int8", calibration_images=str(images),
                  engine=str(tmp_path / "m.engine"))
    assert "Q/DQ" in str(err.value) and "precision" in err.value.parameters
    qdq = conv_graph(tmp_path / "qdq.onnx", qdq=True)
    fake = FakeTensorRT("11.0.0")
    run_build(fake, onnx=qdq, precision="int8", engine=str(tmp_path / "q.engine"))
    assert fake.flags_set() == [] and "config.int8_calibrator" not in fake.call_names()


def test_strongly_typed_on_10_sets_the_network_flag_and_no_precision_flags(tmp_path):
    fake = FakeTensorRT("10.3.0")
    qdq = conv_graph(tmp_path / "qdq.onnx", qdq=True)
    run_build(fake, onnx=qdq, precision="int8", strongly_typed=True,
              engine=str(tmp_path / "q.engine"))
    (flags,) = fake.called("builder.create_network")[0]
    assert flags == 1 << int(fake.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert fake.flags_set() == []
    assert "config.int8_calibrator" not in fake.call_names()


def test_qdq_onnx_on_10_weakly_typed_sets_int8_without_calibrator(tmp_path):
    fake = FakeTensorRT("10.3.0")
    qdq = conv_graph(tmp_path / "qdq.onnx", qdq=True)
    run_build(fake, onnx=qdq, precision="int8", engine=str(tmp_path / "q.engine"))
    assert fake.flags_set() == ["INT8"] and "config.int8_calibrator" not in fake.call_names()


@pytest.mark.parametrize("version", ["8.5.3", "8.6.1"])
def test_strongly_typed_before_10_fails_before_building(onnx_path, version, tmp_path):
    fake = FakeTensorRT(version)
    with pytest.raises(BuildConfigError) as err:
        run_build(fake, onnx=onnx_path, strongly_typed=True, precision="fp32",
                  engine=str(tmp_path / "m.engine"))
    assert err.value.parameters == ["strongly_typed"]
    assert not built(fake)


# --- workspace, optimization level, plugins --------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_workspace_and_optimization_level(tmp_path, version):
    fake = FakeTensorRT(version)
    model = conv_graph(tmp_path / "m.onnx", fp16=version.startswith("11"))
    logs = []
    run_build(fake, logs, onnx=model, precision="fp16", workspace_mib=256, optimization_level=5,
              engine=str(tmp_path / "m.engine"))
    assert fake.called("config.set_memory_pool_limit") == [(fake.MemoryPoolType.WORKSPACE,
                                                            256 << 20)]
    if version == "8.5.3":
        assert "config.builder_optimization_level" not in fake.call_names()
        assert any("optimization_level 5 ignored" in line for line in logs)
    else:
        assert fake.called("config.builder_optimization_level") == [(5,)]


def compile_shared_library(path, flags=("-shared", "-fPIC")) -> str:
    """A real ELF file built with the system C compiler (a shared library by default)."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler to build an ELF file with")
    source = path.with_suffix(".c")
    source.write_text("int plugin_answer(void) { return 42; }\nint main(void) { return 0; }\n")
    subprocess.run([cc, *flags, "-o", str(path), str(source)], check=True)
    return str(path)


def test_plugins_are_loaded_by_path_and_recorded(tmp_path, onnx_path):
    plugin = compile_shared_library(tmp_path / "libmy_plugin.so")
    fake = FakeTensorRT("10.3.0")
    result = run_build(fake, onnx=onnx_path, plugins=[str(plugin)],
                       engine=str(tmp_path / "m.engine"))
    assert fake.called("plugin_registry.load_library") == [(plugin,)]
    assert result.sidecar.plugins == [plugin]


@pytest.mark.parametrize("content,expected", [
    (b"#!/bin/sh\necho not a library\n", "is not a shared library (no ELF header)"),
    (b"", "is empty (0 bytes)"),
])
def test_a_plugin_that_is_not_a_shared_library_is_refused_before_loading(tmp_path, onnx_path,
                                                                          content, expected):
    plugin = tmp_path / "libplugin.so"
    plugin.write_bytes(content)
    fake = FakeTensorRT("8.5.3")                    # would dlopen it through ctypes
    with pytest.raises(BuildConfigError) as err:
        run_build(fake, onnx=onnx_path, plugins=[str(plugin)])
    assert err.value.parameters == ["plugins"] and expected in str(err.value)
    assert not fake.called("Builder")


def test_an_elf_executable_or_a_directory_is_not_a_plugin(tmp_path, onnx_path):
    executable = compile_shared_library(tmp_path / "tool", flags=("-no-pie",))
    with pytest.raises(BuildConfigError) as err:
        run_build(FakeTensorRT("10.3.0"), onnx=onnx_path, plugins=[executable, str(tmp_path)])
    message = str(err.value)
    assert "is an ELF file but not a shared library" in message
    assert "is a directory, not a plugin library" in message


def test_a_plugin_tensorrt_cannot_load_is_a_parameter_problem(tmp_path, onnx_path):
    plugin = compile_shared_library(tmp_path / "libplugin.so")
    fake = FakeTensorRT("10.3.0")
    fake.get_plugin_registry().load_library = lambda path: None     # TensorRT's "could not load"
    with pytest.raises(BuildConfigError) as err:
        run_build(fake, onnx=onnx_path, plugins=[plugin])
    assert err.value.parameters == ["plugins"] and "could not load" in str(err.value)
    assert not fake.called("builder.build_serialized_network")


def test_plugins_on_85_load_through_ctypes(tmp_path, onnx_path):
    libm = ctypes.util.find_library("m")
    if libm is None:
        pytest.skip("no libm found to stand in for a plugin library")
    path = next((os.path.join(d, libm) for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
                                                  "/lib/aarch64-linux-gnu", "/lib64", "/usr/lib")
                 if os.path.exists(os.path.join(d, libm))), None)
    if path is None:
        pytest.skip(f"cannot locate {libm} on disk")
    fake = FakeTensorRT("8.5.3")
    assert not hasattr(fake.get_plugin_registry(), "load_library")
    result = run_build(fake, onnx=onnx_path, plugins=[path], engine=str(tmp_path / "m.engine"))
    assert result.built and result.sidecar.plugins == [path]


# --- DLA ---------------------------------------------------------------------------------------

def test_dla_build_sets_device_core_and_fallback_and_reports(tmp_path, onnx_path):
    fake = FakeTensorRT("8.6.1", dla_cores=2)
    logs = []
    result = run_build(fake, logs, onnx=onnx_path, precision="fp16", dla_core=1,
                       engine=str(tmp_path / "m.engine"))
    assert fake.called("config.default_device_type") == [(fake.DeviceType.DLA,)]
    assert fake.called("config.DLA_core") == [(1,)]
    assert "GPU_FALLBACK" in fake.flags_set()
    assert fake.called("runtime.DLA_core") == [(1,)]
    # Reshape and Transpose are GPU-only in the fake's DLA
    assert [n for n, _ in result.dla_plan.gpu_only] == ["head/reshape", "head/transpose"]
    assert any("DLA cannot take 2 of 5 layers" in line for line in logs)
    placement = result.sidecar.dla_summary["placement"]
    assert placement["source"] == "log" and placement["dla_subgraphs"] == 1
    assert placement["gpu_layers"] == 2
    assert result.sidecar.dla_core == 1
    assert any("more than the dla_fallback_warn threshold" in w for w in result.warnings)


def test_dla_without_gpu_fallback_fails_before_building_when_layers_need_the_gpu(tmp_path,
                                                                                 onnx_path):
    fake = FakeTensorRT("10.3.0", dla_cores=2)
    with pytest.raises(BuildConfigError) as err:
        run_build(fake, onnx=onnx_path, dla_core=0, gpu_fallback=False,
                  engine=str(tmp_path / "m.engine"))
    assert err.value.parameters == ["gpu_fallback"] and "head/reshape" in str(err.value)
    assert "GPU_FALLBACK" not in fake.flags_set()
    assert not built(fake)


@pytest.mark.parametrize("cores,core,text", [(0, 0, "has none"), (2, 2, "0..1")])
def test_dla_core_the_device_lacks_fails_before_building(onnx_path, cores, core, text, tmp_path):
    fake = FakeTensorRT("10.3.0", dla_cores=cores)
    with pytest.raises(BuildConfigError) as err:
        run_build(fake, onnx=onnx_path, dla_core=core, engine=str(tmp_path / "m.engine"))
    assert err.value.parameters == ["dla_core"] and text in str(err.value)
    assert not built(fake)


def test_dla_with_fp32_is_refused(onnx_path):
    with pytest.raises(BuildConfigError) as err:
        run_build(FakeTensorRT("10.3.0", dla_cores=2), onnx=onnx_path, precision="fp32",
                  dla_core=0)
    assert "DLA runs only fp16 or int8" in str(err.value)


# --- timing cache ----------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["8.5.3", "10.3.0"])
def test_timing_cache_is_created_set_serialized_and_reused(tmp_path, onnx_path, version):
    cache = tmp_path / "timing.cache"
    fake = FakeTensorRT(version)
    run_build(fake, onnx=onnx_path, timing_cache=str(cache), engine=str(tmp_path / "a.engine"))
    assert fake.called("config.create_timing_cache") == [(b"",)]
    (cache_obj, ignore_mismatch), = fake.called("config.set_timing_cache")
    assert ignore_mismatch is False
    assert fake.called("timing_cache.serialize") == [(5,)]
    first = cache.read_bytes()
    fake2 = FakeTensorRT(version)
    run_build(fake2, onnx=onnx_path, timing_cache=str(cache), engine=str(tmp_path / "b.engine"))
    assert fake2.called("config.create_timing_cache") == [(first,)]
    assert fake2.called("timing_cache.serialize") == [(10,)]


# --- shape profiles --------------------------------------------------------------------------

def test_dynamic_input_gets_the_profile(tmp_path, dynamic_onnx):
    fake = FakeTensorRT("10.3.0")
    result = run_build(fake, onnx=dynamic_onnx, min_shape="1x3x320x320",
                       opt_shape="1x3x640x640", max_shape="4x3x640x640",
                       engine=str(tmp_path / "d.engine"))
    assert fake.called("profile.set_shape") == [("images", (1, 3, 320, 320), (1, 3, 640, 640),
                                                 (4, 3, 640, 640))]
    assert len(fake.called("config.add_optimization_profile")) == 1
    (spec,) = result.sidecar.inputs
    assert spec.shape == [-1, 3, -1, -1]
    assert spec.profile == {"min": [1, 3, 320, 320], "opt": [1, 3, 640, 640],
                            "max": [4, 3, 640, 640]}


def test_static_input_shape_on_a_dynamic_onnx_is_min_opt_max(tmp_path, dynamic_onnx):
    fake = FakeTensorRT("8.5.3")
    run_build(fake, onnx=dynamic_onnx, input_shape="1x3x480x640",
              engine=str(tmp_path / "d.engine"))
    assert fake.called("profile.set_shape") == [("images",) + ((1, 3, 480, 640),) * 3]


def test_static_onnx_needs_no_profile(tmp_path, onnx_path):
    fake = FakeTensorRT("10.3.0")
    run_build(fake, onnx=onnx_path, engine=str(tmp_path / "m.engine"))
    assert "config.add_optimization_profile" not in fake.call_names()


def test_dynamic_input_without_shapes_fails_naming_the_input(dynamic_onnx):
    fake = FakeTensorRT("10.3.0")
    with pytest.raises(BuildConfigError) as err:
        run_build(fake, onnx=dynamic_onnx)
    assert err.value.parameters == ["input_shape"]
    assert "'images'" in str(err.value) and "[-1, 3, -1, -1]" in str(err.value)
    assert not built(fake)


@pytest.mark.parametrize("shapes,param", [
    (("1x3x640x640", "1x3x320x320", "1x3x640x640"), "min_shape"),
    (("1x3x320x320", "1x3x640x640", "1x3x480x480"), "opt_shape")])
def test_min_above_opt_or_opt_above_max_fails(dynamic_onnx, shapes, param):
    with pytest.raises(BuildConfigError) as err:
        run_build(FakeTensorRT("10.3.0"), onnx=dynamic_onnx, min_shape=shapes[0],
                  opt_shape=shapes[1], max_shape=shapes[2])
    assert err.value.parameters == [param] and "min <= opt <= max" in str(err.value)


def test_profile_that_contradicts_a_fixed_dimension_fails(onnx_path):
    with pytest.raises(BuildConfigError) as err:
        run_build(FakeTensorRT("10.3.0"), onnx=onnx_path, input_shape="1x3x64x64")
    assert "fixed size 32 on axis 2" in str(err.value)


# --- INT8 calibration ------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["8.5.3", "8.6.1", "10.3.0"])
@pytest.mark.parametrize("algorithm,base", [("entropy2", "IInt8EntropyCalibrator2"),
                                            ("minmax", "IInt8MinMaxCalibrator"),
                                            ("legacy", "IInt8LegacyCalibrator")])
def test_calibrator_class_per_algorithm(tmp_path, dynamic_onnx, version, algorithm, base):
    fake = FakeTensorRT(version)
    header = {"entropy2": "EntropyCalibration2", "minmax": "MinMaxCalibration",
              "legacy": "LegacyCalibration"}[algorithm]
    cache = tmp_path / "c.cache"
    write_cache(str(cache), CalibrationCache(8601, header, {"images": 0.01}).to_bytes())
    run_build(fake, onnx=dynamic_onnx, precision="int8", calibration_algorithm=algorithm,
              calibration_cache=str(cache), input_shape="1x3x64x64",
              engine=str(tmp_path / "m.engine"))
    (calibrator,) = fake.called("config.int8_calibrator")[0]
    assert isinstance(calibrator, getattr(fake, base))
    assert fake.called("config.set_calibration_profile") == [
        ({"images": ((1, 3, 64, 64),) * 3},)]
    assert fake.flags_set() == ["INT8"]
    if algorithm == "legacy":
        assert calibrator.get_quantile() == pytest.approx(0.9999)
        assert calibrator.get_regression_cutoff() == 1.0


def test_int8_without_images_or_cache_fails_and_says_what_to_give(onnx_path):
    fake = FakeTensorRT("10.3.0")
    with pytest.raises(BuildConfigError) as err:
        run_build(fake, onnx=onnx_path, precision="int8")
    message = str(err.value)
    assert err.value.parameters == ["calibration_images"]
    for hint in ("calibration_images", "calibration_bag", "calibration_cache", "Q/DQ"):
        assert hint in message
    assert "Builder" not in fake.call_names()


def test_cache_made_by_another_algorithm_without_images_fails(tmp_path, onnx_path):
    cache = tmp_path / "c.cache"
    write_cache(str(cache), CalibrationCache(8601, "MinMaxCalibration", {"x": 1.0}).to_bytes())
    fake = FakeTensorRT("8.6.1")
    with pytest.raises(BuildConfigError) as err:
        run_build(fake, onnx=onnx_path, precision="int8", calibration_cache=str(cache),
                  engine=str(tmp_path / "m.engine"))
    assert err.value.parameters == ["calibration_cache"] and "MinMaxCalibration" in str(err.value)
    assert not built(fake)


def test_calibration_cache_hash_goes_into_the_sidecar(tmp_path, onnx_path):
    cache = tmp_path / "c.cache"
    write_cache(str(cache), CalibrationCache(100300, "EntropyCalibration2",
                                             {"images": 0.01}).to_bytes())
    result = run_build(FakeTensorRT("10.3.0"), onnx=onnx_path, precision="int8",
                       calibration_cache=str(cache), engine=str(tmp_path / "m.engine"))
    import hashlib
    assert result.sidecar.calibration_cache_sha256 == hashlib.sha256(cache.read_bytes()).hexdigest()


# --- per-layer precision ---------------------------------------------------------------------

@pytest.mark.parametrize("version,flag", [("8.5.3", "OBEY_PRECISION_CONSTRAINTS"),
                                          ("10.3.0", "OBEY_PRECISION_CONSTRAINTS")])
def test_layer_precisions_set_layer_and_output_types_and_the_constraint_flag(
        tmp_path, onnx_path, version, flag):
    fake = FakeTensorRT(version)
    run_build(fake, onnx=onnx_path, precision="fp16",
              layer_precisions=["head/*=fp32", "backbone/conv1=fp16"],
              engine=str(tmp_path / "m.engine"))
    precisions = {name: dtype for name, dtype in fake.called("layer.precision")}
    assert precisions == {"backbone/conv1": fake.float16, "head/conv2": fake.float32,
                          "head/reshape": fake.float32, "head/transpose": fake.float32}
    assert ("head/conv2", 0, fake.float32) in fake.called("layer.set_output_type")
    assert flag in fake.flags_set()


def test_layer_precision_pattern_that_matches_nothing_fails_before_building(tmp_path, onnx_path):
    fake = FakeTensorRT("10.3.0")
    with pytest.raises(BuildConfigError) as err:
        run_build(fake, onnx=onnx_path, layer_precisions=["neck/*=fp32"],
                  engine=str(tmp_path / "m.engine"))
    assert "matches no layer" in str(err.value) and "backbone/conv1" in str(err.value)
    assert not built(fake)


def test_layer_precisions_on_11_are_refused(tmp_path):
    model = conv_graph(tmp_path / "m16.onnx", fp16=True)
    with pytest.raises(BuildConfigError) as err:
        run_build(FakeTensorRT("11.0.0"), onnx=model, layer_precisions=["head/*=fp32"])
    assert err.value.parameters == ["layer_precisions"]


# --- progress ----------------------------------------------------------------------------------

def test_progress_monitor_on_10_logs_phases_and_percent(tmp_path, onnx_path):
    fake = FakeTensorRT("10.3.0")
    logs = []
    run_build(fake, logs, onnx=onnx_path, engine=str(tmp_path / "m.engine"))
    (monitor,) = fake.called("config.progress_monitor")[0]
    assert isinstance(monitor, fake.IProgressMonitor)
    assert any("Building engine > Tactic selection: 100% (4/4)" in line for line in logs)
    assert any("Building engine: done" in line for line in logs)


def test_no_progress_monitor_before_10_but_a_heartbeat(tmp_path, onnx_path, monkeypatch):
    fake = FakeTensorRT("8.6.1")
    real_build = fake.Builder.build_serialized_network

    def slow_build(self, network, config):
        import time
        time.sleep(0.05)
        return real_build(self, network, config)
    monkeypatch.setattr(fake.Builder, "build_serialized_network", slow_build)
    logs = []
    run_build(fake, logs, onnx=onnx_path, engine=str(tmp_path / "m.engine"))
    assert "config.progress_monitor" not in fake.call_names()
    assert not hasattr(fake.IBuilderConfig, "progress_monitor")
    assert any("elapsed" in line for line in logs)
    assert any("building engine: finished after" in line for line in logs)


# --- engine reuse, sidecar, failure ----------------------------------------------------------

def test_sidecar_records_everything(tmp_path, onnx_path):
    from trt_infer_ros.engine.model_facts import file_sha256
    result = run_build(FakeTensorRT("10.3.0"), onnx=onnx_path, precision="fp16",
                       engine=str(tmp_path / "m.engine"))
    side = read_sidecar(result.engine_path)
    assert side.tensorrt_version == "10.3.0"
    assert (side.gpu_name, side.compute_capability) == ("Orin (nvgpu)", "8.7")
    assert side.dla_core == -1
    assert side.onnx_sha256 == file_sha256(onnx_path)
    assert side.engine_sha256 == file_sha256(result.engine_path)
    assert side.build_settings["precision"] == "fp16"
    assert side.build_settings["workspace_mib"] == 1024
    assert [(t.name, t.mode, t.shape, t.dtype) for t in side.inputs + side.outputs] == [
        ("images", "input", [1, 3, 32, 32], "float32"),
        ("output0", "output", [1, 1024, 6], "float32")]


def test_matching_engine_is_reused_and_a_changed_setting_builds_a_new_one(tmp_path, onnx_path):
    first = run_build(FakeTensorRT("10.3.0"), onnx=onnx_path, cache_dir=str(tmp_path))
    fake = FakeTensorRT("10.3.0")
    again = run_build(fake, onnx=onnx_path, cache_dir=str(tmp_path))
    assert not again.built and again.engine_path == first.engine_path
    assert not built(fake)
    other = run_build(FakeTensorRT("10.3.0"), onnx=onnx_path, cache_dir=str(tmp_path),
                      precision="fp32")
    assert other.built and other.engine_path != first.engine_path
    assert os.path.basename(other.engine_path).startswith("model.fp32.gpu.")


def test_stale_engine_at_a_fixed_path_is_rebuilt_or_reported(tmp_path, onnx_path):
    engine = str(tmp_path / "m.engine")
    run_build(FakeTensorRT("8.6.1"), onnx=onnx_path, engine=engine)
    with pytest.raises(EngineMismatchError) as err:
        run_build(FakeTensorRT("10.3.0"), onnx=onnx_path, engine=engine, on_mismatch="error")
    assert "tensorrt_version: engine has '8.6.1', expected '10.3.0'" in str(err.value)
    logs = []
    result = run_build(FakeTensorRT("10.3.0"), logs, onnx=onnx_path, engine=engine)
    assert result.built and any("stale, rebuilding" in line for line in logs)
    assert read_sidecar(engine).tensorrt_version == "10.3.0"


def test_failed_build_raises_with_tensorrts_errors_and_writes_nothing(tmp_path, onnx_path):
    fake = FakeTensorRT("10.3.0", fail_build=True)
    with pytest.raises(builder_mod.BuildError) as err:
        run_build(fake, onnx=onnx_path, engine=str(tmp_path / "m.engine"))
    assert "fake build failure requested" in str(err.value)
    assert not (tmp_path / "m.engine").exists()


def test_unreadable_onnx_is_reported_before_tensorrt_is_touched(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf")
    fake = FakeTensorRT("10.3.0")
    with pytest.raises(BuildConfigError) as err:
        run_build(fake, onnx=str(bad), engine=str(tmp_path / "m.engine"))
    assert err.value.parameters == ["onnx"] and "is not an ONNX model" in str(err.value)
    assert "Builder" not in fake.call_names()
