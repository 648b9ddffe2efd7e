"""engine_builder_node as ROS users run it: real rclpy processes with --ros-args parameters,
exit statuses, and the parameter descriptors. TensorRT, where a build must succeed, is
FakeTensorRT (a recording fake) injected into the node's run."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_engine_builder import conv_graph

REPO = Path(__file__).resolve().parents[1]

rclpy = pytest.importorskip("rclpy", reason="rclpy is not importable (source scripts/env.sh)")


def run_node(*params, inject_fake: str = "", timeout=120):
    args = ["--ros-args"] + [x for p in params for x in ("-p", p)]
    if inject_fake:
        code = ("import sys; sys.path.insert(0, 'test'); "
                "from fakes.fake_tensorrt import FakeTensorRT; "
                "from trt_infer_ros.ros.engine_builder_node import run_node; "
                f"sys.exit(run_node(['engine_builder_node'] + {args!r}, "
                f"trt=FakeTensorRT({inject_fake!r})))")
        cmd = [sys.executable, "-c", code]
    else:
        cmd = [sys.executable, "-m", "trt_infer_ros.ros.engine_builder_node"] + args
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=timeout)


def test_new_user_without_parameters_is_told_what_is_missing():
    proc = run_node()
    assert proc.returncode == 2
    assert "onnx: no ONNX model given; set onnx:=" in proc.stderr


def test_int8_without_calibration_inputs_names_them(tmp_path):
    proc = run_node(f"onnx:={conv_graph(tmp_path / 'm.onnx')}", "precision:=int8")
    assert proc.returncode == 2
    assert "calibration_images" in proc.stderr and "calibration_bag" in proc.stderr


def test_out_of_range_and_wrong_type_parameters_are_refused_by_the_descriptors(tmp_path):
    onnx = conv_graph(tmp_path / "m.onnx")
    proc = run_node(f"onnx:={onnx}", "dla_core:=99")
    assert proc.returncode == 2 and "dla_core" in proc.stderr
    proc = run_node(f"onnx:={onnx}", "workspace_mib:=lots")
    assert proc.returncode == 2 and "workspace_mib" in proc.stderr


def test_without_tensorrt_the_node_says_so(tmp_path):
    from trt_infer_ros.engine.trt_compat import tensorrt_unavailable_reason
    if tensorrt_unavailable_reason() is None:
        pytest.skip("TensorRT is installed here")
    proc = run_node(f"onnx:={conv_graph(tmp_path / 'm.onnx')}")
    assert proc.returncode == 3
    assert "TensorRT's Python module cannot be imported" in proc.stderr


def test_node_builds_with_list_parameters(tmp_path):
    onnx = conv_graph(tmp_path / "m.onnx")
    engine = tmp_path / "m.engine"
    proc = run_node(f"onnx:={onnx}", f"engine:={engine}", "precision:=fp16",
                    "layer_precisions:=['head/*=fp32']", "optimization_level:=4",
                    inject_fake="10.3.0")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "m.engine.json").is_file()
    assert "1 layer precision override" not in proc.stderr        # 3 layers match head/*
    assert "3 layer precision override(s)" in proc.stderr
    assert "exits with status 0" in proc.stderr


def test_descriptors_carry_type_range_choices_and_description():
    from rcl_interfaces.msg import ParameterType

    from trt_infer_ros.engine.options import PARAMETERS
    from trt_infer_ros.ros.engine_builder_node import _descriptor
    by_name = {p.name: _descriptor(p) for p in PARAMETERS}
    d = by_name["dla_core"]
    assert d.type == ParameterType.PARAMETER_INTEGER
    assert (d.integer_range[0].from_value, d.integer_range[0].to_value) == (-1, 15)
    assert "one of: fp32, fp16, int8, best" == by_name["precision"].additional_constraints
    assert by_name["plugins"].type == ParameterType.PARAMETER_STRING_ARRAY
    assert by_name["dla_fallback_warn"].floating_point_range[0].to_value == 1.0
    assert all(d.description for d in by_name.values())


def test_engine_yaml_is_a_valid_parameter_file_for_the_node(tmp_path):
    """config/build.yaml loads as the node's parameters (with onnx overridden)."""
    onnx = conv_graph(tmp_path / "m.onnx")
    code = ("import sys; sys.path.insert(0, 'test'); "
            "from fakes.fake_tensorrt import FakeTensorRT; "
            "from trt_infer_ros.ros.engine_builder_node import run_node; "
            "sys.exit(run_node(['engine_builder_node', '--ros-args', '--params-file', "
            f"'config/build.yaml', '-p', 'onnx:={onnx}', '-p', 'cache_dir:={tmp_path}'], "
            "trt=FakeTensorRT('8.6.1')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert list(tmp_path.glob("m.fp16.gpu.*.engine"))


def test_a_misspelled_key_in_a_parameter_file_is_named(tmp_path):
    params = tmp_path / "build.yaml"
    params.write_text("engine_builder_node:\n  ros__parameters:\n    precison: fp16\n")
    proc = subprocess.run([sys.executable, "-m", "trt_infer_ros.ros.engine_builder_node",
                           "--ros-args", "--params-file", str(params)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert "precison: unknown parameter; did you mean 'precision'?" in proc.stderr
