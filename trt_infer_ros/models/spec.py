"""Data types shared by every layer: how a model wants its input, and what detection yields.

These are the contracts between preprocessing, runners, decoders and the ROS nodes; keep them
free of any runtime or ROS import.
"""
from __future__ import annotations

from dataclasses import dataclass, field

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

    def __post_init__(self) -> None:
        if self.layout not in ("NCHW", "NHWC"):
            raise ValueError(f"layout must be NCHW or NHWC, got {self.layout!r}")
        if self.color not in ("RGB", "BGR"):
            raise ValueError(f"color must be RGB or BGR, got {self.color!r}")
        if self.resize not in ("letterbox", "stretch"):
            raise ValueError(f"resize must be letterbox or stretch, got {self.resize!r}")
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

    def to_source(self, boxes: np.ndarray) -> np.ndarray:
        """Map x1,y1,x2,y2 boxes from network-input pixels to clipped source pixels."""
        out = np.empty_like(boxes, dtype=np.float32)
        out[:, 0::2] = (boxes[:, 0::2] - self.pad_x) / self.scale_x
        out[:, 1::2] = (boxes[:, 1::2] - self.pad_y) / self.scale_y
        np.clip(out[:, 0::2], 0, self.source_width, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, self.source_height, out=out[:, 1::2])
        return out


@dataclass
class Detections:
    """Final detections of one frame: boxes x1,y1,x2,y2 (float32), scores, integer class ids."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    class_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int32))

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def select(self, keep: np.ndarray) -> "Detections":
        """A new Detections holding only the rows picked by an index or mask array."""
        return Detections(self.boxes[keep], self.scores[keep], self.class_ids[keep])
