"""onnxruntime CUDA on the model's fp16 copy inside the whole-frame GPU pipeline: the bundled
CenterNet keeps its detections within the stated tolerance; precision auto offers fp16 to the
timed choice only when the check passes, precision fp16 uses it with a warning otherwise."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from trt_infer_ros.pipeline.settings import DetectionSettings

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "centernet_mobilenetv3_coco.onnx"
sys.path.insert(0, str(REPO / "benchmarks"))
from synthetic_yolo import make_yolov8_shaped  # noqa: E402


@pytest.fixture
def onnxruntime_cuda(cuda_context, tmp_path, monkeypatch):
    from trt_infer_ros.pipeline.gpu_runner_choice import installed_gpu_runners

    if "onnxruntime" not in installed_gpu_runners():
        pytest.skip("onnxruntime with CUDA support is not installed")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_fp16_centernet_within_tolerance_of_float32(onnxruntime_cuda):
    from trt_infer_ros.pipeline.gpu_pipeline import build_gpu_pipeline
    from trt_infer_ros.pipeline.detector import build_pipeline
    from trt_infer_ros.pipeline.precision import check_images, check_precision

    said = []
    settings = DetectionSettings(0.3, 0.45, 100)
    gpu = build_gpu_pipeline(str(MODEL), "auto", "onnxruntime", settings, device="CUDA",
                             precision="fp16", log=said.append)
    reference = build_pipeline(str(MODEL), backend="onnxruntime", device="CPU", settings=settings)
    try:
        assert gpu.runner.precision == "fp16"
        assert any(m.startswith("fp16 detections against float32: ") for m in said), said
        check = check_precision(gpu, reference, check_images())
        print(check)
        assert check.passed, str(check)
        assert {f.mode for f in gpu._frames.values()} == {"one_graph"}
    finally:
        gpu.close()
        reference.runner.close()


def test_auto_offers_fp16_only_within_tolerance(onnxruntime_cuda, tmp_path):
    """A random-weight model's detections are near-ties that half precision reorders: auto
    does not take fp16 for it; asked for, it runs with the warning."""
    from trt_infer_ros.pipeline.gpu_pipeline import build_best_pipeline

    path = make_yolov8_shaped(tmp_path / "y.onnx", 128, 80, seed=4)
    said = []
    pipe = build_best_pipeline(path, "yolov8", "onnxruntime", DetectionSettings(), device="CUDA",
                               log=said.append)
    try:
        print("\n".join(said))
        assert pipe.runner.precision == "fp32"
        assert any("onnxruntime-fp16 not used: BackendUnavailable: fp16 not taken: " in m
                   for m in said), said
    finally:
        pipe.close()
    said = []
    pipe = build_best_pipeline(path, "yolov8", "onnxruntime", DetectionSettings(), device="CUDA",
                               precision="fp16", log=said.append)
    try:
        assert pipe.runner.precision == "fp16" and " fp16, frame graphs" in pipe.selection
        assert any(m.startswith("WARNING: precision fp16 as asked") for m in said), said
    finally:
        pipe.close()


def test_auto_times_fp16_beside_fp32_on_the_bundled_model(onnxruntime_cuda):
    from trt_infer_ros.pipeline.gpu_pipeline import build_best_pipeline

    said = []
    pipe = build_best_pipeline(str(MODEL), "auto", "onnxruntime", DetectionSettings(),
                               device="CUDA", log=said.append)
    try:
        print("\n".join(said))
        for name in ("onnxruntime", "onnxruntime-fp16"):
            assert any(m.startswith(f"GPU runner {name}: ") for m in said), said
        assert any(m.startswith("fp16 detections against float32: ") for m in said)
    finally:
        pipe.close()
