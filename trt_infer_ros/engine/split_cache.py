"""The backbone and head ONNX files of one model, split once and reused.

backbone_node and head_node both call `split_files(model, cut)`: the first one to start splits
the model into the cache, the other reuses the files (written under a temporary name and
renamed, so a reader never sees half a file). The file names carry a hash of the model's bytes
and of the cut, so a changed model or cut never reuses a stale split.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from trt_infer_ros.file_io import write_atomic
from trt_infer_ros.resources import user_cache_dir


@dataclass(frozen=True)
class SplitFiles:
    backbone: str
    head: str
    cut_tensors: tuple
    reused: bool


def default_cache_dir() -> Path:
    return user_cache_dir() / "split"


def _key(model_path: str, cut: Sequence[str]) -> str:
    digest = hashlib.sha256()
    with open(model_path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    digest.update(("\0".join(cut) or "<suggested>").encode())
    return digest.hexdigest()[:16]


def split_files(model_path: str, cut_tensors: Optional[Sequence[str]] = None,
                cache_dir: Optional[str] = None) -> SplitFiles:
    """Paths of the backbone and head ONNX of `model_path` cut at `cut_tensors` (empty: the
    suggested cut), split now unless the cache holds them."""
    from trt_infer_ros.engine.onnx_split import split_model

    cut = [t.strip() for t in (cut_tensors or []) if t.strip()]
    directory = Path(cache_dir) if cache_dir else default_cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{Path(model_path).stem}.{_key(model_path, cut)}"
    backbone, head = directory / f"{stem}.backbone.onnx", directory / f"{stem}.head.onnx"
    record = directory / f"{stem}.split.json"
    if backbone.is_file() and head.is_file() and record.is_file():
        try:
            saved = json.loads(record.read_text(encoding="utf-8"))
            return SplitFiles(str(backbone), str(head), tuple(saved["cut_tensors"]), True)
        except (OSError, ValueError, KeyError):
            pass                                    # rewrite a damaged record below
    result = split_model(model_path, cut or None)
    for model, path in ((result.backbone, backbone), (result.head, head)):
        write_atomic(path, model.SerializeToString())
    write_atomic(record, json.dumps({"model": str(model_path),
                                      "cut_tensors": list(result.cut_tensors)}).encode())
    return SplitFiles(str(backbone), str(head), tuple(result.cut_tensors), False)
