"""Images out of a ROS 2 bag without ROS: rosbag2 sqlite3 (.db3) and MCAP storage, with our own
CDR decoding of sensor_msgs/msg/Image and sensor_msgs/msg/CompressedImage.

Used to calibrate INT8 engines on frames recorded from the robot's own camera.

CDR (XCDR1, as rmw_fastrtps writes it): a 4-byte encapsulation header (0x00 0x01 little-endian,
0x00 0x00 big-endian), then the fields in order, each primitive aligned to its size relative to
the end of the header; strings are a uint32 length (with the terminating NUL) and the bytes;
uint8[] is a uint32 count and the bytes.
"""
from __future__ import annotations

import glob
import os
import sqlite3
import struct
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

from trt_infer_ros.models.spec import CHANNELS

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)


class BagError(ValueError):
    pass


# --- CDR ---------------------------------------------------------------------------------------

class CdrReader:
    def __init__(self, data: bytes):
        if len(data) < 4:
            raise BagError("CDR message shorter than its encapsulation header")
        kind = data[1]
        if data[0] != 0 or kind not in (0, 1):
            raise BagError(f"unsupported CDR encapsulation {data[:2].hex()} (expected plain CDR)")
        self.endian = "<" if kind == 1 else ">"
        self.data = memoryview(data)
        self.base = 4
        self.pos = 4

    def _align(self, size: int) -> None:
        offset = (self.pos - self.base) % size
        if offset:
            self.pos += size - offset

    def _unpack(self, fmt: str, size: int):
        self._align(size)
        if self.pos + size > len(self.data):
            raise BagError("CDR message truncated")
        (value,) = struct.unpack_from(self.endian + fmt, self.data, self.pos)
        self.pos += size
        return value

    def int32(self) -> int:
        return self._unpack("i", 4)

    def uint32(self) -> int:
        return self._unpack("I", 4)

    def uint8(self) -> int:
        return self._unpack("B", 1)

    def string(self) -> str:
        n = self.uint32()
        raw = bytes(self.data[self.pos:self.pos + n])
        if len(raw) != n:
            raise BagError("CDR string truncated")
        self.pos += n
        return raw.rstrip(b"\0").decode("utf-8", errors="replace")

    def bytes_seq(self) -> memoryview:
        n = self.uint32()
        if self.pos + n > len(self.data):
            raise BagError("CDR byte sequence truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out


@dataclass
class ImageMessage:
    stamp_sec: int
    stamp_nanosec: int
    frame_id: str
    encoding: str          # bgr8, rgb8, mono8, bgra8, rgba8 (CompressedImage: decoded to bgr8)
    image: np.ndarray      # HxWxC (HxW for mono8) uint8
    topic: str = ""
    timestamp_ns: int = 0  # bag receive time


def _header(r: CdrReader) -> tuple[int, int, str]:
    return r.int32(), r.uint32(), r.string()


def decode_image(data: bytes) -> ImageMessage:
    """sensor_msgs/msg/Image CDR bytes -> ImageMessage (a copy of the pixels)."""
    r = CdrReader(data)
    sec, nsec, frame = _header(r)
    height, width = r.uint32(), r.uint32()
    encoding = r.string()
    r.uint8()                        # is_bigendian: irrelevant for 8-bit encodings
    step = r.uint32()
    pixels = r.bytes_seq()
    if encoding not in CHANNELS:
        raise BagError(f"image encoding {encoding!r} is not one of {', '.join(CHANNELS)}")
    channels = CHANNELS[encoding]
    if step < width * channels or len(pixels) < step * height:
        raise BagError(f"image data ({len(pixels)} bytes, step {step}) too small for "
                       f"{width}x{height} {encoding}")
    rows = np.frombuffer(pixels, np.uint8, count=step * height).reshape(height, step)
    image = rows[:, :width * channels].reshape(height, width, channels)
    if channels == 1:
        image = image[:, :, 0]
    return ImageMessage(sec, nsec, frame, encoding, np.array(image))


def decode_compressed_image(data: bytes) -> ImageMessage:
    """sensor_msgs/msg/CompressedImage CDR bytes -> ImageMessage decoded to bgr8 (OpenCV)."""
    import cv2  # noqa: PLC0415
    r = CdrReader(data)
    sec, nsec, frame = _header(r)
    fmt = r.string()
    payload = np.frombuffer(r.bytes_seq(), np.uint8)
    image = cv2.imdecode(payload, cv2.IMREAD_COLOR)
    if image is None:
        raise BagError(f"cannot decode compressed image (format {fmt!r})")
    return ImageMessage(sec, nsec, frame, "bgr8", image)


# --- storage: sqlite3 --------------------------------------------------------------------------

@dataclass
class RawMessage:
    topic: str
    type: str
    timestamp_ns: int
    data: bytes


def _db3_messages(path: str) -> Iterator[RawMessage]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        topics = {row[0]: (row[1], row[2], row[3]) for row in
                  con.execute("SELECT id, name, type, serialization_format FROM topics")}
        for topic_id, stamp, data in con.execute(
                "SELECT topic_id, timestamp, data FROM messages ORDER BY timestamp"):
            name, mtype, fmt = topics[topic_id]
            if fmt != "cdr":
                continue
            yield RawMessage(name, mtype, int(stamp), bytes(data))
    finally:
        con.close()


def _db3_topics(path: str) -> dict[str, str]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {row[0]: row[1] for row in con.execute("SELECT name, type FROM topics")}
    finally:
        con.close()


# --- storage: MCAP -----------------------------------------------------------------------------

MCAP_MAGIC = b"\x89MCAP0\r\n"


def _decompress(kind: str, data: bytes, size: int) -> bytes:
    if kind == "":
        return data
    if kind == "zstd":
        try:
            import zstandard  # noqa: PLC0415
        except ImportError as exc:
            raise BagError("this MCAP bag is zstd-compressed: pip install zstandard") from exc
        return zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
    if kind == "lz4":
        try:
            import lz4.frame  # noqa: PLC0415
        except ImportError as exc:
            raise BagError("this MCAP bag is lz4-compressed: pip install lz4") from exc
        return lz4.frame.decompress(data)
    raise BagError(f"unknown MCAP chunk compression {kind!r}")


def _mcap_records(buf: bytes, channels: dict, schemas: dict) -> Iterator[RawMessage]:
    pos = 0
    while pos + 9 <= len(buf):
        op = buf[pos]
        (length,) = struct.unpack_from("<Q", buf, pos + 1)
        body = buf[pos + 9:pos + 9 + length]
        pos += 9 + length
        if op == 0x03:                                   # Schema
            (sid,) = struct.unpack_from("<H", body, 0)
            (n,) = struct.unpack_from("<I", body, 2)
            schemas[sid] = body[6:6 + n].decode()
        elif op == 0x04:                                 # Channel
            cid, sid = struct.unpack_from("<HH", body, 0)
            (n,) = struct.unpack_from("<I", body, 4)
            topic = body[8:8 + n].decode()
            (m,) = struct.unpack_from("<I", body, 8 + n)
            encoding = body[12 + n:12 + n + m].decode()
            channels[cid] = (topic, sid, encoding)
        elif op == 0x05:                                 # Message
            cid, _seq, log_time, _pub = struct.unpack_from("<HIQQ", body, 0)
            topic, sid, encoding = channels.get(cid, ("", 0, ""))
            if encoding == "cdr":
                yield RawMessage(topic, schemas.get(sid, ""), log_time, bytes(body[22:]))
        elif op == 0x06:                                 # Chunk
            _start, _end, size, _crc = struct.unpack_from("<QQQI", body, 0)
            (n,) = struct.unpack_from("<I", body, 28)
            kind = body[32:32 + n].decode()
            (rlen,) = struct.unpack_from("<Q", body, 32 + n)
            records = body[40 + n:40 + n + rlen]
            yield from _mcap_records(_decompress(kind, bytes(records), size), channels, schemas)
        elif op == 0x02:                                 # Footer: stop
            return


def _mcap_messages(path: str) -> Iterator[RawMessage]:
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(MCAP_MAGIC):
        raise BagError(f"{path!r} is not an MCAP file")
    yield from _mcap_records(data[len(MCAP_MAGIC):], {}, {})


# --- bag -----------------------------------------------------------------------------------------

def storage_files(bag_path: str) -> list[str]:
    """The .db3 / .mcap files of a bag directory (or the file itself)."""
    if os.path.isfile(bag_path):
        return [bag_path]
    if not os.path.isdir(bag_path):
        raise BagError(f"bag not found: {bag_path!r}")
    files = sorted(glob.glob(os.path.join(bag_path, "*.db3")) +
                   glob.glob(os.path.join(bag_path, "*.mcap")))
    if not files:
        raise BagError(f"{bag_path!r} has no .db3 or .mcap storage files")
    return files


def read_messages(bag_path: str) -> Iterator[RawMessage]:
    for path in storage_files(bag_path):
        if path.endswith(".mcap"):
            yield from _mcap_messages(path)
        else:
            yield from _db3_messages(path)


def image_topics(bag_path: str) -> dict[str, str]:
    """{topic: type} of the Image/CompressedImage topics in the bag."""
    found: dict[str, str] = {}
    for path in storage_files(bag_path):
        if path.endswith(".mcap"):
            for m in _mcap_messages(path):
                if m.type in IMAGE_TYPES:
                    found.setdefault(m.topic, m.type)
        else:
            found.update({t: ty for t, ty in _db3_topics(path).items() if ty in IMAGE_TYPES})
    return found


def read_images(bag_path: str, topic: Optional[str] = None,
                limit: Optional[int] = None) -> Iterator[ImageMessage]:
    """Decoded images of `topic` (default: the bag's only image topic), in time order."""
    topics = image_topics(bag_path)
    if topic is None:
        if len(topics) != 1:
            raise BagError(f"bag {bag_path!r} has image topics {sorted(topics) or 'none'}; "
                           "set calibration_topic to one of them")
        topic = next(iter(topics))
    elif topic not in topics:
        raise BagError(f"bag {bag_path!r} has no Image/CompressedImage topic {topic!r}; "
                       f"it has {sorted(topics) or 'none'}")
    count = 0
    for raw in read_messages(bag_path):
        if raw.topic != topic:
            continue
        msg = decode_image(raw.data) if raw.type == IMAGE_TYPE else \
            decode_compressed_image(raw.data)
        msg.topic, msg.timestamp_ns = raw.topic, raw.timestamp_ns
        yield msg
        count += 1
        if limit is not None and count >= limit:
            return
