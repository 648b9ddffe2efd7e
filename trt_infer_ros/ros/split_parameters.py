"""backbone_node's and head_node's parameters, and the split stages they select.

head_node takes every detector_node parameter (same names, ranges and live tuning) plus the
split's own; backbone_node takes the model, image and transport ones.
"""
from __future__ import annotations

from pathlib import Path

from trt_infer_ros.ros.detector_parameters import (DETECTOR_PARAMETERS, adapter_kwargs_from,
                                                   settings_from)
from trt_infer_ros.ros.parameters import ParamSpec
from trt_infer_ros.transport.sender import MODES

_DETECTOR = {s.name: s for s in DETECTOR_PARAMETERS}

SPLIT_FILES = (
    ParamSpec("cut_tensors", "", "comma-separated tensors to cut model_path at; empty takes the "
              "suggested cut (python -m trt_infer_ros.engine.onnx_split --suggest-only)",
              read_only=True),
    ParamSpec("split_cache_dir", "", "where the split ONNX files are kept; empty: "
              "~/.cache/trt_infer_ros/split", read_only=True),
)

BACKBONE_PARAMETERS = (
    _DETECTOR["model_path"], _DETECTOR["model_type"], _DETECTOR["backend"],
    ParamSpec("backbone_model", "", "backbone ONNX or TensorRT engine; empty splits model_path",
              read_only=True),
    ParamSpec("dla_core", -1, "DLA core for the backbone (TensorRT, GPU fallback); -1: GPU or "
              "the best runner here", read_only=True, int_range=(-1, 15)),
    _DETECTOR["input_size"],
) + SPLIT_FILES + (
    ParamSpec("transport", "auto", "feature hand-off: auto (shared memory on this host, CUDA "
              "IPC when the backbone's outputs are on a discrete GPU, inline bytes for readers "
              "elsewhere), shared_memory, cuda_ipc or inline", read_only=True,
              choices=MODES),
    ParamSpec("ring_slots", 4, "shared-memory slots: frames in flight between the nodes",
              read_only=True, int_range=(2, 63)),
    _DETECTOR["enable"], _DETECTOR["expected_rate"], _DETECTOR["qos_reliability"],
    _DETECTOR["qos_depth"],
)

# precision chooses among whole-frame GPU runners, which the head does not use.
HEAD_PARAMETERS = tuple(s for s in DETECTOR_PARAMETERS if s.name != "precision") + (
    ParamSpec("head_model", "", "head ONNX or TensorRT engine; empty splits model_path",
              read_only=True),
) + SPLIT_FILES


def check_whole_model(path: str) -> None:
    if Path(path).suffix.lower() != ".onnx":
        raise ValueError(f"model_path {path!r}: the split nodes read the whole model's ONNX "
                         "(input size, decoding, class names); give engines as backbone_model "
                         "and head_model")


def split_paths(params: dict, own: str):
    """(path of this node's model file, head input names or None) from the parameters."""
    from trt_infer_ros.engine.split_cache import split_files

    cut = [t for t in params["cut_tensors"].split(",") if t.strip()]
    if params[own]:
        return params[own], [t.strip() for t in cut] or None
    files = split_files(params["model_path"], cut, params["split_cache_dir"] or None)
    path = files.backbone if own == "backbone_model" else files.head
    return path, list(files.cut_tensors)


def load_backbone(params: dict, log):
    """The backbone stage: on DLA core `dla_core` when TensorRT runs here, else the best runner
    (said in `log`)."""
    from trt_infer_ros.pipeline.split import build_backbone

    check_whole_model(params["model_path"])
    path, _ = split_paths(params, "backbone_model")
    kwargs = adapter_kwargs_from(params)
    build = lambda backend, device: build_backbone(params["model_path"], path,  # noqa: E731
                                                   params["model_type"], backend, device,
                                                   **kwargs)
    if params["dla_core"] >= 0:
        try:
            stage = build("tensorrt", f"DLA{params['dla_core']}")
            log(f"backbone {path} on DLA core {params['dla_core']} (TensorRT, GPU fallback)")
            return stage
        except Exception as err:
            log(f"DLA core {params['dla_core']} not usable here ({err}); the backbone runs on "
                "the best runner available instead")
    stage = build(params["backend"], None)
    log(f"backbone {path} on {stage.runner.name} {stage.runner.device} "
        f"({getattr(stage.runner, 'selection', params['backend'])})")
    return stage


def load_head(params: dict, log):
    from trt_infer_ros.pipeline.split import build_head

    check_whole_model(params["model_path"])
    path, names = split_paths(params, "head_model")
    stage = build_head(params["model_path"], path, params["model_type"], params["backend"],
                       params["device"] or None, settings_from(params), names,
                       **adapter_kwargs_from(params))
    log(f"head {path} on {stage.runner.name} {stage.runner.device} "
        f"({getattr(stage.runner, 'selection', params['backend'])})")
    return stage
