"""sensor_msgs/Image <-> numpy: every encoding, padded rows, and clear errors for bad messages."""
import numpy as np
import pytest

sensor_msgs = pytest.importorskip("sensor_msgs.msg", reason="ROS 2 message wheels not installed")

from trt_infer_ros.ros.image_conversion import (  # noqa: E402
    CHANNELS, ImageConversionError, array_to_image, image_to_array)


def make_message(pixels: np.ndarray, encoding: str, padding: int):
    """An Image whose rows carry `padding` junk bytes after the pixels, like many drivers send."""
    height, width = pixels.shape[:2]
    row_bytes = pixels.reshape(height, -1)
    junk = np.full((height, padding), 0xAB, np.uint8)
    msg = sensor_msgs.Image(height=height, width=width, encoding=encoding, is_bigendian=0)
    msg.step = row_bytes.shape[1] + padding
    msg.data = np.hstack([row_bytes, junk]).tobytes()
    return msg


@pytest.mark.parametrize("encoding", sorted(CHANNELS))
@pytest.mark.parametrize("padding", [0, 3, 64])
def test_view_matches_pixels_for_every_encoding(encoding, padding):
    rng = np.random.default_rng(hash((encoding, padding)) % 2**32)
    channels = CHANNELS[encoding]
    shape = (37, 53, channels) if channels > 1 else (37, 53)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    msg = make_message(pixels, encoding, padding)

    view = image_to_array(msg)

    assert view.shape == shape
    np.testing.assert_array_equal(view, pixels)
    # A view on the message buffer, not a copy.
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))
    assert not view.flags.writeable


def test_round_trip_through_array_to_image():
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    msg = array_to_image(pixels, "rgb8")
    assert (msg.height, msg.width, msg.step, msg.encoding) == (20, 30, 90, "rgb8")
    np.testing.assert_array_equal(image_to_array(msg), pixels)


def test_encoding_is_case_insensitive():
    msg = make_message(np.zeros((4, 4, 3), np.uint8) + 7, "BGR8", 0)
    assert image_to_array(msg).shape == (4, 4, 3)


@pytest.mark.parametrize("mutate, message", [
    (lambda m: setattr(m, "encoding", "16UC1"), "unsupported encoding '16UC1'"),
    (lambda m: setattr(m, "encoding", "yuv422"), "unsupported encoding"),
    (lambda m: setattr(m, "data", bytes(m.step * m.height - 1)), "data holds"),
    (lambda m: setattr(m, "height", 0), "zero size"),
    (lambda m: setattr(m, "width", 0), "zero size"),
    (lambda m: setattr(m, "step", 10), "step 10 is shorter"),
])
def test_bad_messages_raise_clear_errors(mutate, message):
    msg = make_message(np.ones((8, 8, 3), np.uint8), "bgr8", 0)
    mutate(msg)
    with pytest.raises(ImageConversionError, match=message):
        image_to_array(msg)


def test_array_to_image_rejects_wrong_channel_count():
    with pytest.raises(ImageConversionError, match="bgr8 needs 3 channels"):
        array_to_image(np.zeros((4, 4), np.uint8), "bgr8")
