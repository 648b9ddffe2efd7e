"""One-sentence explanations for model files that cannot be read.

The runtimes answer an empty, truncated or non-ONNX file with raw protobuf or loader text; users
need to know what is wrong with the file and what to do about it.
"""
from __future__ import annotations

import os
from pathlib import Path


class ModelFileError(ValueError):
    """A model file is missing or unreadable; the message says why and what to do."""


def check_model_file(path) -> None:
    """Raise ModelFileError for a path that cannot hold a model (missing, directory, empty)."""
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"model file {p} does not exist: check the path (model_path)")
    if p.is_dir():
        raise ModelFileError(f"model path {p} is a directory, not a model file: give the "
                             f".onnx (or engine) file inside it")
    if not p.is_file():
        raise ModelFileError(f"model path {p} is not a regular file: give an .onnx or engine file")
    if not os.access(p, os.R_OK):
        raise ModelFileError(f"model file {p} is not readable by this user: fix its permissions")
    if p.stat().st_size == 0:
        raise ModelFileError(f"model file {p} is empty (0 bytes): the export or copy did not "
                             f"finish; export the model again")


def unreadable_onnx(path, exc: BaseException) -> ModelFileError:
    """The error for an ONNX file that exists but does not parse or load."""
    p = Path(path)
    detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    head = _head(p)
    if head.lstrip().startswith((b"<", b"{", b"version https://git-lfs")):
        what = "is not an ONNX model (it is text: an HTML page, JSON or a Git LFS pointer)"
    elif head.startswith((b"PK", b"\x80")):
        what = "is not an ONNX model (it looks like a PyTorch checkpoint or zip archive)"
    else:
        what = "is not a complete ONNX model (truncated, corrupted or another format)"
    return ModelFileError(f"model file {p} {what}: export it to ONNX again and check the copy "
                          f"is whole (the runtime said: {detail})")


def _head(p: Path) -> bytes:
    try:
        with open(p, "rb") as f:
            return f.read(64)
    except OSError:
        return b""
