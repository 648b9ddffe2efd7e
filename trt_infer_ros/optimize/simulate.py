"""Running a (quantized or float) ONNX model over frames with onnxruntime, to detections.

The model adapter decodes the outputs and the pipeline's own post-processing (score threshold,
NMS, letterbox undone) turns them into detections in source pixels, so a candidate model is
judged on what the detector node would publish. The CUDA provider is used where onnxruntime has
it, else the CPU.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable, Optional, Sequence

import numpy as np
import onnx

from trt_infer_ros.models.spec import Detections
from trt_infer_ros.pipeline.detector import finish_detections
from trt_infer_ros.pipeline.settings import DetectionSettings

# candidates keep low-scoring boxes: mAP ranks them, and a box FP32 scores 0.31 may score 0.29
CANDIDATE_SETTINGS = DetectionSettings(score_threshold=0.05)


def candidate_settings(reference_threshold: float) -> DetectionSettings:
    """CANDIDATE_SETTINGS, with the score threshold lowered to `reference_threshold` when that
    is lower: a candidate box below it could never match a reference box."""
    return replace(CANDIDATE_SETTINGS, score_threshold=min(CANDIDATE_SETTINGS.score_threshold,
                                                           reference_threshold))


def providers() -> list[str]:
    import onnxruntime as ort  # noqa: PLC0415
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def session_for(model: onnx.ModelProto, provider_list: Optional[list[str]] = None):
    import onnxruntime as ort  # noqa: PLC0415
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=provider_list or providers())


def input_feed(session, tensor: np.ndarray) -> dict:
    """The feed of a one-input session: `tensor` in the input's dtype (fp16 models take fp16)."""
    first = session.get_inputs()[0]
    dtype = np.float16 if "float16" in first.type else np.float32
    return {first.name: tensor.astype(dtype, copy=False)}


def run_frames(session, frames: Sequence, extra_inputs: Optional[dict] = None,
               output_names: Optional[list[str]] = None):
    """Yields each frame's outputs (a list of arrays, in `output_names` order)."""
    for frame in frames:
        feed = input_feed(session, frame.tensor)
        feed.update(extra_inputs or {})
        yield session.run(output_names, feed)


class Detector:
    """Detections of any variant of one model on a fixed set of frames."""

    def __init__(self, adapter, frames: Sequence,
                 settings: DetectionSettings = CANDIDATE_SETTINGS):
        self.adapter = adapter
        self.frames = list(frames)
        self.settings = settings
        self.extra = adapter.extra_inputs() if hasattr(adapter, "extra_inputs") else {}
        self.runs = 0
        self.seconds = 0.0

    def detect(self, model: onnx.ModelProto) -> list[Detections]:
        start = time.monotonic()
        session = session_for(model)
        if hasattr(self.adapter, "set_output_names"):
            self.adapter.set_output_names([o.name for o in session.get_outputs()])
        out = []
        for frame, outputs in zip(self.frames, run_frames(session, self.frames, self.extra)):
            dets, _ = finish_detections(self.adapter, outputs, frame.transform, self.settings)
            out.append(dets)
        self.runs += 1
        self.seconds += time.monotonic() - start
        return out


class Progress:
    """Periodic progress lines with an ETA, for loops that take minutes."""

    def __init__(self, log: Callable[[str], None], what: str, total: int,
                 every_s: float = 10.0):
        self.log, self.what, self.total, self.every_s = log, what, max(int(total), 1), every_s
        self.start = self.last = time.monotonic()
        self.done = 0

    def step(self, note: str = "") -> None:
        self.done += 1
        now = time.monotonic()
        if now - self.last >= self.every_s or self.done == self.total:
            self.last = now
            elapsed = now - self.start
            eta = elapsed / self.done * (self.total - self.done)
            self.log(f"{self.what}: {self.done}/{self.total} ({elapsed:.0f} s, ETA {eta:.0f} s)"
                     + (f" {note}" if note else ""))
