"""bag_reader: our CDR decoding against messages serialized by rclpy, in real rosbag2 sqlite3
storage (the schema rosbag2_storage_sqlite3 writes) and, where the `mcap` package is installed,
in an MCAP file written by the MCAP reference writer."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from trt_infer_ros.engine.bag_reader import (BagError, CdrReader, decode_image, image_topics,
                                            read_images)


def _rclpy():
    try:
        from rclpy.serialization import serialize_message
        from sensor_msgs.msg import CompressedImage, Image
    except ImportError as exc:
        pytest.skip(f"rclpy/sensor_msgs not importable here ({exc}); source scripts/env.sh")
    return serialize_message, Image, CompressedImage


def make_image(Image, pixels: np.ndarray, encoding: str, stamp: int, pad: int = 0):
    msg = Image()
    msg.header.stamp.sec = stamp
    msg.header.stamp.nanosec = 500
    msg.header.frame_id = "camera_optical"
    msg.height, msg.width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    msg.encoding = encoding
    msg.step = msg.width * channels + pad
    rows = pixels.reshape(msg.height, msg.width * channels)
    padded = np.zeros((msg.height, msg.step), np.uint8)
    padded[:, :msg.width * channels] = rows
    msg.data = padded.tobytes()
    return msg


def write_db3(path, topics: dict, messages: list) -> None:
    """topics: {name: type}; messages: [(topic, timestamp_ns, cdr bytes)] -- rosbag2's schema."""
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE schema(schema_version INTEGER PRIMARY KEY, ros_distro TEXT NOT NULL);
        CREATE TABLE metadata(id INTEGER PRIMARY KEY, metadata_version INTEGER NOT NULL,
                              metadata TEXT NOT NULL);
        CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,
                            serialization_format TEXT NOT NULL,
                            offered_qos_profiles TEXT NOT NULL,
                            type_description_hash TEXT NOT NULL);
        CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL,
                              timestamp INTEGER NOT NULL, data BLOB NOT NULL);
        INSERT INTO schema VALUES (4, 'kilted');
    """)
    ids = {}
    for i, (name, mtype) in enumerate(topics.items(), start=1):
        con.execute("INSERT INTO topics VALUES (?, ?, ?, 'cdr', '', '')", (i, name, mtype))
        ids[name] = i
    for topic, stamp, data in messages:
        con.execute("INSERT INTO messages (topic_id, timestamp, data) VALUES (?, ?, ?)",
                    (ids[topic], stamp, data))
    con.commit()
    con.close()


@pytest.fixture
def photo_frames():
    rng = np.random.default_rng(5)
    return [rng.integers(0, 255, (12, 10, 3), dtype=np.uint8) for _ in range(3)]


def test_decode_matches_rclpy_serialization_for_every_encoding():
    serialize, Image, _ = _rclpy()
    rng = np.random.default_rng(6)
    for encoding, channels in (("bgr8", 3), ("rgb8", 3), ("mono8", 1), ("bgra8", 4),
                               ("rgba8", 4)):
        shape = (7, 5) if channels == 1 else (7, 5, channels)
        pixels = rng.integers(0, 255, shape, dtype=np.uint8)
        msg = make_image(Image, pixels, encoding, 42, pad=3)     # padded rows: step > width*c
        out = decode_image(serialize(msg))
        assert out.encoding == encoding and out.frame_id == "camera_optical"
        assert (out.stamp_sec, out.stamp_nanosec) == (42, 500)
        np.testing.assert_array_equal(out.image, pixels)


def test_sqlite3_bag_yields_the_topic_images_in_time_order(tmp_path, photo_frames):
    serialize, Image, CompressedImage = _rclpy()
    import cv2
    from std_msgs.msg import String
    bag = tmp_path / "calib_bag"
    bag.mkdir()
    msgs = [("/camera/image_raw", 300 - i, serialize(make_image(Image, f, "bgr8", i)))
            for i, f in enumerate(photo_frames)]
    other = String()
    other.data = "not an image"
    msgs.append(("/chatter", 5, serialize(other)))
    jpeg = CompressedImage()
    jpeg.format = "jpeg"
    ok, enc = cv2.imencode(".png", photo_frames[0])
    jpeg.data = enc.tobytes()
    msgs.append(("/camera/compressed", 7, serialize(jpeg)))
    write_db3(str(bag / "calib_bag_0.db3"),
              {"/camera/image_raw": "sensor_msgs/msg/Image", "/chatter": "std_msgs/msg/String",
               "/camera/compressed": "sensor_msgs/msg/CompressedImage"}, msgs)
    assert image_topics(str(bag)) == {"/camera/image_raw": "sensor_msgs/msg/Image",
                                      "/camera/compressed": "sensor_msgs/msg/CompressedImage"}
    images = list(read_images(str(bag), "/camera/image_raw"))
    assert [m.stamp_sec for m in images] == [2, 1, 0]          # ordered by bag timestamp
    for m, frame in zip(images, reversed(photo_frames)):
        np.testing.assert_array_equal(m.image, frame)
    (png,) = read_images(str(bag), "/camera/compressed")
    np.testing.assert_array_equal(png.image, photo_frames[0])  # png is lossless
    with pytest.raises(BagError, match="set calibration_topic"):
        list(read_images(str(bag)))
    with pytest.raises(BagError, match="no Image/CompressedImage topic '/nope'"):
        list(read_images(str(bag), "/nope"))


def test_mcap_bag_written_by_the_reference_writer(tmp_path, photo_frames):
    serialize, Image, _ = _rclpy()
    mcap_writer = pytest.importorskip("mcap.writer", reason="the `mcap` package is not installed")
    path = tmp_path / "bag.mcap"
    with open(path, "wb") as f:
        writer = mcap_writer.Writer(f)
        writer.start(profile="ros2", library="test")
        schema = writer.register_schema("sensor_msgs/msg/Image", "ros2msg", b"")
        channel = writer.register_channel("/cam", "cdr", schema)
        for i, frame in enumerate(photo_frames):
            writer.add_message(channel, log_time=i, publish_time=i, sequence=i,
                               data=serialize(make_image(Image, frame, "rgb8", i)))
        writer.finish()
    images = list(read_images(str(path)))
    assert len(images) == 3 and images[0].encoding == "rgb8"
    np.testing.assert_array_equal(images[2].image, photo_frames[2])


def test_cdr_alignment_and_big_endian():
    # big-endian encapsulation: int32 7, then a string aligned after a uint8
    payload = b"\x00\x00\x00\x00" + (7).to_bytes(4, "big") + b"\x01" + b"\x00" * 3 + \
        (3).to_bytes(4, "big") + b"ab\x00"
    r = CdrReader(payload)
    assert r.int32() == 7 and r.uint8() == 1 and r.string() == "ab"
    with pytest.raises(BagError, match="truncated"):
        CdrReader(b"\x00\x01\x00\x00\x01").uint32()


def test_missing_bag_is_reported(tmp_path):
    with pytest.raises(BagError, match="bag not found"):
        list(read_images(str(tmp_path / "nope")))
