"""The JSON file written next to every engine: what it was built from, with what, for what.

`<engine>.json` records the TensorRT version, GPU name and compute capability, DLA core, the
ONNX file's sha256, every build setting, the calibration cache's sha256, the engine file's own
sha256 and the input/output tensor specs. `compare()` lists every difference between a sidecar
and what a loader expects; engine_loader turns differences into an error or a rebuild.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

from trt_infer_ros.file_io import write_atomic

FORMAT = "trt_infer_ros.engine/1"


@dataclass
class TensorSpec:
    name: str
    mode: str                       # "input" or "output"
    shape: list                     # -1 for dynamic dimensions
    dtype: str                      # float32, float16, int8, int32, ...
    profile: Optional[dict] = None  # inputs with dynamic shapes: {"min": [...], "opt":..., "max":...}


@dataclass
class EngineSidecar:
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    dla_core: int
    onnx_path: str
    onnx_sha256: str
    engine_sha256: str
    build_settings: dict
    calibration_cache_sha256: Optional[str] = None
    inputs: list = field(default_factory=list)      # list[TensorSpec]
    outputs: list = field(default_factory=list)
    plugins: list = field(default_factory=list)     # plugin library paths needed to deserialize
    dla_summary: Optional[dict] = None
    build_seconds: Optional[float] = None
    created_utc: str = ""
    format: str = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "EngineSidecar":
        data = dict(data)
        data["inputs"] = [TensorSpec(**t) for t in data.get("inputs", [])]
        data["outputs"] = [TensorSpec(**t) for t in data.get("outputs", [])]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


class SidecarError(RuntimeError):
    """The sidecar is missing or unreadable."""


def sidecar_path(engine_path: str) -> str:
    return engine_path + ".json"


def write_sidecar(engine_path: str, sidecar: EngineSidecar) -> str:
    if not sidecar.created_utc:
        sidecar.created_utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path = sidecar_path(engine_path)
    write_atomic(path, (sidecar.to_json() + "\n").encode("utf-8"))
    return path


def read_sidecar(engine_path: str) -> EngineSidecar:
    path = sidecar_path(engine_path)
    if not os.path.isfile(path):
        raise SidecarError(
            f"engine {engine_path!r} has no sidecar {path!r}; without it nothing says which ONNX, "
            "TensorRT version and GPU the engine was built for. Rebuild it with "
            "engine_builder_node (or set on_mismatch:=rebuild).")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
        return EngineSidecar.from_dict(data)
    except (ValueError, TypeError, KeyError) as exc:
        raise SidecarError(f"sidecar {path!r} is unreadable ({exc}); rebuild the engine") from exc


@dataclass(frozen=True)
class Mismatch:
    field: str
    recorded: object
    expected: object

    def __str__(self) -> str:
        return f"{self.field}: engine has {self.recorded!r}, expected {self.expected!r}"


def compare(sidecar: EngineSidecar, *, engine_sha256: Optional[str] = None,
            tensorrt_version: Optional[str] = None, gpu_name: Optional[str] = None,
            compute_capability: Optional[str] = None, dla_core: Optional[int] = None,
            onnx_sha256: Optional[str] = None, build_settings: Optional[dict] = None,
            calibration_cache_sha256: Optional[str] = None) -> list[Mismatch]:
    """Every difference between the sidecar and the expectations given (None: not checked)."""
    out: list[Mismatch] = []

    def check(name: str, recorded, expected) -> None:
        if expected is not None and recorded != expected:
            out.append(Mismatch(name, recorded, expected))

    check("engine_sha256", sidecar.engine_sha256, engine_sha256)
    check("tensorrt_version", sidecar.tensorrt_version, tensorrt_version)
    if gpu_name not in (None, "unknown"):
        check("gpu_name", sidecar.gpu_name, gpu_name)
    if compute_capability not in (None, "unknown"):
        check("compute_capability", sidecar.compute_capability, compute_capability)
    check("dla_core", sidecar.dla_core, dla_core)
    check("onnx_sha256", sidecar.onnx_sha256, onnx_sha256)
    check("calibration_cache_sha256", sidecar.calibration_cache_sha256, calibration_cache_sha256)
    if build_settings is not None:
        for key in sorted(set(build_settings) | set(sidecar.build_settings)):
            check(f"build_settings.{key}", sidecar.build_settings.get(key),
                  build_settings.get(key))
    return out
