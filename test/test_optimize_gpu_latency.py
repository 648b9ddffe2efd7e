"""The GPU half of the compression report: per-runner lines, and nothing where no GPU runs."""
from trt_infer_ros.optimize.gpu_latency import describe, gpu_frame_latency_ms
from trt_infer_ros.pipeline.gpu_pipeline import unavailable_reason
from trt_infer_ros.resources import default_model_path


def test_report_lines_per_runner():
    lines = describe({"onnxruntime": [2.0, 1.5], "tinygrad": [4.0, None]})
    assert lines == ["GPU frame latency (onnxruntime, 1280x720) 2.00 ms -> 1.50 ms (-25.0 %)",
                     "GPU frame latency (tinygrad): not measured for the output model"]


def test_no_gpu_no_gpu_numbers():
    if unavailable_reason() is None:
        import pytest
        pytest.skip("a CUDA GPU is here: test/gpu covers the GPU runners")
    assert gpu_frame_latency_ms([default_model_path()]) == {}
