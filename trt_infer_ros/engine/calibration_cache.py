"""TensorRT's INT8 calibration cache, read and written by our own code.

The format is text: a header line `TRT-<version code>-<algorithm>` (e.g.
`TRT-8601-EntropyCalibration2`), then one line per tensor `<tensor name>: <scale>` where the
scale is the 32-bit IEEE float's bit pattern in hex (`3c010204`). The scale maps int8 to real
values: real = int8 * scale, so a tensor's dynamic range is 127 * scale.

A companion `<cache>.meta.json` (ours) records what the cache was computed from -- ONNX sha256,
algorithm, preprocessing, image source -- so a cache is reused only when it matches.
"""
from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from typing import Optional

from trt_infer_ros.file_io import write_atomic

ALGORITHM_HEADERS = {
    "entropy2": "EntropyCalibration2",
    "entropy": "EntropyCalibration",
    "minmax": "MinMaxCalibration",
    "legacy": "LegacyCalibration",
    # our percentile calibration is delivered to TensorRT through an entropy2 calibrator's cache
    "percentile": "EntropyCalibration2",
}


class CalibrationCacheError(ValueError):
    pass


def float_to_hex(value: float) -> str:
    return struct.pack(">f", float(value)).hex()


def hex_to_float(text: str) -> float:
    raw = bytes.fromhex(text.strip().rjust(8, "0"))
    if len(raw) != 4:
        raise CalibrationCacheError(f"scale {text!r} is not a 32-bit hex float")
    return struct.unpack(">f", raw)[0]


@dataclass
class CalibrationCache:
    version_code: int
    algorithm: str                       # header name, e.g. "EntropyCalibration2"
    scales: dict = field(default_factory=dict)   # tensor name -> float scale

    @property
    def header(self) -> str:
        return f"TRT-{self.version_code}-{self.algorithm}"

    def dynamic_range(self, tensor: str) -> float:
        return 127.0 * self.scales[tensor]

    def to_text(self) -> str:
        lines = [self.header] + [f"{name}: {float_to_hex(scale)}" for name, scale in
                                 self.scales.items()]
        return "\n".join(lines) + "\n"

    def to_bytes(self) -> bytes:
        return self.to_text().encode("utf-8")

    @classmethod
    def parse(cls, data) -> "CalibrationCache":
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray, memoryview)) else data
        if isinstance(text, memoryview):
            text = bytes(text).decode("utf-8")
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if not lines:
            raise CalibrationCacheError("calibration cache is empty")
        header = lines[0].strip()
        parts = header.split("-", 2)
        if len(parts) != 3 or parts[0] != "TRT" or not parts[1].isdigit():
            raise CalibrationCacheError(f"not a TensorRT calibration cache header: {header!r}")
        cache = cls(int(parts[1]), parts[2])
        for number, line in enumerate(lines[1:], start=2):
            name, sep, value = line.rpartition(":")
            if not sep or not name:
                raise CalibrationCacheError(f"line {number}: expected '<tensor>: <hex scale>', "
                                            f"got {line!r}")
            try:
                cache.scales[name.strip()] = hex_to_float(value)
            except ValueError as exc:
                raise CalibrationCacheError(f"line {number}: bad scale in {line!r}") from exc
        return cache

    @classmethod
    def from_dynamic_ranges(cls, version_code: int, algorithm: str,
                            ranges: dict) -> "CalibrationCache":
        return cls(version_code, algorithm,
                   {name: max(float(r), 1e-12) / 127.0 for name, r in ranges.items()})


def read_cache(path: str) -> Optional[bytes]:
    if path and os.path.isfile(path):
        with open(path, "rb") as f:
            return f.read()
    return None


def write_cache(path: str, data: bytes, meta: Optional[dict] = None) -> None:
    """The cache and its meta, each replaced in one step (a failed write leaves no temporary
    file and the previous cache whole)."""
    write_atomic(path, bytes(data))
    if meta is not None:
        write_atomic(meta_path(path), json.dumps(meta, indent=2, sort_keys=True).encode())


def meta_path(cache_path: str) -> str:
    return cache_path + ".meta.json"


def read_meta(cache_path: str) -> Optional[dict]:
    path = meta_path(cache_path)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def cache_matches(cache_path: str, algorithm: str, expected_meta: dict) -> tuple[bool, str]:
    """Whether the cache at `cache_path` may be reused; the string says why (for the log)."""
    data = read_cache(cache_path)
    if data is None:
        return False, f"no calibration cache at {cache_path!r}"
    try:
        cache = CalibrationCache.parse(data)
    except CalibrationCacheError as exc:
        return False, f"calibration cache {cache_path!r} is unreadable ({exc})"
    if cache.algorithm != ALGORITHM_HEADERS[algorithm]:
        return False, (f"calibration cache {cache_path!r} was made by {cache.algorithm}, "
                       f"algorithm {algorithm} wants {ALGORITHM_HEADERS[algorithm]}")
    meta = read_meta(cache_path)
    if meta is None:
        return True, (f"reusing calibration cache {cache_path!r} (no {meta_path(cache_path)!r}: "
                      "it cannot be checked against this ONNX and preprocessing)")
    diffs = [k for k in sorted(expected_meta) if meta.get(k) != expected_meta[k]]
    if diffs:
        return False, f"calibration cache {cache_path!r} was made with different {', '.join(diffs)}"
    return True, f"reusing calibration cache {cache_path!r} (matches ONNX and preprocessing)"
