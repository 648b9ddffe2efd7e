"""The fixed set of frames a benchmark plays: photos from a directory (the bundled ones by
default), decoded once and resized to one camera resolution so every frame costs the same."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from trt_infer_ros.resources import sample_images_dir


def parse_size(text: str) -> Optional[tuple]:
    """'1280x720' -> (1280, 720); 'native' -> None (each photo as it is)."""
    if text == "native":
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size must be WIDTHxHEIGHT or native, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"size must be positive, got {text!r}")
    return w, h


def load_frames(directory: Optional[Path] = None, size: Optional[tuple] = (1280, 720)) -> list:
    """BGR uint8 arrays, sorted by file name."""
    from trt_infer_ros.ros.frame_reader import image_files

    directory = Path(directory) if directory else sample_images_dir()
    frames = []
    for path in image_files(directory):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        if size is not None:
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        frames.append(np.ascontiguousarray(image))
    if not frames:
        raise ValueError(f"no readable images in {directory}")
    return frames
