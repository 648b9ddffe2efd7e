"""Build options: validation messages a new user can act on, the CLI and the ROS node."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakes.fake_tensorrt import FakeTensorRT
from test_engine_builder import conv_graph

from trt_infer_ros.engine import cli
from trt_infer_ros.engine.options import (PARAMETERS, BuildConfigError, BuildOptions,
                                         match_layer_precision, parse_layer_precisions,
                                         parse_shape)

REPO = Path(__file__).resolve().parents[1]


def problems(**kw):
    return dict(BuildOptions(**kw).problems())


def test_parse_shape_forms():
    assert parse_shape("1x3x640x640") == (1, 3, 640, 640)
    assert parse_shape("[1, 3, 480, 640]") == (1, 3, 480, 640)
    with pytest.raises(ValueError):
        parse_shape("1x0x3")
    with pytest.raises(ValueError):
        parse_shape("one")


def test_layer_precision_entries():
    overrides = parse_layer_precisions(["head/*=fp32", "head/conv*=fp16"])
    assert match_layer_precision("head/conv2", overrides) == "fp16"     # last match wins
    assert match_layer_precision("head/reshape", overrides) == "fp32"
    assert match_layer_precision("backbone/conv", overrides) is None
    with pytest.raises(ValueError, match="pattern=precision"):
        parse_layer_precisions(["head"])
    with pytest.raises(ValueError, match="precision must be one of"):
        parse_layer_precisions(["head=bf16"])


def test_a_new_user_with_nothing_is_told_to_give_an_onnx():
    p = problems()
    assert list(p) == ["onnx"] and "set onnx:=" in p["onnx"]


def test_missing_onnx_file_is_named(tmp_path):
    p = problems(onnx=str(tmp_path / "yolov8n.onnx"))
    assert p["onnx"].startswith("not found: ") and "yolov8n.onnx" in p["onnx"]


def test_cut_tensors_without_split_is_refused(tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    p = problems(onnx=str(onnx), cut_tensors=["/model.8/Concat_output_0"])
    assert list(p) == ["cut_tensors"] and "set split:=true" in p["cut_tensors"]
    assert "cut_tensors" not in problems(onnx=str(onnx), split=True,
                                         cut_tensors=["/model.8/Concat_output_0"])


def test_every_problem_is_reported_at_once(tmp_path):
    with pytest.raises(BuildConfigError) as err:
        BuildOptions(onnx="", precision="int4", dla_core=-3, min_shape="1x3x64x64",
                     calibration_images=str(tmp_path / "none"),
                     layer_precisions=["bad"]).validate()
    assert set(err.value.parameters) >= {"onnx", "precision", "dla_core", "opt_shape",
                                         "calibration_images", "layer_precisions"}


def test_int8_calibration_requirements(tmp_path):
    onnx = conv_graph(tmp_path / "m.onnx")
    assert "calibration_images" in problems(onnx=onnx, precision="int8")
    assert "calibration_images" in problems(onnx=onnx, precision="best",
                                            calibration_cache=str(tmp_path / "not_yet.cache"))
    cache = tmp_path / "c.cache"
    cache.write_text("TRT-8601-EntropyCalibration2\n")
    assert problems(onnx=onnx, precision="int8", calibration_cache=str(cache)) == {}
    assert BuildOptions(onnx=onnx, precision="int8").problems(model_has_qdq=True) == []
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no .jpg/.png/.bmp" in problems(onnx=onnx, precision="int8",
                                           calibration_images=str(empty))["calibration_images"]


def test_shape_profile_rules(tmp_path):
    onnx = conv_graph(tmp_path / "m.onnx")
    assert "min_shape" in problems(onnx=onnx, min_shape="1x3x640x640", opt_shape="1x3x320x320",
                                   max_shape="1x3x640x640")
    assert "opt_shape" in problems(onnx=onnx, min_shape="1x3x320x320", opt_shape="1x3x640x640",
                                   max_shape="1x3x480x640")
    assert "max_shape" in problems(onnx=onnx, min_shape="1x3x1x1", opt_shape="1x3x1x1")
    assert "input_shape" in problems(onnx=onnx, input_shape="1x3x64x64", min_shape="1x3x64x64")
    assert "min_shape" in problems(onnx=onnx, min_shape="1x3x64", opt_shape="1x3x64x64",
                                   max_shape="1x3x64x64")


def test_parameter_table_matches_the_options_fields():
    fields = set(BuildOptions().as_dict())
    assert {p.name for p in PARAMETERS} == fields
    for p in PARAMETERS:
        assert getattr(BuildOptions(), p.name) == p.default
        assert p.description


def test_unknown_parameter_is_refused():
    with pytest.raises(BuildConfigError, match="unknown parameter"):
        BuildOptions.from_mapping({"onnx_path": "x"})


def test_ros_style_empty_lists_mean_none():
    assert BuildOptions.from_mapping({"plugins": [""], "layer_precisions": [""]}).plugins == []


def test_cli_options_and_params_file(tmp_path):
    params = tmp_path / "build.yaml"
    params.write_text("engine_builder_node:\n  ros__parameters:\n    precision: int8\n"
                      "    dla_core: 1\n    plugins: ['']\n")
    opts = cli.options_from_args(["--params-file", str(params), "--onnx", "m.onnx",
                                  "--dla-core", "0", "--no-gpu-fallback",
                                  "--layer_precisions", "a=fp32", "b=fp16"])
    assert (opts.onnx, opts.precision, opts.dla_core, opts.gpu_fallback) == ("m.onnx", "int8",
                                                                            0, False)
    assert opts.layer_precisions == ["a=fp32", "b=fp16"] and opts.plugins == []


def test_cli_build_with_the_fake_and_exit_statuses(tmp_path):
    onnx = conv_graph(tmp_path / "m.onnx")
    logs, errors = [], []
    status = cli.run(BuildOptions(onnx=onnx, engine=str(tmp_path / "m.engine")), logs.append,
                     errors.append, trt=FakeTensorRT("10.3.0"))
    assert status == cli.EXIT_OK and not errors and (tmp_path / "m.engine.json").is_file()
    status = cli.run(BuildOptions(onnx=onnx, dla_core=0), logs.append, errors.append,
                     trt=FakeTensorRT("10.3.0"))
    assert status == cli.EXIT_BAD_PARAMETERS and "dla_core" in errors[-1]
    status = cli.run(BuildOptions(onnx=onnx, engine=str(tmp_path / "m.engine"),
                                  on_mismatch="error"), logs.append, errors.append,
                     trt=FakeTensorRT("8.6.1"))
    assert status == cli.EXIT_MISMATCH and "tensorrt_version" in errors[-1]
    status = cli.run(BuildOptions(onnx=onnx, engine=str(tmp_path / "x.engine")), logs.append,
                     errors.append, trt=FakeTensorRT("10.3.0", fail_build=True))
    assert status == cli.EXIT_BUILD_FAILED


def test_cli_process_without_tensorrt_says_what_is_missing(tmp_path):
    """As a new user would run it: a real process, no TensorRT on this machine."""
    from trt_infer_ros.engine.trt_compat import tensorrt_unavailable_reason
    if tensorrt_unavailable_reason() is None:
        pytest.skip("TensorRT is installed here; this checks the message on machines without it")
    onnx = conv_graph(tmp_path / "m.onnx")
    proc = subprocess.run([sys.executable, "-m", "trt_infer_ros.engine.cli", "--onnx", onnx],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == cli.EXIT_NO_TENSORRT
    assert "TensorRT's Python module cannot be imported" in proc.stderr
    assert "JetPack" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "trt_infer_ros.engine.cli", "--precision",
                           "int8"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == cli.EXIT_BAD_PARAMETERS
    assert "onnx: no ONNX model given" in proc.stderr
    assert "calibration_images" in proc.stderr


# --- each message says what is actually wrong ----------------------------------------------

def test_path_messages_say_what_the_path_is(tmp_path, monkeypatch):
    from trt_infer_ros.engine.options import directory_problem, file_problem
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    link = tmp_path / "link.onnx"
    link.symlink_to(tmp_path / "gone.onnx")
    assert "is a directory, not an ONNX model" in file_problem(str(tmp_path), "an ONNX model")
    assert "is not a regular file" in file_problem(str(fifo))
    assert "is empty (0 bytes)" in file_problem(str(empty))
    assert "is a broken symbolic link" in file_problem(str(link))
    assert "is a file, not a directory of images" in directory_problem(str(empty),
                                                                       "a directory of images")
    readable = tmp_path / "m.onnx"
    readable.write_bytes(b"x")
    # root reads every file, so the permission check is shown with os.access answering "no"
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert "cannot be read (permission denied" in file_problem(str(readable))


def test_output_paths_that_are_directories_are_named(tmp_path):
    onnx = conv_graph(tmp_path / "m.onnx")
    p = problems(onnx=onnx, engine=str(tmp_path), timing_cache=str(tmp_path),
                 calibration_cache=str(tmp_path), precision="int8")
    for name in ("engine", "timing_cache", "calibration_cache"):
        assert "is a directory; give a file path" in p[name]
    assert "does not exist yet" not in p["calibration_images"]


def test_calibration_images_given_a_file_says_so(tmp_path):
    onnx = conv_graph(tmp_path / "m.onnx")
    p = problems(onnx=onnx, precision="int8", calibration_images=onnx)
    assert "is a file, not a directory of images" in p["calibration_images"]


def test_shape_dimensions_are_capped():
    with pytest.raises(ValueError, match="larger than TensorRT's limit"):
        parse_shape("1x3x99999999999999999999999x1")
    with pytest.raises(ValueError, match="elements"):
        parse_shape("64x3x8192x8192")
    assert "input_shape" in problems(input_shape="1x3x4294967296x1")


def test_out_of_range_values_are_refused_as_the_ros_descriptors_would():
    p = problems(dla_core=16, workspace_mib=(1 << 20) + 1, calibration_count=100001,
                 calibration_batch=257, calibration_percentile=20.0)
    for name in ("dla_core", "workspace_mib", "calibration_count", "calibration_batch",
                 "calibration_percentile"):
        assert "outside the allowed range" in p[name]


def test_wrong_types_from_a_parameter_file_are_named(tmp_path):
    params = tmp_path / "build.yaml"
    params.write_text("engine_builder_node:\n  ros__parameters:\n    dla_core: zero\n"
                      "    force: 'yes'\n")
    options = cli.options_from_args(["--params-file", str(params)])
    p = dict(options.problems())
    assert p["dla_core"] == "'zero' is not a int" and p["force"] == "'yes' is not a bool"


def test_unknown_names_come_with_the_closest_real_one():
    with pytest.raises(BuildConfigError, match="did you mean 'calibration_images'"):
        BuildOptions.from_mapping({"calibration_image": "x"})
    with pytest.raises(BuildConfigError, match="known parameters: onnx"):
        BuildOptions.from_mapping({"zzz": 1})
    with pytest.raises(BuildConfigError, match="did you mean 'dla_core'"):
        cli.options_from_args(["--dla-cor=1"])


def test_exit_meanings():
    assert cli.exit_meaning(2).startswith("bad parameters")
    assert cli.exit_meaning(143) == "interrupted by SIGTERM"
    assert cli.exit_meaning(-9) == "killed by SIGKILL"
    assert "unexpected" in cli.exit_meaning(77)
