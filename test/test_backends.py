"""Runners and the backend factory on small real ONNX graphs."""
import importlib.util
import shutil

import numpy as np
import pytest
from onnx import helper

from onnx_graphs import save_graph
from trt_infer_ros.backends.factory import available_backends, create_runner
from trt_infer_ros.backends.onnxruntime_runner import OnnxRuntimeRunner, onnxruntime_providers
from trt_infer_ros.backends.runner import BackendUnavailable, Runner
from trt_infer_ros.pipeline.timing import time_runtime


@pytest.fixture
def conv_model(tmp_path):
    """Strided conv + bias + sigmoid, and a pooled second output: a detector head in miniature."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["images", "w", "b"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Sigmoid", ["y"], ["scores"]),
             helper.make_node("MaxPool", ["y"], ["pooled"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["pooled"], ["features"], axis=1)]
    return save_graph(tmp_path / "conv.onnx", nodes, [("images", [1, 3, 32, 32], np.float32)],
                      [("scores", [1, 4, 16, 16], np.float32), ("features", [1, 256], np.float32)],
                      {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
                       "b": rng.standard_normal(4).astype(np.float32)})


def reference_scores(x, model_path):
    """Direct numpy convolution, independent of every runtime."""
    import onnx
    from onnx import numpy_helper
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(model_path).graph.initializer}
    w, b = inits["w"], inits["b"]
    padded = np.pad(x[0], ((0, 0), (1, 1), (1, 1)))
    out = np.zeros((4, 16, 16), np.float64)
    for i in range(16):
        for j in range(16):
            patch = padded[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
            out[:, i, j] = np.tensordot(w, patch, axes=3) + b
    return 1 / (1 + np.exp(-out))[None]


def test_onnxruntime_runner(conv_model):
    runner = OnnxRuntimeRunner(conv_model)
    assert isinstance(runner, Runner)
    assert (runner.name, runner.device, runner.input_name) == ("onnxruntime", "CPU", "images")
    assert runner.input_shape == (1, 3, 32, 32) and runner.input_dtype == np.float32
    assert runner.output_names == ["scores", "features"]
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    scores, features = runner.run(x)
    np.testing.assert_allclose(scores, reference_scores(x, conv_model), atol=1e-5)
    assert features.shape == (1, 256)


def tinygrad_skip_reason():
    if importlib.util.find_spec("tinygrad") is None:
        return "tinygrad is not installed"
    if shutil.which("clang") is None:
        return "tinygrad's CPU backend needs clang, which is not installed (apt-get install clang)"
    return None


@pytest.mark.skipif(tinygrad_skip_reason() is not None, reason=str(tinygrad_skip_reason()))
def test_tinygrad_matches_onnxruntime(conv_model):
    from trt_infer_ros.backends.tinygrad_runner import TinygradRunner
    ort, tg = OnnxRuntimeRunner(conv_model), TinygradRunner(conv_model, device="CPU")
    assert (tg.name, tg.device, tg.input_name, tg.output_names) == \
        ("tinygrad", "CPU", "images", ["scores", "features"])
    assert tg.input_shape == (1, 3, 32, 32) and tg.input_dtype == np.float32
    rng = np.random.default_rng(2)
    for _ in range(3):                 # 3rd call replays the JIT-captured kernels
        x = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
        for a, b in zip(ort.run(x), tg.run(x)):
            np.testing.assert_allclose(b, a, atol=1e-5)


def test_an_input_type_the_runner_cannot_feed_is_refused_at_start(tmp_path):
    model = save_graph(tmp_path / "double.onnx", [helper.make_node("Identity", ["images"], ["y"])],
                       [("images", [1, 3, 8, 8], np.float64)], [("y", [1, 3, 8, 8], np.float64)])
    with pytest.raises(BackendUnavailable, match=r"tensor\(double\) are not supported"):
        OnnxRuntimeRunner(model)


def test_onnxruntime_cuda_unavailable_is_explained(conv_model):
    if "CUDAExecutionProvider" in onnxruntime_providers():
        pytest.skip("this machine has onnxruntime CUDA")
    with pytest.raises(BackendUnavailable, match="CUDAExecutionProvider"):
        OnnxRuntimeRunner(conv_model, device="CUDA")


def test_factory_named_and_auto(conv_model):
    runner = create_runner("onnxruntime", conv_model)
    assert runner.name == "onnxruntime" and runner.selection == "onnxruntime requested"
    auto = create_runner("auto", conv_model)
    # auto takes the first backend that runs here, in its (measured) order of speed
    assert (auto.name, auto.device) == available_backends()[0]
    assert auto.selection.startswith(f"auto chose {auto.name}")
    cpu = create_runner("auto", conv_model, device="CPU")
    assert (cpu.name, cpu.device) == ("onnxruntime", "CPU")   # faster than tinygrad on CPU
    assert "tensorrt" not in cpu.selection                   # never asked to run on the CPU
    assert ("onnxruntime", "CPU") in available_backends()
    with pytest.raises(ValueError, match="unknown backend"):
        create_runner("openvino", conv_model)


def test_a_dla_core_for_tinygrad_names_tensorrt(conv_model):
    """DLA cores run TensorRT engines only; tinygrad must not say it is not installed."""
    with pytest.raises(BackendUnavailable, match="DLA0 is a DLA core, which only TensorRT"):
        create_runner("tinygrad", conv_model, device="DLA0")


def test_tensorrt_unavailable_is_explained(conv_model):
    try:
        import tensorrt
        if hasattr(tensorrt, "Builder"):       # not test/tensorrt taken as a namespace package
            pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    with pytest.raises(BackendUnavailable, match="TensorRT is not available on this machine: "):
        create_runner("tensorrt", conv_model)
    assert "tensorrt" not in [b for b, _ in available_backends()]


def test_time_runtime_times_run_only(conv_model):
    runner = OnnxRuntimeRunner(conv_model)
    calls = []
    original = runner.run
    runner.run = lambda t: calls.append(t) or original(t)
    tensors = [np.zeros((1, 3, 32, 32), np.float32), np.ones((1, 3, 32, 32), np.float32)]
    timing = time_runtime(runner, tensors, iterations=6, warmup=2)
    assert len(timing.samples_ms) == 6 and len(calls) == 8
    assert calls[2] is tensors[0] and calls[3] is tensors[1]      # cycles through the tensors
    assert 0 < timing.min_ms <= timing.median_ms <= max(timing.samples_ms)
    assert "median" in str(timing)


@pytest.mark.skipif(not hasattr(__import__("os"), "sched_setaffinity"), reason="Linux only")
def test_onnxruntime_pool_fits_the_cpus_the_process_may_use(conv_model):
    """Pinned to one CPU (taskset, a container's cpuset), the runner asks onnxruntime for one
    intra-op thread instead of one per core of the machine."""
    import os
    import subprocess
    import sys

    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs a machine with two CPUs or more")
    code = ("import os, sys; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from trt_infer_ros.backends.onnxruntime_runner import OnnxRuntimeRunner; "
            "r = OnnxRuntimeRunner(sys.argv[1]); "
            "print(r._session.get_session_options().intra_op_num_threads)")
    out = subprocess.run([sys.executable, "-c", code, conv_model], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "1", out.stderr[-500:]
    from trt_infer_ros.backends.onnxruntime_runner import cpus_allowed

    here = OnnxRuntimeRunner(conv_model)     # 0: onnxruntime's default, when nothing restricts us
    assert here._session.get_session_options().intra_op_num_threads == (cpus_allowed() or 0)


def test_fixed_input_shape_fills_dynamic_dims_and_refuses_misfits():
    from trt_infer_ros.backends.runner import fixed_input_shape

    assert fixed_input_shape(["batch", 3, "h", "w"], (1, 3, 96, 128), "m.onnx", "images") == \
        (1, 3, 96, 128)
    assert fixed_input_shape([1, 3, 64, 64], None, "m.onnx", "images") == (1, 3, 64, 64)
    with pytest.raises(ValueError, match=r"m.onnx: input images is \[1, 3, 64, 64\]; shape "
                                         r"\[1, 3, 96, 96\] does not fit it"):
        fixed_input_shape([1, 3, 64, 64], (1, 3, 96, 96), "m.onnx", "images")
    with pytest.raises(ValueError, match="has dynamic dims .*give input_size"):
        fixed_input_shape([1, 3, "h", "w"], None, "m.onnx", "images")


def test_onnxruntime_threads_stop_spinning_when_a_run_returns(conv_model):
    runner = OnnxRuntimeRunner(conv_model)
    options = runner._session.get_session_options()
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"
