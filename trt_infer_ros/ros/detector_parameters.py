"""detector_node's parameters: declaration with descriptors, and the pipeline they select."""
from __future__ import annotations

from pathlib import Path

from trt_infer_ros.pipeline.settings import DetectionSettings
from trt_infer_ros.resources import default_model_path
from trt_infer_ros.ros.parameters import declare
from trt_infer_ros.ros.qos import RELIABILITY_CHOICES

BACKENDS = ("auto", "onnxruntime", "tinygrad", "tensorrt")
MODEL_TYPES = ("auto", "yolov8", "yolov5", "yolox", "centernet", "end2end")


def declare_detector_parameters(node) -> dict:
    """Declare every parameter and return their start-up values by name."""
    p = {}
    p["model_path"] = declare(node, "model_path", "",
                              "ONNX model or TensorRT engine; empty = the bundled COCO CenterNet",
                              read_only=True)
    p["model_type"] = declare(node, "model_type", "auto",
                              "output layout of the model; auto reads it from the ONNX graph",
                              read_only=True, choices=MODEL_TYPES)
    p["backend"] = declare(node, "backend", "auto",
                           "inference runtime; auto takes the fastest one installed",
                           read_only=True, choices=BACKENDS)
    p["device"] = declare(node, "device", "",
                          "runtime device, e.g. CPU or CUDA; empty lets the backend choose",
                          read_only=True)
    p["score_threshold"] = declare(node, "score_threshold", 0.3,
                                   "detections scoring below this are dropped",
                                   float_range=(0.0, 1.0))
    p["nms_iou_threshold"] = declare(node, "nms_iou_threshold", 0.45,
                                     "boxes of one class overlapping more than this are merged",
                                     float_range=(0.0, 1.0))
    p["max_detections"] = declare(node, "max_detections", 100,
                                  "at most this many detections per frame, best first",
                                  int_range=(1, 1000))
    p["class_filter"] = declare(node, "class_filter", "",
                                "comma-separated class names or ids to keep; empty keeps all")
    p["enable"] = declare(node, "enable", True, "false pauses inference (frames are ignored)")
    p["qos_reliability"] = declare(node, "qos_reliability", "best_effort",
                                   "image subscription reliability (best_effort = sensor data)",
                                   read_only=True, choices=RELIABILITY_CHOICES)
    p["qos_depth"] = declare(node, "qos_depth", 1, "image subscription queue depth",
                             read_only=True, int_range=(1, 100))
    for name, choices in (("backend", BACKENDS), ("model_type", MODEL_TYPES),
                          ("qos_reliability", RELIABILITY_CHOICES)):
        if p[name] not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}, got {p[name]!r}")
    if not p["model_path"]:
        p["model_path"] = str(default_model_path())
    if not Path(p["model_path"]).is_file():
        raise FileNotFoundError(f"model_path: no such file {p['model_path']!r}")
    return p


def load_pipeline(params: dict, log):
    """The detection pipeline the parameters ask for: the whole-frame GPU pipeline when a GPU
    runner starts here, else the CPU-side one; `log` is told which and why."""
    from trt_infer_ros.pipeline.gpu_pipeline import build_best_pipeline

    settings = DetectionSettings(score_threshold=params["score_threshold"],
                                 nms_iou_threshold=params["nms_iou_threshold"],
                                 max_detections=params["max_detections"])
    return build_best_pipeline(params["model_path"], model_type=params["model_type"],
                               backend=params["backend"], settings=settings,
                               device=params["device"] or None, log=log)
