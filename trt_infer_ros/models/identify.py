"""Which model family an ONNX graph is: read from its output shapes, its input, the metadata an
exporter wrote, and (for tie-breaks) its op types.

`possible_types(info)` lists every family whose output contract the graph fits; an explicit
`model_type` must be one of them. `identify(info)` picks one for "auto", preferring what the
metadata says, and raises ModelTypeError naming the candidates when the graph is ambiguous or
no detector at all.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from trt_infer_ros.models.graph_info import Dims, GraphInfo
from trt_infer_ros.models.yolo import TASK_TYPES, grid_size

# What each family's output looks like, for messages.
EXPECTED = {
    "yolov8": "[1, 4+nc, anchors] (or [1, anchors, 4+nc])",
    "yolov8_seg": "[1, 4+nc+32, anchors] and prototypes [1, 32, H/4, W/4]",
    "yolov8_pose": "[1, 4+nc+K*D, anchors] (keypoints K x D)",
    "yolov8_obb": "[1, 4+nc+1, anchors] (angle last)",
    "yolov5": "[1, 3*anchors, 5+nc]",
    "yolox": "[1, anchors, 5+nc]",
    "centernet": "[1, N, 6] from an NHWC 0..255 input",
    "end2end": "the four outputs of an NMS layer (num_dets, boxes, scores, classes)",
    "yolo_end2end": "[1, 300, 6+extra] (x1, y1, x2, y2, score, class) from an NCHW input",
    "rtdetr": "[1, 300, 4+nc] or [1, 300, 6] (normalised cx, cy, w, h), or labels/boxes/scores",
}
MAX_TOPK_ROWS = 1000          # fixed-size final-detection outputs (top-k, queries) are smaller
_NMS_OPS = ("EfficientNMS_TRT", "BatchedNMSDynamic_TRT", "BatchedNMS_TRT")


class ModelTypeError(ValueError):
    """The graph's family cannot be told, or it is not a detector; the message says why."""


@dataclass
class Identification:
    model_type: str
    task: str = "detect"          # detect, segment, pose, obb
    layout: str = ""              # rtdetr: scores, topk or deploy
    reason: str = ""


def shape_text(shape: Dims) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def _outputs_text(info: GraphInfo) -> str:
    return ", ".join(shape_text(s) for s in info.output_shapes) or "none"


def grid_counts(info: GraphInfo) -> set[int]:
    """Anchor-point counts of 3-scale (P5) and 4-scale (P6) heads for the input size (static
    dims, else the metadata's imgsz); empty when the size is unknown."""
    h, w = info.input_hw
    if (not h or not w) and info.metadata.imgsz:
        h, w = info.metadata.imgsz
    if not h or not w:
        return set()
    return {grid_size(w, h, (8, 16, 32)), grid_size(w, h, (8, 16, 32, 64))}


def _kpt_values(info: GraphInfo) -> int:
    k = info.metadata.kpt_shape or (17, 3)
    return k[0] * k[1]


def not_a_detector(info: GraphInfo) -> Optional[str]:
    """Why this graph is no detector (classifier, per-pixel map), or None."""
    shapes = info.output_shapes
    if info.metadata.task == "classify":
        return f"it is a classifier (metadata task=classify, output {_outputs_text(info)}), not a detector"
    if any(len(s) == 3 for s in shapes) or len(shapes) >= 3:
        return None
    if len(shapes) == 1 and len(shapes[0]) == 2:
        return f"output {shape_text(shapes[0])} is a classifier, not a detector"
    if shapes and all(len(s) == 4 for s in shapes):
        return (f"output {_outputs_text(info)} is a per-pixel map (semantic segmentation or "
                f"depth), not a detector")
    return f"outputs {_outputs_text(info)} match no detector layout"


def _is_deploy_rtdetr(info: GraphInfo) -> bool:
    names = [n.lower() for n in info.output_names]
    roles = all(any(w in n for n in names) for w in ("label", "box", "score"))
    return len(names) == 3 and roles and (bool(info.extra_inputs) or not info.metadata.raw)


def _is_nms_layer(info: GraphInfo) -> bool:
    names = [n.lower() for n in info.output_names]
    return any(op in info.ops for op in _NMS_OPS) or (
        len(info.output_shapes) >= 4 and any("num" in n for n in names))


def _main(info: GraphInfo) -> Optional[Dims]:
    return next((s for s in info.output_shapes if len(s) == 3), None)


def _protos(info: GraphInfo) -> Optional[Dims]:
    return next((s for s in info.output_shapes if len(s) == 4), None)


def possible_types(info: GraphInfo) -> dict[str, str]:
    """{model_type: task} of every family whose output contract this graph fits."""
    if not_a_detector(info):
        return {}
    if _is_nms_layer(info):
        return {"end2end": "detect"}
    if _is_deploy_rtdetr(info):
        return {"rtdetr": "detect"}
    out, protos = _main(info), _protos(info)
    if out is None:
        return {}
    a, c = out[1], out[2]
    grids = grid_counts(info)
    pc = protos[1] if protos else None

    def anchors(n):       # a per-anchor row count (not a top-k of final detections)
        return n is None or (n in grids if grids else n > MAX_TOPK_ROWS)

    found: dict[str, str] = {}
    # [1, 4+nc+E, N]: attributes first (Ultralytics' layout); the attribute axis is the smaller.
    for channels, n in ((a, c), (c, a)):
        if channels is None or not anchors(n) or (n is not None and channels >= n):
            continue
        if protos is not None:
            if pc is not None and channels - 4 - pc >= 1:
                found["yolov8_seg"] = "segment"
            continue
        found["yolov8"] = "detect"
        if channels - 4 - _kpt_values(info) >= 1:
            found["yolov8_pose"] = "pose"
        if channels >= 6:
            found["yolov8_obb"] = "obb"
    # [1, N, 5+nc] with objectness: YOLOv5 has 3 anchors per grid cell, YOLOX one.
    if c is not None and c >= 6 and protos is None:
        if a is None or (a in {3 * g for g in grids} if grids else a > MAX_TOPK_ROWS):
            found["yolov5"] = "detect"
        if a is None or (a in grids if grids else a > MAX_TOPK_ROWS):
            found["yolox"] = "detect"
    # [1, K, C]: a fixed number of final detections.
    yolov5_rows = {3 * g for g in grids}
    topk_rows = a is not None and a <= MAX_TOPK_ROWS and not anchors(a) and a not in yolov5_rows or (
        a is None and protos is None and any("detection" in n.lower() for n in info.output_names))
    if topk_rows and c is not None and not (c in grids or c > MAX_TOPK_ROWS):
        nchw = info.layout == "NCHW"
        if c == 6 and protos is None and (info.layout == "NHWC" or not info.metadata.from_ultralytics):
            found["centernet"] = "detect"
        if nchw and c >= 6:
            extra = c - 6
            if protos is not None:
                if pc == extra:
                    found["yolo_end2end"] = "segment"
            elif extra == 0:
                found["yolo_end2end"] = "detect"
            elif extra == 1:
                found["yolo_end2end"] = "obb"
            elif extra == _kpt_values(info):
                found["yolo_end2end"] = "pose"
        if nchw and c >= 5 and protos is None:
            found["rtdetr"] = "detect"
    return found


def identify(info: GraphInfo) -> Identification:
    """The family for model_type "auto"; ModelTypeError when unclear or not a detector."""
    why_not = not_a_detector(info)
    if why_not:
        raise ModelTypeError(why_not)
    found = possible_types(info)
    if not found:
        raise ModelTypeError(f"outputs {_outputs_text(info)} with input "
                             f"{shape_text(info.input_shape)} fit no supported detector layout")
    if len(found) == 1:
        kind, task = next(iter(found.items()))
        return _with_layout(info, Identification(kind, task, reason="the only layout that fits"))
    by_meta = _from_metadata(info, found)
    if by_meta is not None:
        return _with_layout(info, by_meta)
    out = _main(info)
    # Without metadata: the common reading of each shape, then op-type tie-breaks.
    if "yolov8_seg" in found:
        return Identification("yolov8_seg", "segment", reason="mask prototypes output")
    if "yolo_end2end" in found and found["yolo_end2end"] == "segment":
        return Identification("yolo_end2end", "segment", reason="mask prototypes output")
    if "centernet" in found and info.layout == "NHWC":
        return Identification("centernet", reason="[1, N, 6] from an NHWC input")
    if "yolo_end2end" in found and found["yolo_end2end"] == "detect":
        return Identification("yolo_end2end", reason="[1, N, 6] from an NCHW float input")
    if "rtdetr" in found and found.get("yolo_end2end") in (None, "obb", "pose"):
        # Ultralytics' end-to-end pose/OBB exports always carry metadata; without it a
        # [1, queries, 4+nc] output is an RT-DETR.
        return _with_layout(info, Identification("rtdetr", reason="[1, queries, 4+nc]"))
    if "yolov8" in found and out is not None and out[1] is not None and \
            (out[2] is None or out[1] < out[2]):
        return Identification("yolov8", reason="[1, 4+nc, anchors]")
    candidates = [k for k in ("yolov8", "yolov5", "yolox") if k in found]
    if "yolov8" in candidates and len(candidates) > 1:
        # Transposed [1, N, C]: YOLOv8's box head has a DFL softmax, YOLOX has none.
        if info.ops:
            if "Softmax" in info.ops:
                return Identification("yolov8", reason="transposed head with a DFL Softmax")
            candidates.remove("yolov8")
        elif out[2] is not None and out[2] - 4 == 80:
            return Identification("yolov8", reason="transposed head with 4 + 80 channels")
        elif out[2] is not None and out[2] - 5 == 80:
            candidates.remove("yolov8")
    if len(candidates) == 1:
        return Identification(candidates[0], reason="row count and op types")
    names = " or ".join(candidates or list(found))
    raise ModelTypeError(f"cannot tell the model family from output {_outputs_text(info)} with "
                         f"input {shape_text(info.input_shape)} and no exporter metadata "
                         f"(could be {names})")


def _from_metadata(info: GraphInfo, found: dict[str, str]) -> Optional[Identification]:
    meta = info.metadata
    if not meta.from_ultralytics and meta.task is None and "head" not in meta.raw:
        return None
    task = meta.task or "detect"
    if meta.raw.get("head") == "RTDETRDecoder" or meta.is_rtdetr:
        kind = "rtdetr"
    elif meta.nms_in_graph and "yolo_end2end" in found:
        kind = "yolo_end2end"
    else:
        kind = TASK_TYPES.get(task, "yolov8")
    if kind not in found or (kind == "yolo_end2end" and found[kind] != task):
        return None
    return Identification(kind, task, reason=f"Ultralytics metadata (task={task}"
                          f"{', end2end' if kind == 'yolo_end2end' else ''})")


def _with_layout(info: GraphInfo, ident: Identification) -> Identification:
    if ident.model_type == "rtdetr":
        ident.layout = rtdetr_layout(info)
    return ident


def rtdetr_layout(info: GraphInfo) -> str:
    """"deploy" (labels/boxes/scores), "topk" ([1, K, 6]) or "scores" ([1, Q, 4+nc])."""
    if _is_deploy_rtdetr(info):
        return "deploy"
    out = _main(info)
    if out is None or out[2] != 6:
        return "scores"
    names = info.metadata.names
    if names is not None and len(names) == 2:
        # 4 + 2 classes is also 6 wide: Ultralytics switched RT-DETR to the top-k form in 8.4.
        version = tuple(int(v) for v in info.metadata.raw.get("version", "0.0").split(".")[:2]
                        if v.isdigit())
        return "topk" if version >= (8, 4) else "scores"
    return "topk"
