"""One model under study: its quantizable layers, the FP32 reference detections on held-out
frames, the activation statistics of the calibration frames, and `measure(plan)`, the agreement
of the model with a per-layer precision plan. Every other step (sensitivity, search, bit widths,
the builder's gate) is a sequence of measures."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import onnx

from trt_infer_ros.optimize.agreement import (Agreement, AgreementError, GroundTruth, coco_map,
                                              detection_agreement)
from trt_infer_ros.optimize.calibrate import ActivationStats, collect
from trt_infer_ros.optimize.layers import Layer, require_layers
from trt_infer_ros.optimize.qdq import build_model
from trt_infer_ros.optimize.simulate import Detector, candidate_settings

LOG = logging.getLogger("trt_infer_ros.optimize")
METRICS = ("map50_95", "map50")


@dataclass
class Measure:
    agreement: Agreement
    truth: Optional[Agreement] = None      # true mAP, when labels were given

    def value(self, metric: str) -> float:
        return getattr(self.agreement, metric)


class Analysis:
    def __init__(self, onnx_path: str, adapter, calibration_frames: Sequence,
                 held_out_frames: Sequence, method: str = "entropy", percentile: float = 99.99,
                 reference_threshold: float = 0.3, labels: Optional[list[GroundTruth]] = None,
                 log: Callable[[str], None] = LOG.info):
        self.onnx_path = onnx_path
        self.model = onnx.load(onnx_path)
        self.layers: list[Layer] = require_layers(self.model, onnx_path)
        self.adapter = adapter
        self.log = log
        self.method, self.percentile = method, percentile
        self.reference_threshold = reference_threshold
        self.labels = labels
        self.detector = Detector(adapter, held_out_frames, candidate_settings(reference_threshold))
        self.calibration_frames = list(calibration_frames)
        self.reference = self.detector.detect(self.model)
        self.fp32_truth = coco_map(labels, self.reference) if labels else None
        boxes = sum(int((d.scores >= reference_threshold).sum()) for d in self.reference)
        log(f"{onnx_path}: {len(self.layers)} quantizable layers; FP32 reference: {boxes} "
            f"boxes >= {reference_threshold} on {len(held_out_frames)} held-out frames")
        if not boxes:       # every measure would be undefined: say so before calibrating
            raise AgreementError(
                f"the FP32 model detects nothing scoring >= {reference_threshold} on the "
                f"{len(held_out_frames)} held-out frames, so agreement is undefined: lower "
                "--reference-threshold or use images where the model detects something")
        self._stats: Optional[ActivationStats] = None
        self._amax: dict[str, dict] = {}
        self._weights: dict = {}

    @property
    def stats(self) -> ActivationStats:
        if self._stats is None:
            self.log(f"calibrating on {len(self.calibration_frames)} frames")
            self._stats = collect(self.model, self.calibration_frames, log=self.log)
        return self._stats

    def amax(self, method: Optional[str] = None) -> dict[str, float]:
        method = method or self.method
        if method not in self._amax:
            self._amax[method] = self.stats.ranges(method, self.percentile)
        return self._amax[method]

    def plan(self, int8: Sequence[str] = (), fp16: Sequence[str] = ()) -> dict[str, str]:
        plan = {name: "int8" for name in int8}
        plan.update({name: "fp16" for name in fp16})
        return plan

    def all_int8(self, keep_fp16: Sequence[str] = ()) -> dict[str, str]:
        return self.plan([layer.name for layer in self.layers], keep_fp16)

    def model_for(self, plan: dict[str, str], method: Optional[str] = None,
                  weight_bits: Optional[int] = None) -> onnx.ModelProto:
        amax = {} if weight_bits is not None else self.amax(method)
        return build_model(self.model, self.layers, plan, amax, weight_bits, self._weights)

    def measure(self, plan: dict[str, str], method: Optional[str] = None,
                weight_bits: Optional[int] = None) -> Measure:
        dets = self.detector.detect(self.model_for(plan, method, weight_bits))
        agreement = detection_agreement(self.reference, dets, self.reference_threshold)
        truth = coco_map(self.labels, dets) if self.labels else None
        return Measure(agreement, truth)
