"""Without a usable GPU the node's entry point falls back to the CPU-side pipeline (runs in CI)."""
from __future__ import annotations

import numpy as np
import pytest

from trt_infer_ros.pipeline import gpu_pipeline
from trt_infer_ros.pipeline.settings import DetectionSettings


def test_wants_gpu():
    assert gpu_pipeline.wants_gpu("auto", None)
    assert gpu_pipeline.wants_gpu("tensorrt", "DLA0")
    assert gpu_pipeline.wants_gpu("tinygrad", "CUDA")
    assert not gpu_pipeline.wants_gpu("onnxruntime", None)
    assert not gpu_pipeline.wants_gpu("auto", "CPU")


def test_falls_back_to_cpu_pipeline_without_gpu(constant_model):
    if gpu_pipeline.is_available():
        pytest.skip("a CUDA GPU is present: test_gpu_pipeline.py covers the GPU choice")
    from trt_infer_ros.pipeline.detector import DetectionPipeline

    out = np.zeros((1, 84, 336), np.float32)
    out[0, :4] = 30.0
    out[0, 4 + 7, 5] = 0.9
    path = constant_model({"output0": out}, input_shape=(1, 3, 128, 128))
    messages = []
    pipe = gpu_pipeline.build_best_pipeline(path, "yolov8", "auto", DetectionSettings(),
                                            log=messages.append)
    try:
        assert isinstance(pipe, DetectionPipeline)
        assert pipe.selection.startswith("CPU-side pipeline (")
        assert gpu_pipeline.unavailable_reason() in pipe.selection
        assert messages and "GPU pipeline not used" in messages[0]
        dets = pipe(np.zeros((64, 64, 3), np.uint8), "bgr8")
        assert dets.class_ids.tolist() == [7]
    finally:
        pipe.close()


def test_tinygrad_refuses_a_two_input_model_by_name(tmp_path):
    """RT-DETR's deploy form (images + orig_target_sizes): a clear refusal at construction."""
    import shutil

    from onnx_graphs import save_rtdetr_deploy
    from trt_infer_ros.backends.runner import BackendUnavailable
    from trt_infer_ros.backends.tinygrad_runner import TinygradRunner, cuda_driver_present

    pytest.importorskip("tinygrad", reason="tinygrad is not installed")
    if cuda_driver_present():
        device = "CUDA"
    elif shutil.which("clang"):
        device = "CPU"
    else:
        pytest.skip("tinygrad has no device here (no CUDA driver, no clang)")
    path = save_rtdetr_deploy(tmp_path / "rtdetr_deploy.onnx")
    with pytest.raises(BackendUnavailable, match=r"this model has two inputs \(images, "
                                                 r"orig_target_sizes\).*use backend onnxruntime"):
        TinygradRunner(path, device=device)
