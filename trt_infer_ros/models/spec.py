"""Data types shared by every layer: how a model wants its input, and what detection yields.

These are the contracts between preprocessing, runners, decoders and the ROS nodes; keep them
free of any runtime or ROS import.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional

import numpy as np

# The image encodings every stage takes (8 bits per channel, so byte order never matters),
# with their channel counts.
CHANNELS = {"bgr8": 3, "rgb8": 3, "mono8": 1, "bgra8": 4, "rgba8": 4}


@dataclass(frozen=True)
class InputSpec:
    """Everything preprocessing needs to turn a uint8 HxWxC image into the network input."""

    width: int
    height: int
    layout: str = "NCHW"          # "NCHW" or "NHWC"
    color: str = "RGB"            # channel order the network expects: "RGB" or "BGR"
    resize: str = "letterbox"     # "letterbox" (keep aspect, pad) or "stretch"
    scale: float = 1.0 / 255.0    # applied after the uint8 -> float cast
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)   # subtracted after scaling
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)    # divided after the mean
    pad_value: int = 114          # letterbox border, in uint8 units before scaling
    dtype: str = "float32"        # "float32" or "float16"
    # Where the letterboxed image sits: "center" (Ultralytics, CenterNet) or "top_left" (YOLOX:
    # padding only at the bottom and right). Boxes are off by the padding if this is wrong.
    pad_placement: str = "center"

    def __post_init__(self) -> None:
        if self.layout not in ("NCHW", "NHWC"):
            raise ValueError(f"layout must be NCHW or NHWC, got {self.layout!r}")
        if self.color not in ("RGB", "BGR"):
            raise ValueError(f"color must be RGB or BGR, got {self.color!r}")
        if self.resize not in ("letterbox", "stretch"):
            raise ValueError(f"resize must be letterbox or stretch, got {self.resize!r}")
        if self.pad_placement not in ("center", "top_left"):
            raise ValueError(f"pad_placement must be center or top_left, got {self.pad_placement!r}")
        if self.dtype not in ("float32", "float16"):
            raise ValueError(f"dtype must be float32 or float16, got {self.dtype!r}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"input size must be positive, got {self.width}x{self.height}")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """The batch-1 tensor shape this spec produces."""
        if self.layout == "NCHW":
            return (1, 3, self.height, self.width)
        return (1, self.height, self.width, 3)


@dataclass(frozen=True)
class ImageTransform:
    """How source pixels map to network-input pixels: input = source * scale + pad.

    Kept so boxes found in network-input pixels can be mapped back exactly.
    """

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    source_width: int
    source_height: int

    def to_source(self, boxes: np.ndarray, clip: bool = True) -> np.ndarray:
        """Map x1,y1,x2,y2 boxes from network-input pixels to (clipped) source pixels."""
        out = np.empty_like(boxes, dtype=np.float32)
        out[:, 0::2] = (boxes[:, 0::2] - self.pad_x) / self.scale_x
        out[:, 1::2] = (boxes[:, 1::2] - self.pad_y) / self.scale_y
        if clip:
            np.clip(out[:, 0::2], 0, self.source_width, out=out[:, 0::2])
            np.clip(out[:, 1::2], 0, self.source_height, out=out[:, 1::2])
        return out

    def points_to_source(self, points: np.ndarray) -> np.ndarray:
        """Map [..., 2+] x, y(, score) points to source pixels; extra columns are kept."""
        out = np.array(points, dtype=np.float32, copy=True)
        out[..., 0] = (out[..., 0] - self.pad_x) / self.scale_x
        out[..., 1] = (out[..., 1] - self.pad_y) / self.scale_y
        return out


@dataclass
class Detections:
    """Final detections of one frame, one row per detection.

    Always present:
      boxes      [N, 4] float32  x1, y1, x2, y2 (network-input pixels inside the decoders,
                                 source-image pixels out of the pipeline, letterbox undone).
      scores     [N]    float32
      class_ids  [N]    int32
    Present only for the heads that produce them (None otherwise):
      angles     [N]    float32  oriented boxes (OBB): rotation in radians, counter-clockwise
                                 positive as in image coordinates (x right, y down), of the
                                 rectangle `boxes` about its centre; `boxes` is the rectangle
                                 before rotation (its centre and size are the oriented box's).
      keypoints  [N, K, 3] float32  pose: x, y (same pixels as `boxes`) and a 0..1 confidence
                                 per keypoint (1.0 where the model gives none).
      masks      InstanceMasks (models/masks.py): segmentation; `masks.id_image()` renders the
                                 [H, W] uint16 instance image (0 background, i + 1 = row i),
                                 `masks.boolean()` the [N, H, W] bool masks, in source pixels.
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    class_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int32))
    angles: Optional[np.ndarray] = None
    keypoints: Optional[np.ndarray] = None
    masks: Optional[Any] = None

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def select(self, keep: np.ndarray) -> "Detections":
        """A new Detections holding only the rows picked by an index or mask array."""
        def pick(a):
            return None if a is None else a[keep] if isinstance(a, np.ndarray) else a.select(keep)
        return Detections(self.boxes[keep], self.scores[keep], self.class_ids[keep],
                          pick(self.angles), pick(self.keypoints), pick(self.masks))

    def finite_rows(self) -> np.ndarray:
        """Mask of rows whose numbers are all finite (boxes, scores, angles, keypoints)."""
        ok = np.isfinite(self.boxes).all(axis=1) & np.isfinite(self.scores)
        if self.angles is not None:
            ok &= np.isfinite(self.angles)
        if self.keypoints is not None:
            ok &= np.isfinite(self.keypoints).all(axis=(1, 2))
        return ok

    def to_source(self, transform: ImageTransform) -> "Detections":
        """These network-input detections in source-image pixels (letterbox undone); a box that
        clipping to the image leaves without area (it lay in the padding or outside) is dropped."""
        # A rotated rectangle is not clipped: clipping its unrotated form would change its shape.
        clip = self.angles is None
        boxes = transform.to_source(self.boxes, clip=clip)
        keypoints = None if self.keypoints is None else transform.points_to_source(self.keypoints)
        masks = None if self.masks is None else self.masks.in_source(transform)
        result = replace(self, boxes=boxes, keypoints=keypoints, masks=masks)
        return result.with_area() if clip else result

    def with_area(self) -> "Detections":
        """Only the rows whose box has a positive width and height."""
        keep = (self.boxes[:, 2] > self.boxes[:, 0]) & (self.boxes[:, 3] > self.boxes[:, 1])
        return self if keep.all() else self.select(keep)
