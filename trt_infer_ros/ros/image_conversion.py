"""sensor_msgs/Image <-> numpy without copying where the layout allows.

The arrays returned here are views on the message buffer: the same result cv_bridge's
imgmsg_to_cv2(msg, "passthrough") gives for these encodings, without its OpenCV coupling.
"""
from __future__ import annotations

import numpy as np

from trt_infer_ros.models.spec import CHANNELS


class ImageConversionError(ValueError):
    """A message that cannot be read as an image; the message says what is wrong."""


def _pixel_rows(msg, bytes_per_pixel: int) -> np.ndarray:
    """A read-only H x (width * bytes_per_pixel) uint8 view on the pixels of `msg`'s rows,
    after checking its size, step and data length."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"image has zero size ({width}x{height})")
    row_bytes = width * bytes_per_pixel
    if step < row_bytes:
        raise ImageConversionError(
            f"step {step} is shorter than width x bytes per pixel = {row_bytes}")
    buffer = np.frombuffer(msg.data, dtype=np.uint8)
    # The last row only needs row_bytes, but ROS requires step*height.
    if buffer.size < step * height:
        raise ImageConversionError(
            f"data holds {buffer.size} bytes, step x height needs {step * height}")
    rows = np.ndarray(shape=(height, row_bytes), dtype=np.uint8, buffer=buffer,
                      strides=(step, 1))
    rows.flags.writeable = False
    return rows


def image_to_array(msg) -> np.ndarray:
    """A read-only HxWxC (HxW for mono8) uint8 view on `msg.data`, honouring `msg.step`."""
    encoding = msg.encoding.lower()
    if encoding not in CHANNELS:
        raise ImageConversionError(
            f"unsupported encoding {msg.encoding!r}; supported: {', '.join(CHANNELS)}")
    channels = CHANNELS[encoding]
    rows = _pixel_rows(msg, channels)
    return rows.reshape(rows.shape[0], -1, channels) if channels > 1 else rows


SIXTEEN_BIT = {"mono16": "mono8", "bgr16": "bgr8", "rgb16": "rgb8", "bgra16": "bgra8",
               "rgba16": "rgba8"}     # 16-bit encodings and the 8-bit ones they are read as
# Camera encodings OpenCV converts to bgr8, with the codes cv_bridge uses: ROS names a Bayer
# pattern by its top-left 2x2 block, OpenCV by the second row's middle pair.
YUV422 = ("yuv422", "uyvy", "yuv422_yuy2", "yuyv")     # two bytes per pixel, pairs share chroma
TO_BGR = {"yuv422": "COLOR_YUV2BGR_UYVY", "uyvy": "COLOR_YUV2BGR_UYVY",
          "yuv422_yuy2": "COLOR_YUV2BGR_YUYV", "yuyv": "COLOR_YUV2BGR_YUYV",
          "bayer_rggb8": "COLOR_BayerBG2BGR", "bayer_bggr8": "COLOR_BayerRG2BGR",
          "bayer_gbrg8": "COLOR_BayerGR2BGR", "bayer_grbg8": "COLOR_BayerGB2BGR"}
BAYER_16 = {f"bayer_{p}16": f"bayer_{p}8" for p in ("rggb", "bggr", "gbrg", "grbg")}
SUPPORTED = tuple(CHANNELS) + tuple(SIXTEEN_BIT) + tuple(TO_BGR) + tuple(BAYER_16)


def image_for_model(msg) -> tuple[np.ndarray, str]:
    """Pixels and encoding of an Image for the model: a zero-copy view for the 8-bit encodings
    the pipeline reads (image_to_array); otherwise a copy converted as cv_bridge converts:
    a 16-bit image keeps its high byte (mono16 -> mono8), YUV 4:2:2 and Bayer frames become
    bgr8."""
    encoding = msg.encoding.lower()
    if encoding in CHANNELS:
        return image_to_array(msg), encoding
    if encoding in SIXTEEN_BIT:
        eight_bit = SIXTEEN_BIT[encoding]
        return _high_bytes(msg, CHANNELS[eight_bit]), eight_bit
    if encoding in BAYER_16:
        return _to_bgr(_high_bytes(msg, 1), BAYER_16[encoding]), "bgr8"
    if encoding in TO_BGR:
        pixel_bytes = 2 if encoding in YUV422 else 1
        rows = _pixel_rows(msg, pixel_bytes)
        if pixel_bytes == 2:
            if msg.width % 2:
                raise ImageConversionError(
                    f"{encoding} pairs pixels, so its width must be even, not {msg.width}")
            rows = rows.reshape(rows.shape[0], -1, 2)
        return _to_bgr(rows, encoding), "bgr8"
    raise ImageConversionError(
        f"unsupported encoding {msg.encoding!r}; supported: {', '.join(SUPPORTED)}")


def _high_bytes(msg, channels: int) -> np.ndarray:
    """The high byte of each 16-bit sample of `msg` (either byte order), HxW or HxWxC."""
    if int(msg.step) % 2:
        raise ImageConversionError(f"step {msg.step} is odd for 16-bit {msg.encoding} pixels")
    rows = _pixel_rows(msg, 2 * channels)
    samples = np.ascontiguousarray(rows).view(">u2" if msg.is_bigendian else "<u2")
    shape = (samples.shape[0], -1, channels) if channels > 1 else samples.shape
    return to_uint8(samples.astype(np.uint16).reshape(shape))


def _to_bgr(pixels: np.ndarray, encoding: str) -> np.ndarray:
    import cv2
    return cv2.cvtColor(np.ascontiguousarray(pixels), getattr(cv2, TO_BGR[encoding]))


def to_uint8(array: np.ndarray) -> np.ndarray:
    """8-bit pixels of an 8- or 16-bit image: a 16-bit one (mono16 or bgr16 PNG, a GRAY16
    camera) keeps its high byte, the scaling cv_bridge's mono16 -> mono8 conversion uses."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    raise ImageConversionError(f"{array.dtype} pixels; only 8- and 16-bit images are supported")


def opencv_pixels(image: np.ndarray, what: str, encoded: str = "") -> tuple[np.ndarray, str]:
    """An image as OpenCV gives it (HxW, HxWx1, HxWx3 or HxWx4; 8 or 16 bit) as 8-bit pixels and
    their encoding. Colour channels are in OpenCV's BGR order unless `encoded` (the encoding a
    producer says they are in) is rgb8 / rgba8; `what` names the image in the error."""
    image = to_uint8(image)
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels == 1:
        return (image if image.ndim == 2 else image[:, :, 0]), "mono8"
    if channels == 3:
        return image, "rgb8" if encoded == "rgb8" else "bgr8"
    if channels == 4:
        return image, "rgba8" if encoded == "rgba8" else "bgra8"
    raise ImageConversionError(f"{what} with {channels} channels")


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
