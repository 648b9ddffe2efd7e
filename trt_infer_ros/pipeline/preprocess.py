"""Image -> network input tensor: colour order, resize (letterbox or stretch), scale, layout."""
from __future__ import annotations

import functools
from typing import Optional

import cv2
import numpy as np

from trt_infer_ros.models.spec import CHANNELS, ImageTransform, InputSpec

ENCODINGS = tuple(CHANNELS)

# (encoding, wanted colour order) -> cv2 conversion code; None means the order already matches.
COLOR_CONVERSIONS = {
    ("bgr8", "BGR"): None, ("bgr8", "RGB"): cv2.COLOR_BGR2RGB,
    ("rgb8", "RGB"): None, ("rgb8", "BGR"): cv2.COLOR_RGB2BGR,
    ("bgra8", "BGR"): cv2.COLOR_BGRA2BGR, ("bgra8", "RGB"): cv2.COLOR_BGRA2RGB,
    ("rgba8", "RGB"): cv2.COLOR_RGBA2RGB, ("rgba8", "BGR"): cv2.COLOR_RGBA2BGR,
    ("mono8", "RGB"): cv2.COLOR_GRAY2RGB, ("mono8", "BGR"): cv2.COLOR_GRAY2BGR,
}


def convert_color(image: np.ndarray, encoding: str, color: str) -> np.ndarray:
    """`image` in `color` order ("RGB" or "BGR", 3 channels); the input itself when it already is."""
    code = COLOR_CONVERSIONS[(encoding, color)]
    return cv2.cvtColor(image, code) if code is not None else image


def compute_transform(width: int, height: int, spec: InputSpec) -> tuple[ImageTransform, int, int]:
    """Source -> input mapping and the resized size (before padding) for a WxH source."""
    if spec.resize == "stretch":
        return ImageTransform(spec.width / width, spec.height / height, 0.0, 0.0, width, height), \
            spec.width, spec.height
    ratio = min(spec.width / width, spec.height / height)
    new_w = max(1, min(spec.width, int(round(width * ratio))))
    new_h = max(1, min(spec.height, int(round(height * ratio))))
    if spec.pad_placement == "top_left":
        left, top = 0, 0                  # YOLOX pads only the bottom and right
    else:
        left, top = (spec.width - new_w) // 2, (spec.height - new_h) // 2
    # The per-axis ratio of the rounded size is what the resize really applied.
    return ImageTransform(new_w / width, new_h / height, float(left), float(top), width, height), \
        new_w, new_h


def validated_image(image: np.ndarray, encoding: str) -> np.ndarray:
    """`image` as HxWxC (HxW for mono8) after checking it fits `encoding`; a clear error if not."""
    if encoding not in CHANNELS:
        raise ValueError(f"unsupported encoding {encoding!r}; supported: {', '.join(ENCODINGS)}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    channels = CHANNELS[encoding]
    if image.ndim == 2 and channels == 1:
        return image
    if image.ndim == 3 and image.shape[2] == channels:
        return image[:, :, 0] if channels == 1 else image
    raise ValueError(f"{encoding} image must be HxWx{channels}, got shape {image.shape}")


def _resized(image: np.ndarray, encoding: str, spec: InputSpec,
             channels_last: bool = True) -> tuple[np.ndarray, ImageTransform, int, int]:
    """The uint8 image resized to its place in the network input, its transform, and where it
    goes in the input (top, left). `channels_last`: in the network's colour order (HxWx3);
    otherwise still in `encoding`'s channels (the planes are picked from it later)."""
    img = validated_image(image, encoding)
    h, w = img.shape[:2]
    transform, new_w, new_h = compute_transform(w, h, spec)
    # cv2 takes arbitrary row strides but wants each row's pixels packed together.
    if img.strides[-1] != 1 or (img.ndim == 3 and img.strides[1] != img.shape[2]):
        img = np.ascontiguousarray(img)
    if (new_w, new_h) != (w, h):
        img = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if channels_last:
        img = convert_color(img, encoding, spec.color)
    return img, transform, int(transform.pad_y), int(transform.pad_x)


def _to_uint8_canvas(image: np.ndarray, encoding: str, spec: InputSpec) -> tuple[np.ndarray, ImageTransform]:
    """The HxWx3 uint8 network-size image (padding included) and its transform."""
    img, transform, top, left = _resized(image, encoding, spec)
    if img.shape[:2] == (spec.height, spec.width):
        return img, transform
    canvas = np.full((spec.height, spec.width, 3), spec.pad_value, np.uint8)
    canvas[top:top + img.shape[0], left:left + img.shape[1]] = img
    return canvas, transform


@functools.lru_cache(maxsize=16)
def _lookup_tables(spec: InputSpec) -> np.ndarray:
    """[3, 256] table: uint8 value -> (value * scale - mean) / std per channel, in spec.dtype.

    One table lookup per pixel replaces multiply, subtract and the float16 cast (which numpy
    does slowly); the values equal the float32 arithmetic cast to the output dtype.
    """
    values = np.arange(256, dtype=np.float32)[None, :] * np.float32(spec.scale)
    table = (values - np.asarray(spec.mean, np.float32)[:, None]) / np.asarray(spec.std, np.float32)[:, None]
    return table.astype(spec.dtype)


@functools.lru_cache(maxsize=16)
def _interleaved_table(spec: InputSpec) -> np.ndarray:
    """_lookup_tables as a [256, 1, 3] table: cv2.LUT's per-channel form."""
    return np.ascontiguousarray(_lookup_tables(spec).T).reshape(256, 1, 3)


def _network_planes(img: np.ndarray, encoding: str, color: str) -> list:
    """The three HxW uint8 planes of `img` (in `encoding`'s channels) in the network's colour
    order: a colour conversion becomes a choice of planes, no pass over the pixels."""
    if img.ndim == 2:
        return [img] * 3
    planes = cv2.split(img)
    in_rgb_order = encoding.startswith("rgb")
    return planes[:3] if in_rgb_order == (color == "RGB") else planes[2::-1]


@functools.lru_cache(maxsize=16)
def _is_plain_cast(spec: InputSpec) -> bool:
    """float32 input of the pixel values themselves (scale 1, mean 0, std 1): a cast gives
    exactly the table's values, faster than looking them up."""
    return (np.dtype(spec.dtype) == np.float32 and spec.scale == 1 and not any(spec.mean)
            and all(v == 1 for v in spec.std))


def _lookup_into(src: np.ndarray, table: np.ndarray, dst: np.ndarray, plain_cast: bool) -> None:
    """dst[...] = table[src] per channel, in one pass written straight into `dst`: a cast
    where the table is the identity, else cv2.LUT."""
    if plain_cast:
        dst[...] = src
        return
    out = cv2.LUT(src, table, dst=dst)
    if out is not dst and not np.may_share_memory(out, dst):
        dst[...] = out              # a cv2 that would not write into this view


def _convert_interleaved(img: np.ndarray, window: np.ndarray, spec: InputSpec,
                         tables: np.ndarray) -> None:
    """HxWx3 uint8 (network colour order) -> its HxWx3 window of an NHWC tensor."""
    if window.dtype == np.float32:
        _lookup_into(img, _interleaved_table(spec), window, _is_plain_cast(spec))
        return
    for c in range(3):                      # float16: cv2.LUT has no float16 table before 5.0
        # mode="clip" skips bounds checks and buffering; uint8 indices are always in range.
        np.take(tables[c], img[:, :, c], out=window[:, :, c], mode="clip")


def _convert_plane(plane: np.ndarray, window: np.ndarray, table: np.ndarray,
                   plain_cast: bool) -> None:
    """One HxW uint8 plane -> its HxW window of one channel of an NCHW tensor."""
    if window.dtype == np.float32:
        _lookup_into(plane, table, window, plain_cast)
    else:
        np.take(table, plane, out=window, mode="clip")


def _fill_padding(tensor: np.ndarray, layout: str, top: int, left: int, h: int, w: int,
                  values: np.ndarray) -> None:
    """Set the letterbox bands around the [top:top+h, left:left+w] window to `values` (one per
    channel), a plane at a time for NCHW and with a scalar when the channels agree (the fast
    numpy fills)."""
    if layout == "NHWC":
        planes = [(tensor[0], values[0])] if (values == values[0]).all() else [(tensor[0], values)]
    else:
        planes = [(tensor[0, c], values[c]) for c in range(tensor.shape[1])]
    for plane, value in planes:
        plane[:top] = value
        plane[top + h:] = value
        plane[top:top + h, :left] = value
        plane[top:top + h, left + w:] = value


def preprocess(image: np.ndarray, encoding: str, spec: InputSpec) -> tuple[np.ndarray, ImageTransform]:
    """Turn a uint8 HxWxC (or HxW) image view into the batch-1 input tensor described by `spec`
    (a new array on every call; `InputBuffer` rewrites one)."""
    tensor = np.empty(spec.shape, spec.dtype)
    transform, _ = write_input(tensor, image, encoding, spec)
    return tensor, transform


class InputBuffer:
    """One input tensor rewritten frame after frame, for a pipeline that runs one frame at a
    time: no multi-megabyte allocation per frame (fresh pages cost page faults), and the
    letterbox bands are written only when the image's place in the input changes.

    `(image, encoding)` -> (tensor, transform); the tensor is only valid until the next call."""

    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec
        self.tensor = np.empty(spec.shape, spec.dtype)
        self._padded_window: Optional[tuple] = None

    def __call__(self, image: np.ndarray, encoding: str) -> tuple[np.ndarray, ImageTransform]:
        transform, self._padded_window = write_input(self.tensor, image, encoding, self.spec,
                                                     self._padded_window)
        return self.tensor, transform


def write_input(tensor: np.ndarray, image: np.ndarray, encoding: str, spec: InputSpec,
                padded_window: Optional[tuple] = None) -> tuple[ImageTransform, tuple]:
    """Write the input for `image` into `tensor` (spec.shape, spec.dtype); returns its transform
    and the window (top, left, height, width) the pixels went to.

    The resized pixels are converted straight into their window of the tensor and the padding
    bands get the padding value's converted value: the same numbers as converting the padded
    uint8 canvas, without building it. The bands are left as they are when `padded_window` says
    they were written for this same window already."""
    img, transform, top, left = _resized(image, encoding, spec, channels_last=spec.layout == "NHWC")
    h, w = img.shape[:2]
    window = (top, left, h, w)
    tables = _lookup_tables(spec)
    if (h, w) != (spec.height, spec.width) and window != padded_window:
        _fill_padding(tensor, spec.layout, top, left, h, w, tables[:, spec.pad_value])
    if spec.layout == "NHWC":
        _convert_interleaved(img, tensor[0, top:top + h, left:left + w], spec, tables)
    else:
        planes = _network_planes(img, encoding, spec.color)
        for c, plane in enumerate(planes):
            _convert_plane(plane, tensor[0, c, top:top + h, left:left + w], tables[c],
                           _is_plain_cast(spec))
    return transform, window
