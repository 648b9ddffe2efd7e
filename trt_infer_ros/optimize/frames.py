"""The user's images as model inputs: read from a directory or a rosbag, optionally multiplied by
augmentation, and preprocessed by the model adapter exactly as inference preprocesses them.

A `Frame` keeps the input tensor and the source -> input transform, so detections come back in
source pixels like the detector node's. Every image must be readable: one that is not stops the
analysis with its name (a silently skipped image would change the measure).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from trt_infer_ros.engine.options import IMAGE_SUFFIXES
from trt_infer_ros.models.spec import ImageTransform


class ImageInputError(ValueError):
    """No usable images: a missing or empty directory, an unreadable image, a bad bag or topic."""


@dataclass
class SourceImage:
    name: str
    image: np.ndarray            # HxWx3 uint8
    encoding: str


@dataclass
class Frame:
    name: str
    tensor: np.ndarray           # the model's batch-1 input
    transform: ImageTransform

    @property
    def size(self) -> tuple[int, int]:
        return self.transform.source_width, self.transform.source_height


def read_directory(directory: str, limit: int = 0) -> list[SourceImage]:
    import cv2  # noqa: PLC0415
    if not os.path.isdir(directory):
        raise ImageInputError(f"{directory!r} is not a directory of images")
    names = sorted(f for f in os.listdir(directory) if f.lower().endswith(IMAGE_SUFFIXES))
    if not names:
        raise ImageInputError(f"no .jpg/.png/.bmp images in {directory!r}")
    names = names[:limit] if limit > 0 else names
    images, bad = [], []
    for name in names:
        image = cv2.imread(os.path.join(directory, name), cv2.IMREAD_COLOR)
        if image is None:
            bad.append(name)
        else:
            images.append(SourceImage(name, image, "bgr8"))
    if bad:
        raise ImageInputError(f"{len(bad)} image(s) in {directory!r} cannot be decoded: "
                              f"{', '.join(bad[:5])}; remove or re-encode them")
    return images


def read_bag(bag: str, topic: str = "", limit: int = 0) -> list[SourceImage]:
    from trt_infer_ros.engine.bag_reader import BagError, probe_bag, read_images  # noqa: PLC0415
    try:
        chosen = probe_bag(bag, topic)
        images = []
        for i, message in enumerate(read_images(bag, chosen)):
            if limit and i >= limit:
                break
            images.append(SourceImage(f"{os.path.basename(bag.rstrip('/'))}#{i}",
                                      np.asarray(message.image), message.encoding))
    except BagError as exc:
        raise ImageInputError(str(exc)) from exc
    if not images:
        raise ImageInputError(f"{bag}: no images on {chosen!r}")
    return images


def read_images(directory: str = "", bag: str = "", topic: str = "",
                limit: int = 0) -> list[SourceImage]:
    if directory and bag:
        raise ImageInputError("give a directory of images or a bag, not both")
    if directory:
        return read_directory(directory, limit)
    if bag:
        return read_bag(bag, topic, limit)
    raise ImageInputError("no images: give a directory of images or a rosbag")


def augment(images: Sequence[SourceImage], copies: int, seed: int = 0) -> list[SourceImage]:
    """`copies` variants of each image: horizontal flip, a random crop (60-100 % of each side)
    and colour jitter (brightness, contrast, per-channel gain), for more frames from few photos."""
    import cv2  # noqa: PLC0415
    rng = np.random.default_rng(seed)
    out = []
    for src in images:
        rgb = src.image if src.image.ndim == 3 else cv2.cvtColor(src.image, cv2.COLOR_GRAY2BGR)
        h, w = rgb.shape[:2]
        for k in range(copies):
            image = rgb[:, ::-1] if rng.random() < 0.5 else rgb
            ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            image = image[y:y + ch, x:x + cw].astype(np.float32)
            gain = rng.uniform(0.85, 1.15, 3) * rng.uniform(0.7, 1.3)
            mean = image.mean()
            image = (image - mean) * rng.uniform(0.7, 1.3) + mean
            image = np.clip(image * gain, 0, 255).astype(np.uint8)
            out.append(SourceImage(f"{src.name}~aug{k}", np.ascontiguousarray(image),
                                   src.encoding if src.image.ndim == 3 else "bgr8"))
    return out


def prepare(adapter, images: Sequence[SourceImage]) -> list[Frame]:
    """Each image through the adapter's preprocessing (the detector's own)."""
    from trt_infer_ros.pipeline.preprocess import preprocess  # noqa: PLC0415
    frames = []
    for src in images:
        try:
            tensor, transform = preprocess(src.image, src.encoding, adapter.input_spec)
        except ValueError as exc:
            raise ImageInputError(f"{src.name}: the {adapter.model_type} preprocessing cannot "
                                  f"read it ({exc})") from exc
        frames.append(Frame(src.name, tensor, transform))
    return frames


def split(frames: Sequence, holdout: float) -> tuple[list, list]:
    """(calibration, held-out): every n-th frame held out so both see every source image."""
    if not 0 < holdout < 1:
        raise ValueError(f"held-out fraction {holdout} must be between 0 and 1")
    step = max(int(round(1 / holdout)), 2)
    held = [f for i, f in enumerate(frames) if i % step == step - 1]
    calib = [f for i, f in enumerate(frames) if i % step != step - 1]
    if not held or not calib:
        raise ImageInputError(f"{len(frames)} image(s) cannot be split into calibration and "
                              "held-out sets; give more images or a separate validation set")
    return calib, held


def load_frames(adapter, directory: str = "", bag: str = "", topic: str = "", limit: int = 0,
                copies: int = 0, seed: int = 0) -> list[Frame]:
    images = read_images(directory, bag, topic, limit)
    if copies > 0:
        images = images + augment(images, copies, seed)
    return prepare(adapter, images)


def optional_frames(adapter, directory: str, bag: str, topic: str, limit: int,
                    copies: int, seed: int) -> Optional[list[Frame]]:
    if not directory and not bag:
        return None
    return load_frames(adapter, directory, bag, topic, limit, copies, seed)
