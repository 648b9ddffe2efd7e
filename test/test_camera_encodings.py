"""Camera encodings the model does not read directly (YUV 4:2:2, Bayer mosaics, 16-bit Bayer)
become bgr8 as cv_bridge converts them; checked against frames built here from known colours."""
import numpy as np
import pytest

sensor_msgs = pytest.importorskip("sensor_msgs.msg", reason="ROS 2 message wheels not installed")

from trt_infer_ros.ros.image_conversion import (  # noqa: E402
    ImageConversionError, image_for_model)

# Four flat colour patches (BGR), 32x32 each: a swapped red and blue, or a wrong pair order,
# shows up as a large error inside the patches.
PATCHES = [(30, 60, 220), (40, 200, 50), (210, 80, 40), (128, 128, 128)]


def patch_image() -> np.ndarray:
    image = np.zeros((64, 64, 3), np.uint8)
    for i, colour in enumerate(PATCHES):
        image[32 * (i // 2):32 * (i // 2) + 32, 32 * (i % 2):32 * (i % 2) + 32] = colour
    return image


def inside_patches(image: np.ndarray) -> np.ndarray:
    """The pixels at least 4 away from every patch edge (demosaicing blurs the edges)."""
    return np.concatenate([image[y + 4:y + 28, x + 4:x + 28].reshape(-1, 3)
                           for y in (0, 32) for x in (0, 32)])


def message(rows: np.ndarray, encoding: str, padding: int = 0, big_endian: bool = False):
    """An Image of `rows` (H x row bytes) with `padding` junk bytes after each row."""
    height = rows.shape[0]
    data = np.hstack([rows.reshape(height, -1).view(np.uint8),
                      np.full((height, padding), 0xAB, np.uint8)])
    return sensor_msgs.Image(height=height, width=rows.shape[1], encoding=encoding,
                             is_bigendian=int(big_endian), step=data.shape[1],
                             data=data.tobytes())


def packed_yuv422(image: np.ndarray, order: str) -> np.ndarray:
    """H x W x 2 bytes as a camera sends YUV 4:2:2: BT.601 video-range Y'CbCr (Y 16-235), each
    pixel pair sharing its chroma (the pair's mean), in YUYV or UYVY byte order."""
    b, g, r = (image[:, :, i].astype(np.float64) for i in range(3))
    y = 16 + 219 / 255 * (0.299 * r + 0.587 * g + 0.114 * b)
    cb = 128 + 224 / 255 * (-0.168736 * r - 0.331264 * g + 0.5 * b)
    cr = 128 + 224 / 255 * (0.5 * r - 0.418688 * g - 0.081312 * b)
    out = np.empty(image.shape[:2] + (2,), np.uint8)
    luma, chroma = (0, 1) if order == "yuyv" else (1, 0)
    out[:, :, luma] = np.round(y)
    out[:, 0::2, chroma] = np.round((cb[:, 0::2] + cb[:, 1::2]) / 2)
    out[:, 1::2, chroma] = np.round((cr[:, 0::2] + cr[:, 1::2]) / 2)
    return out


@pytest.mark.parametrize("encoding, order", [("yuv422_yuy2", "yuyv"), ("yuyv", "yuyv"),
                                             ("yuv422", "uyvy"), ("uyvy", "uyvy")])
def test_yuv422_frames_become_their_colours(encoding, order):
    image = patch_image()
    pixels, got_encoding = image_for_model(message(packed_yuv422(image, order), encoding, 6))
    assert got_encoding == "bgr8" and pixels.shape == image.shape
    assert np.abs(inside_patches(pixels).astype(int) - inside_patches(image)).max() <= 3


def mosaic(image: np.ndarray, pattern: str) -> np.ndarray:
    """The Bayer mosaic a sensor with the 2x2 `pattern` (e.g. 'rggb': R G / G B) records."""
    channel = {"b": 0, "g": 1, "r": 2}
    out = np.empty(image.shape[:2], image.dtype)
    for i, colour in enumerate(pattern):
        y, x = divmod(i, 2)
        out[y::2, x::2] = image[y::2, x::2, channel[colour]]
    return out


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_frames_become_their_colours(pattern):
    image = patch_image()
    pixels, got_encoding = image_for_model(message(mosaic(image, pattern), f"bayer_{pattern}8", 3))
    assert got_encoding == "bgr8"
    assert np.abs(inside_patches(pixels).astype(int) - inside_patches(image)).max() <= 2


@pytest.mark.parametrize("big_endian", [False, True])
def test_sixteen_bit_bayer_frames_keep_their_high_byte(big_endian):
    image = patch_image()
    samples = mosaic(image, "rggb").astype(np.uint16) * 256 + 77     # low byte: noise
    rows = samples.astype(">u2" if big_endian else "<u2")
    pixels, _ = image_for_model(message(rows, "bayer_rggb16", 2, big_endian))
    assert np.abs(inside_patches(pixels).astype(int) - inside_patches(image)).max() <= 2


def test_a_yuv422_frame_of_odd_width_is_refused():
    rows = np.zeros((4, 5, 2), np.uint8)
    with pytest.raises(ImageConversionError, match="width must be even, not 5"):
        image_for_model(message(rows, "yuv422_yuy2"))


def test_an_unknown_encoding_names_the_supported_ones():
    with pytest.raises(ImageConversionError, match="unsupported encoding 'nv24'.*yuv422.*bayer"):
        image_for_model(message(np.zeros((4, 4), np.uint8), "nv24"))
