"""backend auto's measured choice between runners: timing, the cache and its key. The candidates
here are real CPU pipelines (onnxruntime) of two sizes, so the faster one is known."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from trt_infer_ros.pipeline import gpu_runner_choice as choice

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from synthetic_yolo import make_yolov8_shaped  # noqa: E402


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """A small and a large model of the same family: the small one is faster by far."""
    d = tmp_path_factory.mktemp("models")
    return {"small": make_yolov8_shaped(str(d / "small.onnx"), 64, 80, seed=1),
            "large": make_yolov8_shaped(str(d / "large.onnx"), 320, 80, seed=1)}


def _maker(two_models, built):
    from trt_infer_ros.backends.onnxruntime_runner import OnnxRuntimeRunner
    from trt_infer_ros.models.spec import InputSpec
    from trt_infer_ros.models.yolo import YoloV8Adapter
    from trt_infer_ros.pipeline.detector import DetectionPipeline

    def make(name):
        if name == "broken":
            raise RuntimeError("this runner does not start")
        size = 64 if name == "small" else 320
        built.append(name)
        return DetectionPipeline(YoloV8Adapter(InputSpec(width=size, height=size), num_classes=80),
                                 OnnxRuntimeRunner(two_models[name]))
    return make


def test_the_fastest_whole_frame_wins_and_is_remembered(cache_home, two_models):
    key = choice.cache_key(two_models["small"], (1, 3, 64, 64), "test GPU", ["large", "small"])
    built, said = [], []
    pipe = choice.choose_fastest(["large", "small", "broken"], _maker(two_models, built), key,
                                 said.append)
    try:
        assert tuple(pipe.runner.input_shape) == (1, 3, 64, 64)
    finally:
        pipe.close()
    assert built == ["large", "small"]
    timed = {m.split(":")[0] for m in said if " ms per 1280x720 frame" in m}
    assert timed == {"GPU runner large", "GPU runner small"}, said
    assert any(m.startswith("GPU runner broken not used: RuntimeError") for m in said)
    assert any(m.startswith("GPU runner small chosen: large ") for m in said), said
    assert choice.cache_path().is_file()

    built, said = [], []
    pipe = choice.choose_fastest(["large", "small"], _maker(two_models, built), key, said.append)
    pipe.close()
    assert built == ["small"], "a remembered choice builds the winner only"
    assert "measured before" in said[0] and str(choice.cache_path()) in said[0]


def test_a_remembered_winner_that_is_no_longer_installed_is_measured_again(cache_home,
                                                                          two_models):
    key = "k"
    choice.remember_choice(key, {"runner": "gone", "frame_ms": {"gone": 1.0}})
    assert choice.cached_choice(key, ["large", "small"]) is None
    built = []
    choice.choose_fastest(["small"], _maker(two_models, built), key, lambda m: None).close()
    assert built == ["small"]


def test_no_candidate_starts_raises_every_reason(cache_home, two_models):
    from trt_infer_ros.backends.runner import BackendUnavailable

    with pytest.raises(BackendUnavailable,
                       match="no GPU runner started: broken: this runner does not start; "
                             "broken: this runner does not start"):
        choice.choose_fastest(["broken", "broken"], _maker(two_models, []), None, lambda m: None)


def test_cache_key_follows_the_model_bytes_shape_and_gpu(tmp_path, two_models):
    a = choice.cache_key(two_models["small"], (1, 3, 64, 64), "GPU A", ["onnxruntime"])
    assert a == choice.cache_key(two_models["small"], (1, 3, 64, 64), "GPU A", ["onnxruntime"])
    assert a != choice.cache_key(two_models["large"], (1, 3, 64, 64), "GPU A", ["onnxruntime"])
    assert a != choice.cache_key(two_models["small"], (1, 3, 96, 96), "GPU A", ["onnxruntime"])
    assert a != choice.cache_key(two_models["small"], (1, 3, 64, 64), "GPU B", ["onnxruntime"])
    assert "onnxruntime=" in a


def test_an_unreadable_cache_is_ignored(cache_home):
    choice.cache_path().parent.mkdir(parents=True)
    choice.cache_path().write_text("{not json")
    assert choice.cached_choice("k", ["small"]) is None
    choice.remember_choice("k", {"runner": "small", "frame_ms": {"small": 1.0}})
    assert choice.cached_choice("k", ["small"])["runner"] == "small"
