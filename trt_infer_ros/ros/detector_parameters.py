"""detector_node's parameters: one table (descriptors, checks, --help), and the pipeline they select."""
from __future__ import annotations

import os
import re
import stat

from trt_infer_ros.backends.float16 import PRECISIONS
from trt_infer_ros.models.registry import MODEL_TYPE_CHOICES
from trt_infer_ros.pipeline.settings import DetectionSettings
from trt_infer_ros.resources import default_model_path
from trt_infer_ros.ros.parameters import ParamSpec, declare_all
from trt_infer_ros.ros.qos import RELIABILITY_CHOICES

BACKENDS = ("auto", "onnxruntime", "tinygrad", "tensorrt")
MODEL_TYPES = MODEL_TYPE_CHOICES       # "auto" and every family the registry knows
# Device names the runners understand: CPU, CUDA (or CUDA:<n> for tinygrad), DLA0/DLA1 (TensorRT).
DEVICE_PATTERN = re.compile(r"(CPU|CUDA(:[0-9]{1,2})?|GPU|DLA[0-9]?)", re.IGNORECASE)
LIVE = ("score_threshold", "nms_iou_threshold", "agnostic_nms", "max_detections", "class_filter",
        "enable")
INPUT_SIZE = re.compile(r"([0-9]{2,5})(?:x([0-9]{2,5}))?")

DETECTOR_PARAMETERS = (
    ParamSpec("model_path", "", "ONNX model or TensorRT engine; empty = the bundled COCO CenterNet",
              read_only=True),
    ParamSpec("model_type", "auto", "output layout of the model; auto reads it from the ONNX graph",
              read_only=True, choices=MODEL_TYPES),
    ParamSpec("backend", "auto", "inference runtime; auto takes the fastest one installed",
              read_only=True, choices=BACKENDS),
    ParamSpec("device", "", "runtime device: CPU, CUDA, CUDA:<n>, DLA0, DLA1; empty lets the "
              "backend choose", read_only=True, max_length=16),
    ParamSpec("precision", "auto", "GPU pipeline arithmetic for ONNX models on onnxruntime CUDA: "
              "auto takes fp16 when it keeps the detections within tolerance and is faster; "
              "fp32; fp16 (a warning when outside tolerance)", read_only=True,
              choices=PRECISIONS),
    ParamSpec("input_size", "", "input size for a model whose size is not fixed: 640 or "
              "WIDTHxHEIGHT (640x384); empty reads it from the model", read_only=True,
              max_length=16),
    ParamSpec("labels", "", "class names file: one name a line, or a YAML/JSON list or "
              "{id: name} map; empty uses the model's own names", read_only=True),
    ParamSpec("score_threshold", 0.3, "detections scoring below this are dropped",
              float_range=(0.0, 1.0)),
    ParamSpec("nms_iou_threshold", 0.45, "boxes of one class overlapping more than this are "
              "merged", float_range=(0.0, 1.0)),
    ParamSpec("agnostic_nms", False, "NMS across classes: one box per object even when "
              "several classes score on it"),
    ParamSpec("max_detections", 100, "at most this many detections per frame, best first",
              int_range=(1, 1000)),
    ParamSpec("class_filter", "", "comma-separated class names or ids to keep; empty keeps all",
              max_length=4096),
    ParamSpec("enable", True, "false pauses inference (frames are ignored)"),
    ParamSpec("expected_rate", 0.0, "frames per second the node should output; below it "
              "/diagnostics reports WARN (0: no check)", float_range=(0.0, 1000.0)),
    ParamSpec("qos_reliability", "best_effort", "image subscription reliability (best_effort = "
              "sensor data)", read_only=True, choices=RELIABILITY_CHOICES),
    ParamSpec("qos_depth", 1, "image subscription queue depth", read_only=True,
              int_range=(1, 100)),
)


def declare_detector_parameters(node, specs=DETECTOR_PARAMETERS) -> dict:
    """Declare every parameter of `specs` (default: detector_node's) and return their start-up
    values by name (ValueError if bad)."""
    p = declare_all(node, specs)
    if p.get("device") and not DEVICE_PATTERN.fullmatch(p["device"]):
        raise ValueError(f"device {p['device']!r} is not a device name: use CPU, CUDA, CUDA:<n>, "
                         "DLA0 or DLA1, or leave it empty to let the backend choose")
    p["input_size"] = parse_input_size(p.get("input_size", ""))
    if "source" in p:
        p["source"] = p["source"].strip()       # "source:= /dev/video0" as typed in a shell
    if not p["model_path"]:
        p["model_path"] = str(default_model_path())
    check_model_file(p["model_path"])
    return p


def parse_input_size(text: str):
    """(width, height) from '640' or '640x384'; None when empty."""
    if not text:
        return None
    match = INPUT_SIZE.fullmatch(text.strip().lower())
    if not match:
        raise ValueError(f"input_size {text!r} is not a size: use 640 or WIDTHxHEIGHT (640x384)")
    width = int(match.group(1))
    height = int(match.group(2) or width)
    if not (32 <= width <= 8192 and 32 <= height <= 8192):
        raise ValueError(f"input_size {text!r}: each side must be within 32..8192 pixels")
    return width, height


def check_model_file(path: str) -> None:
    """Say precisely why `path` cannot be a model file (missing, a directory, a device, empty)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ValueError(f"model_path: no such file {path!r}") from None
    except OSError as err:
        raise ValueError(f"model_path: cannot read {path!r}: {err.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ValueError(f"model_path: {path!r} is a directory; give the .onnx or engine file "
                         "inside it")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"model_path: {path!r} is not a regular file (a device, pipe or "
                         "socket); give an .onnx or engine file")
    if st.st_size == 0:
        raise ValueError(f"model_path: {path!r} is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise ValueError(f"model_path: {path!r} is not readable by this user")


def load_pipeline(params: dict, log):
    """The detection pipeline the parameters ask for: the whole-frame GPU pipeline when a GPU
    runner starts here, else the CPU-side one; `log` is told which and why."""
    from trt_infer_ros.pipeline.gpu_pipeline import build_best_pipeline

    return build_best_pipeline(params["model_path"], model_type=params["model_type"],
                               backend=params["backend"], settings=settings_from(params),
                               device=params["device"] or None, log=log,
                               precision=params.get("precision", "auto"),
                               **adapter_kwargs_from(params))


def settings_from(params: dict) -> DetectionSettings:
    """The per-frame settings the start-up parameters ask for (class_filter comes later: it
    needs the class names)."""
    settings = DetectionSettings(score_threshold=params["score_threshold"],
                                 nms_iou_threshold=params["nms_iou_threshold"],
                                 max_detections=params["max_detections"])
    settings.agnostic_nms = params["agnostic_nms"]
    return settings


def adapter_kwargs_from(params: dict) -> dict:
    """What the model adapter takes from the parameters: input size and class names."""
    kwargs = {}
    if params.get("input_size") is not None:
        kwargs["input_size"] = params["input_size"]
    if params.get("labels"):
        kwargs["labels"] = params["labels"]      # read (and checked) by the model registry
    return kwargs
