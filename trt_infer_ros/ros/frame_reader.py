"""Frames from a directory of images or a video file, as BGR uint8 arrays."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def iterate_frames(source: Path) -> Iterator[np.ndarray]:
    """One pass over the source's frames; unreadable image files are skipped with no frame."""
    if source.is_dir():
        for path in image_files(source):
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is not None:
                yield frame
        return
    capture = cv2.VideoCapture(str(source))
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield frame
    finally:
        capture.release()


def image_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def check_source(source: Path) -> None:
    """Raise a clear error when the source cannot produce a single frame."""
    if not source.exists():
        raise FileNotFoundError(f"source: no such file or directory {str(source)!r}")
    if source.is_dir():
        if not image_files(source):
            raise ValueError(f"source: {str(source)!r} holds no images "
                             f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        return
    capture = cv2.VideoCapture(str(source))
    opened = capture.isOpened()
    capture.release()
    if not opened:
        raise ValueError(f"source: OpenCV cannot open {str(source)!r} as a video")


def convert_bgr(frame: np.ndarray, encoding: str) -> np.ndarray:
    """A BGR frame in the requested output encoding (bgr8, rgb8 or mono8)."""
    if encoding == "rgb8":
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    if encoding == "mono8":
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    return frame
