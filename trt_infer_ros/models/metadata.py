"""What Ultralytics writes into an ONNX file's `metadata_props`, parsed safely.

Ultralytics stores each value as text: `names` and `args` as Python dict literals
("{0: 'person', ...}"), `imgsz` and `kpt_shape` as lists ("[640, 640]" = height, width),
`stride` and `batch` as integers, `task` as a word, `end2end`, `dynamic` as "True"/"False".
Values are read with `ast.literal_eval` (literals only, nothing is executed); a value that does
not parse is left out and noted in `problems`.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Optional

from trt_infer_ros.models.labels import LabelsError, names_from

TASKS = ("detect", "segment", "pose", "obb", "classify")


@dataclass
class ModelMetadata:
    raw: dict[str, str] = field(default_factory=dict)
    names: Optional[list[str]] = None
    imgsz: Optional[tuple[int, int]] = None        # (height, width)
    stride: Optional[int] = None
    task: Optional[str] = None
    end2end: Optional[bool] = None
    batch: Optional[int] = None
    dynamic: Optional[bool] = None
    kpt_shape: Optional[tuple[int, int]] = None    # (keypoints, 2 or 3 values each)
    args: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def from_ultralytics(self) -> bool:
        return "Ultralytics" in self.raw.get("author", "") + self.raw.get("description", "") or \
            ("names" in self.raw and "task" in self.raw)

    @property
    def is_rtdetr(self) -> bool:
        text = (self.raw.get("description", "") + " " + str(self.args.get("model", ""))).lower()
        return "rt-detr" in text or "rtdetr" in text

    @property
    def nms_in_graph(self) -> bool:
        """True when the export put NMS (or an NMS-free head's top-k) inside the graph."""
        return bool(self.end2end) or bool(self.args.get("nms"))


def _literal(raw: dict[str, str], key: str, problems: list[str]):
    if key not in raw:
        return None
    try:
        return ast.literal_eval(raw[key].strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        problems.append(f"{key}={raw[key][:60]!r} does not parse")
        return None


def parse_metadata(raw: dict[str, str]) -> ModelMetadata:
    meta = ModelMetadata(raw=dict(raw))
    problems = meta.problems

    names = _literal(raw, "names", problems)
    if names is not None:
        try:
            meta.names = names_from(names, "metadata names")
        except LabelsError as exc:
            problems.append(str(exc))
    imgsz = _literal(raw, "imgsz", problems)
    if isinstance(imgsz, int):
        imgsz = [imgsz, imgsz]
    if isinstance(imgsz, (list, tuple)) and len(imgsz) == 2 and all(isinstance(v, int) and v > 0
                                                                     for v in imgsz):
        meta.imgsz = (int(imgsz[0]), int(imgsz[1]))
    elif imgsz is not None:
        problems.append(f"imgsz={raw['imgsz']!r} is not [height, width]")
    stride = _literal(raw, "stride", problems)
    meta.stride = int(stride) if isinstance(stride, (int, float)) and stride > 0 else None
    batch = _literal(raw, "batch", problems)
    meta.batch = int(batch) if isinstance(batch, int) else None
    for key in ("end2end", "dynamic"):
        value = _literal(raw, key, problems)
        setattr(meta, key, bool(value) if isinstance(value, (bool, int)) else None)
    task = raw.get("task", "").strip().lower()
    meta.task = task if task in TASKS else None
    if task and meta.task is None:
        problems.append(f"task={task!r} is not one of {', '.join(TASKS)}")
    kpt = _literal(raw, "kpt_shape", problems)
    if isinstance(kpt, (list, tuple)) and len(kpt) == 2 and all(isinstance(v, int) for v in kpt):
        meta.kpt_shape = (int(kpt[0]), int(kpt[1]))
    args = _literal(raw, "args", problems)
    meta.args = args if isinstance(args, dict) else {}
    if meta.end2end is None and "nms" in meta.args and meta.args.get("nms"):
        meta.end2end = True
    return meta
