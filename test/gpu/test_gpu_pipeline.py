"""The whole-frame GPU pipeline with tinygrad on CUDA, against the CPU DetectionPipeline."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from final_exports import end2end_output, grid_scores, rtdetr_scores_output, rtdetr_topk_output
from onnx_graphs import save_export, save_rtdetr_deploy, ultralytics_metadata
from trt_infer_ros.models.spec import InputSpec
from trt_infer_ros.models.yolo import YoloV8Adapter, grid_size
from trt_infer_ros.pipeline.settings import DetectionSettings

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
from synthetic_yolo import make_yolov8_shaped  # noqa: E402


@pytest.fixture(scope="module", params=["tinygrad", "onnxruntime"])
def gpu_backend(request, cuda_context, tmp_path_factory):
    """Every test here runs once per GPU runner installed: tinygrad CUDA, onnxruntime CUDA."""
    from trt_infer_ros.pipeline.gpu_runner_choice import installed_gpu_runners

    if request.param not in installed_gpu_runners():
        pytest.skip(f"{request.param} with CUDA support is not installed")
    # backend auto times the runners and caches the winner: keep that cache out of $HOME
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    yield request.param
    mp.undo()


def _runner(path, backend):
    from trt_infer_ros.pipeline.gpu_runner_choice import create_named_gpu_runner

    return create_named_gpu_runner(backend, str(path))


def _best(path, backend, settings, **kwargs):
    """build_best_pipeline asking for this runner in float32 (onnxruntime needs the CUDA device
    named)."""
    from trt_infer_ros.pipeline.gpu_pipeline import build_best_pipeline

    return build_best_pipeline(path, "auto", backend, settings, precision="fp32",
                               device="CUDA" if backend == "onnxruntime" else None, **kwargs)


def _images(rng):
    yield rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), "bgr8"
    yield rng.integers(0, 256, (97, 301, 4), dtype=np.uint8), "rgba8"
    padded = rng.integers(0, 256, (360, 3 * 500 + 12), dtype=np.uint8)
    yield np.lib.stride_tricks.as_strided(padded, (360, 500, 3), (padded.strides[0], 3, 1)), "rgb8"
    yield rng.integers(0, 256, (200, 150), dtype=np.uint8), "mono8"


def test_gpu_decode_equals_cpu_decode_of_same_outputs(gpu_backend, tmp_path, rng_seed):
    """Same GPU preprocess + model; GPU decode/NMS vs numpy decode/NMS of those outputs."""
    from trt_infer_ros.pipeline.gpu_pipeline import GpuDetectionPipeline

    path = make_yolov8_shaped(tmp_path / "y.onnx", 128, 80, seed=rng_seed % 1000)
    runner = _runner(path, gpu_backend)
    adapter = YoloV8Adapter(InputSpec(width=128, height=128), num_classes=80)
    settings = DetectionSettings(score_threshold=0.1, nms_iou_threshold=0.5, max_detections=50)
    gpu = GpuDetectionPipeline(adapter, runner, settings)
    cpu_decode = GpuDetectionPipeline(adapter, runner, settings, gpu_decode=False)
    rng = np.random.default_rng(rng_seed)
    try:
        assert gpu.gpu_decode and not cpu_decode.gpu_decode
        for image, encoding in _images(rng):
            a = gpu(image, encoding)
            b = cpu_decode(image, encoding)
            assert len(a) > 0
            np.testing.assert_array_equal(a.class_ids, b.class_ids)
            np.testing.assert_array_equal(a.scores, b.scores)
            np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
        modes = {f.mode for f in gpu._frames.values()}
        print("frame graph modes:", modes)
        assert modes == {"one_graph"}, modes
    finally:
        gpu.close()


def test_live_settings_and_graph_vs_eager(gpu_backend, tmp_path, rng_seed):
    from trt_infer_ros.pipeline.gpu_pipeline import GpuDetectionPipeline

    path = make_yolov8_shaped(tmp_path / "y.onnx", 128, 80, seed=1)
    adapter = YoloV8Adapter(InputSpec(width=128, height=128), num_classes=80)
    graph = GpuDetectionPipeline(adapter, _runner(path, gpu_backend), DetectionSettings(0.1, 0.5, 100))
    eager = GpuDetectionPipeline(adapter, _runner(path, gpu_backend), graph.settings, use_graph=False)
    rng = np.random.default_rng(rng_seed)
    image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    try:
        first = graph(image, "bgr8")
        frame = next(iter(graph._frames.values()))
        exec_before = frame.exec
        for s in ((0.1, 0.5, 100), (0.1, 0.5, 3), (0.2, 0.5, 100), (0.1, 0.9, 100)):
            graph.settings.score_threshold, graph.settings.nms_iou_threshold, \
                graph.settings.max_detections = s
            a, b = graph(image, "bgr8"), eager(image, "bgr8")
            np.testing.assert_array_equal(a.scores, b.scores)
            np.testing.assert_array_equal(a.boxes, b.boxes)
            if s[2] == 3:
                assert len(a) == min(3, len(first))
        graph.settings.class_filter = frozenset(first.class_ids[:1].tolist())
        c = graph(image, "bgr8")
        assert set(c.class_ids.tolist()) <= set(graph.settings.class_filter)
        assert frame.exec is exec_before, "settings changes must not recapture"
        assert eager._frames[next(iter(eager._frames))].mode == "eager"
    finally:
        graph.close()
        eager.close()


def test_matches_cpu_pipeline_on_constant_model(gpu_backend, constant_model, rng_seed):
    """Model output independent of the image: GPU pipeline == DetectionPipeline (onnxruntime)."""
    from trt_infer_ros.backends.onnxruntime_runner import OnnxRuntimeRunner
    from trt_infer_ros.pipeline.detector import DetectionPipeline
    from trt_infer_ros.pipeline.gpu_pipeline import GpuDetectionPipeline

    rng = np.random.default_rng(rng_seed)
    n, nc = 336, 80
    boxes = np.concatenate([rng.uniform(20, 108, (n, 2)), rng.uniform(4, 60, (n, 2))], 1)
    out = np.concatenate([boxes, rng.random((n, nc)) ** 4], 1).T[None].astype(np.float32)
    path = constant_model({"output0": out}, input_shape=(1, 3, 128, 128))
    adapter = YoloV8Adapter(InputSpec(width=128, height=128), num_classes=nc)
    settings = DetectionSettings(0.3, 0.45, 100)
    cpu = DetectionPipeline(adapter, OnnxRuntimeRunner(path), settings)
    gpu = GpuDetectionPipeline(adapter, _runner(path, gpu_backend), settings)
    try:
        for image, encoding in _images(rng):
            a, b = gpu(image, encoding), cpu(image, encoding)
            assert len(a) == len(b) > 0
            np.testing.assert_array_equal(a.class_ids, b.class_ids)
            np.testing.assert_array_equal(a.scores, b.scores)
            np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
    finally:
        gpu.close()
        cpu.close()


def test_default_centernet_model_on_photos(gpu_backend):
    """The shipped CenterNet on real photos: GPU pipeline finds what the CPU pipeline finds."""
    import cv2

    from trt_infer_ros.pipeline.detector import build_pipeline
    from trt_infer_ros.pipeline.gpu_pipeline import build_gpu_pipeline

    model = REPO / "models" / "centernet_mobilenetv3_coco.onnx"
    photos = sorted((REPO / "data" / "images").glob("*.jpg"))
    if not model.is_file() or not photos:
        pytest.skip("default model or photos not in the repository")
    settings = DetectionSettings(0.3, 0.45, 100)
    gpu = build_gpu_pipeline(str(model), "auto", gpu_backend, settings, precision="fp32",
                             device="CUDA" if gpu_backend == "onnxruntime" else None)
    cpu = build_pipeline(str(model), "auto", "onnxruntime", settings)
    try:
        for path in photos:
            image = cv2.imread(str(path))
            a, b = gpu(image, "bgr8"), cpu(image, "bgr8")
            print(path.name, "gpu", len(a), "cpu", len(b), "mode",
                  {f.mode for f in gpu._frames.values()})
            strong = b.scores >= 0.5
            for box, cls in zip(b.boxes[strong], b.class_ids[strong]):
                same = a.boxes[a.class_ids == cls]
                assert len(same), f"{path.name}: class {cls} missing on GPU"
                lt = np.maximum(same[:, :2], box[:2])
                rb = np.minimum(same[:, 2:], box[2:])
                inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
                union = np.prod(same[:, 2:] - same[:, :2], 1) + np.prod(box[2:] - box[:2]) - inter
                assert (inter / union).max() > 0.9, f"{path.name}: box {box} not matched"
    finally:
        gpu.close()
        cpu.close()


def test_no_device_memory_growth_over_10000_frames(gpu_backend, tmp_path, rng_seed):
    from trt_infer_ros.pipeline.gpu_pipeline import GpuDetectionPipeline

    path = make_yolov8_shaped(tmp_path / "y.onnx", 64, 80, seed=2)
    adapter = YoloV8Adapter(InputSpec(width=64, height=64), num_classes=80)
    pipe = GpuDetectionPipeline(adapter, _runner(path, gpu_backend), DetectionSettings(0.1, 0.5, 100))
    rng = np.random.default_rng(rng_seed)
    images = [rng.integers(0, 256, (48, 80, 3), dtype=np.uint8) for _ in range(4)]
    try:
        for im in images:
            pipe(im, "bgr8")
        pipe.context.synchronize()
        free_before, _ = pipe.context.mem_info()
        for i in range(10_000):
            pipe(images[i % 4], "bgr8")
        pipe.context.synchronize()
        free_after, _ = pipe.context.mem_info()
        assert free_after == free_before, f"{(free_before - free_after) / 2**20:.2f} MiB grew"
        assert len(pipe._frames) == 1
    finally:
        pipe.close()


def test_frames_from_other_threads(gpu_backend, tmp_path, rng_seed):
    """ROS executors call the pipeline from worker threads: contexts must follow."""
    import threading

    from trt_infer_ros.pipeline.gpu_pipeline import GpuDetectionPipeline

    path = make_yolov8_shaped(tmp_path / "y.onnx", 64, 80, seed=3)
    adapter = YoloV8Adapter(InputSpec(width=64, height=64), num_classes=80)
    pipe = GpuDetectionPipeline(adapter, _runner(path, gpu_backend), DetectionSettings(0.1, 0.5, 100))
    rng = np.random.default_rng(rng_seed)
    images = [rng.integers(0, 256, (48 + 8 * i, 80, 3), dtype=np.uint8) for i in range(3)]
    want = [pipe(im, "bgr8") for im in images]
    got, errors = {}, []

    def work(i):
        try:
            got[i] = pipe(images[i], "bgr8")                 # existing shape
            got[i + 10] = pipe(images[i][:-4], "bgr8")       # new shape: captured in this thread
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    try:
        for i in range(3):
            t = threading.Thread(target=work, args=(i,))
            t.start()
            t.join()
        assert not errors, errors
        for i in range(3):
            np.testing.assert_array_equal(got[i].boxes, want[i].boxes)
            np.testing.assert_array_equal(got[i + 10].scores, pipe(images[i][:-4], "bgr8").scores)
    finally:
        pipe.close()


def test_auto_takes_the_fastest_gpu_runner_and_remembers_it(cuda_context, tmp_path,
                                                            monkeypatch):
    """backend auto: every GPU runner installed is timed on whole frames, the numbers are
    logged, the fastest is kept and remembered; backend onnxruntime without a CUDA device
    stays on the CPU-side pipeline."""
    from trt_infer_ros.pipeline.gpu_pipeline import GpuDetectionPipeline, build_best_pipeline
    from trt_infer_ros.pipeline.gpu_runner_choice import cache_path, installed_gpu_runners

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # 128: at 64x64 the 84 anchors equal the 84 channels and the explicit yolov8 is refused
    path = make_yolov8_shaped(tmp_path / "y.onnx", 128, 80, seed=4)
    first, second = [], []
    pipe = build_best_pipeline(path, "yolov8", "auto", DetectionSettings(), log=first.append)
    try:
        assert isinstance(pipe, GpuDetectionPipeline), getattr(pipe, "selection", "")
        assert "GPU pipeline" in pipe.selection
        chosen = pipe.runner.name
    finally:
        pipe.close()
    print("\n".join(first))
    if len(installed_gpu_runners()) > 1:
        for name in installed_gpu_runners():
            assert any(m.startswith(f"GPU runner {name}: ") and " ms per 1280x720 frame" in m
                       for m in first), first
        assert any(m.startswith(f"GPU runner {chosen} chosen: ") for m in first), first
        assert cache_path().is_file()
        pipe = build_best_pipeline(path, "yolov8", "auto", DetectionSettings(), log=second.append)
        try:
            assert pipe.runner.name == chosen
            assert any("measured before" in m for m in second), second
        finally:
            pipe.close()
    cpu = build_best_pipeline(path, "yolov8", "onnxruntime", DetectionSettings())
    try:
        assert not isinstance(cpu, GpuDetectionPipeline) and "CPU-side" in cpu.selection
    finally:
        cpu.close()


def assert_same_detections(a, b):
    assert len(a) == len(b)
    np.testing.assert_array_equal(a.class_ids, b.class_ids)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_allclose(a.boxes, b.boxes, rtol=0, atol=1e-3)


W, H = 128, 96                 # network input: width != height
NAMES = [f"c{i}" for i in range(20)]
RTDETR_META = dict(description="Ultralytics RTDETR-L model", head="RTDETRDecoder")
FINAL_FORMS = {
    "yolo_end2end": (end2end_output, dict(end2end=True)),
    "rtdetr-scores": (rtdetr_scores_output, RTDETR_META),
    "rtdetr-topk": (rtdetr_topk_output, RTDETR_META),
}


@pytest.mark.parametrize("form", list(FINAL_FORMS))
def test_final_detection_outputs_decode_on_gpu_like_the_cpu_pipeline(gpu_backend, tmp_path,
                                                                     rng_seed, form):
    """End-to-end YOLO and RT-DETR exports: GPU decode (top-k, no NMS) == DetectionPipeline
    with onnxruntime, over settings changes, non-finite rows and agnostic NMS."""
    from trt_infer_ros.pipeline.detector import build_pipeline
    from trt_infer_ros.pipeline.gpu_pipeline import GpuDetectionPipeline

    rng = np.random.default_rng([rng_seed, list(FINAL_FORMS).index(form)])
    make_output, meta = FINAL_FORMS[form]
    out = make_output(rng, 300, len(NAMES), W, H)
    out[0, 0, 0], out[0, 0, 4] = np.inf, 0.9         # at least one non-finite row is counted
    path = save_export(tmp_path / f"{form}.onnx", {"output0": out}, input_shape=(1, 3, H, W),
                       metadata=ultralytics_metadata(imgsz=(H, W), names=NAMES, **meta))
    settings = DetectionSettings(0.25, 0.45, 100)
    gpu = _best(path, gpu_backend, settings)
    cpu = build_pipeline(path, "auto", "onnxruntime", settings)
    try:
        assert isinstance(gpu, GpuDetectionPipeline) and gpu.gpu_decode, gpu.selection
        assert gpu.adapter.model_type == form.split("-")[0]
        assert "decode on GPU (top-k by score, no NMS" in gpu.selection
        for i, (image, encoding) in enumerate(_images(rng)):
            settings.max_detections = (100, 5, 300, 100)[i]
            settings.class_filter = None if i % 2 == 0 else frozenset(range(0, 20, 3))
            a, b = gpu(image, encoding), cpu(image, encoding)
            assert len(a) > 0
            assert_same_detections(a, b)
        assert gpu.nonfinite_dropped == cpu.nonfinite_dropped > 0
        print(form, "frame graph modes:", {f.mode for f in gpu._frames.values()})
        settings.agnostic_nms = True        # suppression across classes: the CPU decoder's
        settings.class_filter = None
        image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
        assert_same_detections(gpu(image, "bgr8"), cpu(image, "bgr8"))
    finally:
        gpu.close()
        cpu.close()


def _task_export(tmp_path, rng, task):
    """A 64x64 Ultralytics segment/pose/OBB export with random rows."""
    n, nc = grid_size(64, 64), 2
    boxes = np.concatenate([rng.uniform(8, 56, (2, n)), rng.uniform(4, 30, (2, n))])
    extra = {"segment": rng.normal(0, 1, (32, n)), "pose": rng.uniform(0, 64, (51, n)),
             "obb": rng.uniform(-1.5, 1.5, (1, n))}[task]
    out = np.concatenate([boxes, grid_scores(rng, (nc, n)), extra]).astype(np.float32)[None]
    outputs = {"output0": out}
    if task == "segment":
        outputs["output1"] = rng.normal(0, 1, (1, 32, 16, 16)).astype(np.float32)
    more = {"kpt_shape": [17, 3]} if task == "pose" else {}
    return save_export(tmp_path / f"{task}.onnx", outputs,
                       metadata=ultralytics_metadata(task=task, names=["a", "b"], **more))


@pytest.mark.parametrize("task", ["segment", "pose", "obb"])
def test_task_heads_decode_on_cpu_and_say_so(gpu_backend, tmp_path, rng_seed, task):
    from trt_infer_ros.pipeline.detector import build_pipeline
    from trt_infer_ros.pipeline.gpu_pipeline import GpuDetectionPipeline

    rng = np.random.default_rng([rng_seed, 7])
    path = _task_export(tmp_path, rng, task)
    settings = DetectionSettings(0.3, 0.45, 100)
    gpu = _best(path, gpu_backend, settings)
    cpu = build_pipeline(path, "auto", "onnxruntime", settings)
    try:
        assert isinstance(gpu, GpuDetectionPipeline) and not gpu.gpu_decode, gpu.selection
        assert f"decode on CPU ({task} head: its " in gpu.selection
        image = rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)
        a, b = gpu(image, "bgr8"), cpu(image, "bgr8")
        assert len(a) > 0
        assert_same_detections(a, b)
        for field in ("angles", "keypoints"):
            if getattr(b, field) is not None:
                np.testing.assert_allclose(getattr(a, field), getattr(b, field), atol=1e-3)
        if b.masks is not None:
            np.testing.assert_array_equal(a.masks.id_image(), b.masks.id_image())
    finally:
        gpu.close()
        cpu.close()


def test_dynamic_onnx_runs_on_the_gpu_at_the_resolved_size(gpu_backend, tmp_path, rng_seed):
    """A dynamic=True export: the size from its metadata reaches tinygrad (no CPU fallback)."""
    from trt_infer_ros.pipeline.detector import build_pipeline
    from trt_infer_ros.pipeline.gpu_pipeline import GpuDetectionPipeline

    rng = np.random.default_rng([rng_seed, 8])
    n, nc = grid_size(W, H), 80
    boxes = np.concatenate([rng.uniform(10, 90, (2, n)), rng.uniform(4, 50, (2, n))])
    out = np.concatenate([boxes, rng.random((nc, n)) ** 4]).astype(np.float32)[None]
    path = save_export(tmp_path / "dyn.onnx", {"output0": out},
                       input_shape=("batch", 3, "height", "width"),
                       declared={"output0": ("batch", 4 + nc, "anchors")},
                       metadata=ultralytics_metadata(imgsz=(H, W), dynamic=True,
                                                     names=[str(i) for i in range(nc)]))
    settings = DetectionSettings(0.3, 0.45, 100)
    gpu = _best(path, gpu_backend, settings)
    cpu = build_pipeline(path, "auto", "onnxruntime", settings)
    try:
        assert isinstance(gpu, GpuDetectionPipeline) and gpu.gpu_decode, gpu.selection
        assert tuple(gpu.runner.input_shape) == (1, 3, H, W)
        for image, encoding in _images(rng):
            a, b = gpu(image, encoding), cpu(image, encoding)
            assert len(a) > 0
            assert_same_detections(a, b)
    finally:
        gpu.close()
        cpu.close()


def test_two_input_rtdetr_falls_back_to_cpu_with_the_reason(cuda_context, tmp_path, monkeypatch):
    from trt_infer_ros.pipeline.gpu_pipeline import GpuDetectionPipeline, build_best_pipeline

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    path = save_rtdetr_deploy(tmp_path / "rtdetr_deploy.onnx")
    messages = []
    pipe = build_best_pipeline(path, "auto", "auto", DetectionSettings(), log=messages.append)
    try:
        assert not isinstance(pipe, GpuDetectionPipeline)
        assert "this model has two inputs (images, orig_target_sizes)" in pipe.selection
        assert any("GPU pipeline not used" in m for m in messages)
        dets = pipe(np.zeros((32, 128, 3), np.uint8), "bgr8")     # stretched: x * 2, y / 2
        np.testing.assert_allclose(dets.boxes, [[32, 8, 64, 24]], atol=1e-4)
        assert dets.class_ids.tolist() == [2]
    finally:
        pipe.close()
