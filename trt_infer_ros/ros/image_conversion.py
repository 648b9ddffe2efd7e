"""sensor_msgs/Image <-> numpy without copying where the layout allows.

The arrays returned here are views on the message buffer: the same result cv_bridge's
imgmsg_to_cv2(msg, "passthrough") gives for these encodings, without its OpenCV coupling.
"""
from __future__ import annotations

import numpy as np

from trt_infer_ros.models.spec import CHANNELS


class ImageConversionError(ValueError):
    """A message that cannot be read as an image; the message says what is wrong."""


def image_to_array(msg) -> np.ndarray:
    """A read-only HxWxC (HxW for mono8) uint8 view on `msg.data`, honouring `msg.step`."""
    encoding = msg.encoding.lower()
    if encoding not in CHANNELS:
        raise ImageConversionError(
            f"unsupported encoding {msg.encoding!r}; supported: {', '.join(CHANNELS)}")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"image has zero size ({width}x{height})")
    channels = CHANNELS[encoding]
    if step < width * channels:
        raise ImageConversionError(
            f"step {step} is shorter than width x channels = {width * channels}")
    buffer = np.frombuffer(msg.data, dtype=np.uint8)
    # The last row only needs width*channels bytes, but ROS requires step*height.
    if buffer.size < step * height:
        raise ImageConversionError(
            f"data holds {buffer.size} bytes, step x height needs {step * height}")
    shape = (height, width, channels) if channels > 1 else (height, width)
    strides = (step, channels, 1) if channels > 1 else (step, 1)
    view = np.ndarray(shape=shape, dtype=np.uint8, buffer=buffer, strides=strides)
    view.flags.writeable = False
    return view


SIXTEEN_BIT = {"mono16": "mono8", "bgr16": "bgr8", "rgb16": "rgb8", "bgra16": "bgra8",
               "rgba16": "rgba8"}     # 16-bit encodings and the 8-bit ones they are read as


def image_to_8bit(msg) -> tuple[np.ndarray, str]:
    """Pixels and encoding of an Image for the model: a zero-copy view for 8-bit encodings
    (image_to_array); a 16-bit one (mono16, bgr16, ...) keeps its high byte (a copy), as
    cv_bridge converts mono16 to mono8."""
    encoding = msg.encoding.lower()
    if encoding not in SIXTEEN_BIT:
        return image_to_array(msg), encoding
    eight_bit = SIXTEEN_BIT[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"image has zero size ({width}x{height})")
    channels = CHANNELS[eight_bit]
    if step < width * channels * 2 or step % 2:
        raise ImageConversionError(f"step {step} does not hold {width} {encoding} pixels "
                                   f"({width * channels * 2} bytes)")
    buffer = np.frombuffer(msg.data, dtype=np.uint8)
    if buffer.size < step * height:
        raise ImageConversionError(
            f"data holds {buffer.size} bytes, step x height needs {step * height}")
    words = buffer[:step * height].view(">u2" if msg.is_bigendian else "<u2")
    rows = words.reshape(height, step // 2)[:, :width * channels]
    shape = (height, width, channels) if channels > 1 else (height, width)
    return to_uint8(rows.astype(np.uint16).reshape(shape)), eight_bit


def to_uint8(array: np.ndarray) -> np.ndarray:
    """8-bit pixels of an 8- or 16-bit image: a 16-bit one (mono16 or bgr16 PNG, a GRAY16
    camera) keeps its high byte, the scaling cv_bridge's mono16 -> mono8 conversion uses."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    raise ImageConversionError(f"{array.dtype} pixels; only 8- and 16-bit images are supported")


def array_to_image(array: np.ndarray, encoding: str, header=None):
    """A sensor_msgs/Image holding a copy of `array` (HxWxC or HxW uint8) with tight rows."""
    from sensor_msgs.msg import Image

    encoding = encoding.lower()
    if encoding not in CHANNELS:
        raise ImageConversionError(f"unsupported encoding {encoding!r}")
    if array.dtype != np.uint8:
        raise ImageConversionError(f"expected uint8 pixels, got {array.dtype}")
    channels = 1 if array.ndim == 2 else array.shape[2]
    if channels != CHANNELS[encoding]:
        raise ImageConversionError(
            f"{encoding} needs {CHANNELS[encoding]} channels, array has {channels}")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = msg.width * channels
    msg.data = np.ascontiguousarray(array).tobytes()
    return msg


def mono16_to_image(array: np.ndarray, header=None):
    """A little-endian mono16 sensor_msgs/Image of an HxW integer array (instance-id masks)."""
    from sensor_msgs.msg import Image

    msg = Image(height=int(array.shape[0]), width=int(array.shape[1]), encoding="mono16",
                is_bigendian=0, step=int(array.shape[1]) * 2)
    if header is not None:
        msg.header = header
    msg.data = np.ascontiguousarray(array, dtype="<u2").tobytes()
    return msg
