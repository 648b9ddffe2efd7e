"""Sidecar checks at load time: a mismatch is a clear error or a rebuild, never a silent load.
TensorRT is FakeTensorRT (a recording fake)."""
from __future__ import annotations

import json

import pytest
from fakes.fake_tensorrt import FakeTensorRT
from test_engine_builder import ORIN, conv_graph, run_build

from trt_infer_ros.engine.device_info import DeviceInfo
from trt_infer_ros.engine.engine_loader import EngineMismatchError, load_engine
from trt_infer_ros.engine.options import BuildOptions
from trt_infer_ros.engine.sidecar import SidecarError, compare, read_sidecar, sidecar_path


@pytest.fixture
def engine(tmp_path):
    onnx = conv_graph(tmp_path / "m.onnx")
    path = str(tmp_path / "m.engine")
    run_build(FakeTensorRT("10.3.0"), onnx=onnx, engine=path, precision="fp16")
    return onnx, path


def test_matching_engine_loads_with_its_io(engine):
    onnx, path = engine
    fake = FakeTensorRT("10.3.0")
    loaded = load_engine(path, trt=fake, device=ORIN, onnx_path=onnx, dla_core=-1)
    assert [(t.name, t.shape) for t in loaded.inputs] == [("images", [1, 3, 32, 32])]
    assert [(t.name, t.dtype) for t in loaded.outputs] == [("output0", "float32")]
    assert loaded.sidecar.onnx_sha256 and loaded.runtime is not None
    assert fake.called("runtime.deserialize_cuda_engine")
    assert "runtime.DLA_core" not in fake.call_names()


def test_tampered_engine_is_rejected_before_deserializing(engine):
    _, path = engine
    data = bytearray(open(path, "rb").read())
    data[10] ^= 0xFF
    open(path, "wb").write(bytes(data))
    fake = FakeTensorRT("10.3.0")
    with pytest.raises(EngineMismatchError) as err:
        load_engine(path, trt=fake, device=ORIN)
    assert "engine_sha256" in str(err.value) and "never loaded" in str(err.value)
    assert "runtime.deserialize_cuda_engine" not in fake.call_names()


@pytest.mark.parametrize("change,field", [
    ({"trt": "10.4.0"}, "tensorrt_version"),
    ({"device": DeviceInfo("NVIDIA H100 80GB HBM3", "9.0")}, "compute_capability"),
    ({"dla_core": 0}, "dla_core")])
def test_version_gpu_or_dla_mismatch_is_a_clear_error(engine, change, field):
    _, path = engine
    fake = FakeTensorRT(change.get("trt", "10.3.0"))
    with pytest.raises(EngineMismatchError) as err:
        load_engine(path, trt=fake, device=change.get("device", ORIN),
                    dla_core=change.get("dla_core"))
    assert field in [m.field for m in err.value.mismatches]
    assert "runtime.deserialize_cuda_engine" not in fake.call_names()


def test_changed_onnx_is_detected(engine, tmp_path):
    onnx, path = engine
    conv_graph(onnx, fp16=True)                       # the model file changed on disk
    with pytest.raises(EngineMismatchError, match="onnx_sha256"):
        load_engine(path, trt=FakeTensorRT("10.3.0"), device=ORIN, onnx_path=onnx)


def test_tampered_sidecar_contents_are_rejected(engine):
    _, path = engine
    data = json.load(open(sidecar_path(path)))
    data["tensorrt_version"] = "8.6.1"
    json.dump(data, open(sidecar_path(path), "w"))
    with pytest.raises(EngineMismatchError, match="tensorrt_version"):
        load_engine(path, trt=FakeTensorRT("10.3.0"), device=ORIN)


def test_sidecar_io_that_disagrees_with_the_engine_is_rejected(engine):
    _, path = engine
    data = json.load(open(sidecar_path(path)))
    data["inputs"][0]["shape"] = [1, 3, 64, 64]
    json.dump(data, open(sidecar_path(path), "w"))
    with pytest.raises(EngineMismatchError, match="io_tensors"):
        load_engine(path, trt=FakeTensorRT("10.3.0"), device=ORIN)


def test_missing_or_broken_sidecar(engine):
    _, path = engine
    with open(sidecar_path(path), "w") as f:
        f.write("{not json")
    with pytest.raises(SidecarError, match="unreadable"):
        load_engine(path, trt=FakeTensorRT("10.3.0"), device=ORIN)
    import os
    os.remove(sidecar_path(path))
    with pytest.raises(SidecarError, match="has no sidecar"):
        load_engine(path, trt=FakeTensorRT("10.3.0"), device=ORIN)


def test_mismatch_rebuilds_when_asked(engine):
    onnx, path = engine
    fake = FakeTensorRT("10.4.0")
    logs = []
    loaded = load_engine(path, trt=fake, device=ORIN, log=logs.append,
                         rebuild=BuildOptions(onnx=onnx, precision="fp16",
                                              on_mismatch="rebuild"))
    assert fake.called("builder.build_serialized_network")
    assert loaded.sidecar.tensorrt_version == "10.4.0"
    assert any("rebuilding because on_mismatch is 'rebuild'" in line for line in logs)


def test_mismatch_with_on_mismatch_error_does_not_rebuild(engine):
    onnx, path = engine
    fake = FakeTensorRT("10.4.0")
    with pytest.raises(EngineMismatchError):
        load_engine(path, trt=fake, device=ORIN,
                    rebuild=BuildOptions(onnx=onnx, on_mismatch="error"))
    assert "builder.build_serialized_network" not in fake.call_names()


def test_missing_engine_is_built_when_asked(tmp_path):
    onnx = conv_graph(tmp_path / "m.onnx")
    path = str(tmp_path / "new.engine")
    with pytest.raises(FileNotFoundError, match="build it with"):
        load_engine(path, trt=FakeTensorRT("10.3.0"), device=ORIN)
    loaded = load_engine(path, trt=FakeTensorRT("10.3.0"), device=ORIN,
                         rebuild=BuildOptions(onnx=onnx, precision="fp32"))
    assert loaded.path == path


def test_dla_engine_sets_the_runtime_core(tmp_path):
    onnx = conv_graph(tmp_path / "m.onnx")
    path = str(tmp_path / "dla.engine")
    run_build(FakeTensorRT("8.6.1", dla_cores=2), onnx=onnx, engine=path, dla_core=1)
    fake = FakeTensorRT("8.6.1", dla_cores=2)
    loaded = load_engine(path, trt=fake, device=ORIN, dla_core=1)
    assert fake.called("runtime.DLA_core") == [(1,)]
    assert loaded.sidecar.dla_summary["plan_total"] == 5


def test_compare_lists_every_setting_difference(engine):
    _, path = engine
    side = read_sidecar(path)
    settings = dict(side.build_settings, precision="int8", workspace_mib=64)
    fields = [m.field for m in compare(side, build_settings=settings)]
    assert fields == ["build_settings.precision", "build_settings.workspace_mib"]
    assert compare(side, gpu_name="unknown", compute_capability="unknown") == []
