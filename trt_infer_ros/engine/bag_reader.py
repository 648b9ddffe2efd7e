"""Images out of a ROS 2 bag without ROS, read with the `rosbags` library: rosbag2 sqlite3 (.db3)
and MCAP storage, sensor_msgs/msg/Image and sensor_msgs/msg/CompressedImage decoded from CDR.

Used to calibrate INT8 engines on frames recorded from the robot's own camera.

A bag is a rosbag2 directory (with metadata.yaml, or without it: then its .db3/.mcap files are
read one after the other in name order) or a single .db3/.mcap file. Every failure to open or
read one is a `BagError` whose message starts with the path; messages stream one at a time and
decompressed MCAP data is bounded (see `MAX_CHUNK_BYTES`).
"""
from __future__ import annotations

import os
import re
import sys
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import yaml
from lz4.frame import LZ4FrameDecompressor
from rosbags.rosbag2 import Reader, ReaderError
from rosbags.rosbag2 import storage_mcap
from rosbags.rosbag2.storage_mcap import McapReader
from rosbags.typesys import Stores, get_typestore

from trt_infer_ros.models.spec import CHANNELS

if sys.version_info >= (3, 14):
    from compression.zstd import ZstdDecompressor
else:
    from backports.zstd import ZstdDecompressor

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)

# The most decompressed MCAP chunk data held at once: one chunk, or the chunks whose time ranges
# overlap (rosbags merges those by time, so they are all decompressed together). A chunk holds
# at least one whole message; 256 MiB fits an 8K rgb8 frame with room to spare.
MAX_CHUNK_BYTES = 256 << 20

# Image and CompressedImage are the same in every ROS 2 distro.
TYPESTORE = get_typestore(Stores.LATEST)


class BagError(ValueError):
    pass


class ChunkTooLarge(ReaderError):
    """A valid MCAP file can still hold more per chunk than this reader will decompress."""


@dataclass
class ImageMessage:
    stamp_sec: int
    stamp_nanosec: int
    frame_id: str
    encoding: str          # bgr8, rgb8, mono8, bgra8, rgba8 (CompressedImage: decoded to bgr8)
    image: np.ndarray      # HxWxC (HxW for mono8) uint8
    topic: str = ""
    timestamp_ns: int = 0  # bag receive time


# --- messages ------------------------------------------------------------------------------------

def decode_image(data: bytes) -> ImageMessage:
    """sensor_msgs/msg/Image CDR bytes -> ImageMessage (a copy of the pixels)."""
    msg = TYPESTORE.deserialize_cdr(data, IMAGE_TYPE)
    height, width, step, encoding = msg.height, msg.width, msg.step, msg.encoding
    if encoding not in CHANNELS:
        raise BagError(f"image encoding {encoding!r} is not one of {', '.join(CHANNELS)}")
    channels = CHANNELS[encoding]
    pixels = np.asarray(msg.data, np.uint8)
    if step < width * channels or len(pixels) < step * height:
        raise BagError(f"image data ({len(pixels)} bytes, step {step}) too small for "
                       f"{width}x{height} {encoding}")
    rows = pixels[:step * height].reshape(height, step)
    image = rows[:, :width * channels].reshape(height, width, channels)
    if channels == 1:
        image = image[:, :, 0]
    stamp = msg.header.stamp
    return ImageMessage(stamp.sec, stamp.nanosec, msg.header.frame_id, encoding, np.array(image))


def decode_compressed_image(data: bytes) -> ImageMessage:
    """sensor_msgs/msg/CompressedImage CDR bytes -> ImageMessage decoded to bgr8 (OpenCV)."""
    import cv2  # noqa: PLC0415
    msg = TYPESTORE.deserialize_cdr(data, COMPRESSED_TYPE)
    image = cv2.imdecode(np.asarray(msg.data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise BagError(f"cannot decode compressed image (format {msg.format!r})")
    stamp = msg.header.stamp
    return ImageMessage(stamp.sec, stamp.nanosec, msg.header.frame_id, "bgr8", image)


# --- bounded MCAP decompression ------------------------------------------------------------------

def _bounded(new_decompressor):
    """rosbags decompresses a chunk with no output limit and compares the size afterwards, so a
    2 KB zstd chunk could expand to gigabytes first. It passes each decompressor the chunk's
    declared uncompressed size: ours refuse a declared size above MAX_CHUNK_BYTES and stop one
    byte past the declared size, so that rosbags' own size check then rejects the chunk."""
    def decompress(data: bytes, size: int) -> bytes:
        _check_chunk_size(size)
        out = b""
        while data and len(out) <= size:          # a chunk may hold several frames
            decompressor = new_decompressor()
            out += decompressor.decompress(data, max_length=size + 1 - len(out))
            if not decompressor.eof:              # truncated, or past the declared size
                break
            data = decompressor.unused_data
        _check_chunk_start(out)
        return out
    return decompress


def _check_chunk_start(records: bytes) -> None:
    """A chunk holds schema, channel and message records only. Checked before rosbags walks the
    records: 64 MiB of zeros would be 7 million empty records, minutes of work. (A chunk built
    of many tiny valid records still costs time in proportion to its size, MAX_CHUNK_BYTES at
    most.)"""
    if records and records[0] not in (0x03, 0x04, 0x05):
        raise ReaderError(f"an MCAP chunk starts with record type {records[0]:#04x}, not a "
                          "schema, channel or message")


def _check_chunk_size(size: int) -> None:
    if size > MAX_CHUNK_BYTES:
        raise ChunkTooLarge(f"an MCAP chunk declares {size >> 20} MiB uncompressed, above the "
                            f"{MAX_CHUNK_BYTES >> 20} MiB this reader holds in memory")


def _uncompressed(data: bytes, size: int) -> bytes:
    _check_chunk_size(size)
    _check_chunk_start(data)
    return data


storage_mcap.DECOMPRESSORS.update({"": _uncompressed, "zstd": _bounded(ZstdDecompressor),
                                   "lz4": _bounded(LZ4FrameDecompressor)})


def _check_chunk_overlap(storage: McapReader) -> None:
    """Refuse an indexed MCAP file whose chunks that overlap in time (decompressed together
    while rosbags merges them in time order) declare more than MAX_CHUNK_BYTES in all."""
    for c in storage.chunks:
        _check_chunk_size(c.uncompressed_size)
    events = sorted([(c.message_start_time, 0, c.uncompressed_size) for c in storage.chunks] +
                    [(c.message_end_time, 1, -c.uncompressed_size) for c in storage.chunks])
    live = 0
    for _time, _end, size in events:
        live += size
        if live > MAX_CHUNK_BYTES:
            raise ChunkTooLarge(f"MCAP chunks that overlap in time declare {live >> 20} MiB "
                                f"uncompressed together, above the {MAX_CHUNK_BYTES >> 20} MiB "
                                "this reader holds in memory")


# --- bags ----------------------------------------------------------------------------------------

def _natural_key(path: str) -> list:
    """bag_2.db3 before bag_10.db3."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", os.path.basename(path))]


def storage_files(bag_path: str) -> list[str]:
    """The .db3 / .mcap files of a bag directory (or the file itself)."""
    if os.path.isfile(bag_path):
        return [bag_path]
    if not os.path.isdir(bag_path):
        raise BagError(f"{bag_path}: bag not found")
    files = sorted((os.path.join(bag_path, f) for f in os.listdir(bag_path)
                    if f.endswith((".db3", ".mcap"))), key=_natural_key)
    if not files:
        raise BagError(f"{bag_path}: the directory has no .db3 or .mcap storage files")
    return files


def _check_metadata(bag_path: str) -> None:
    """rosbags inflates a file-compressed bag into a temporary directory when it opens it, and a
    message-compressed one message by message, both with no output limit: refuse them."""
    with open(os.path.join(bag_path, "metadata.yaml"), "rb") as f:
        text = f.read()
    try:
        info = yaml.safe_load(text)["rosbag2_bagfile_information"]
        mode = str(info.get("compression_mode") or "").lower()
    except Exception:  # noqa: BLE001 - rosbags reports a broken metadata.yaml itself
        return
    if mode in ("file", "message"):
        raise BagError(f"{bag_path}: the bag is {mode}-compressed, which this reader does not "
                       "decompress; run `ros2 bag decompress` on it first")


def _reason(exc: BaseException, bag_path: str) -> str:
    if isinstance(exc, MemoryError):
        return "reading it needs more memory than there is (a corrupt size field?)"
    if isinstance(exc, RecursionError):
        return "its records nest too deeply"
    text = " ".join(str(exc).split()).rstrip(".") or "no details"   # YAML errors span lines
    # The message starts with the path already: name it once.
    text = text.replace(bag_path, os.path.basename(bag_path.rstrip("/")) or bag_path)
    if len(text) > 300:
        text = text[:300] + "..."
    if isinstance(exc, ReaderError) or type(exc).__name__ == "SerdeError":
        return text
    return f"{type(exc).__name__}: {text}"


@contextmanager
def _errors(bag_path: str):
    """Any failure inside becomes one BagError that names the bag."""
    bag_path = os.fspath(bag_path)
    try:
        yield
    except BagError as exc:
        if str(exc).startswith(f"{bag_path}:"):
            raise
        raise BagError(f"{bag_path}: {exc}") from exc
    except ChunkTooLarge as exc:
        raise BagError(f"{bag_path}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - rosbags, sqlite, zstd, lz4, struct... all alike
        raise BagError(f"{bag_path}: not a readable rosbag2 bag, or a corrupt or truncated one "
                       f"({_reason(exc, bag_path)})") from exc


@contextmanager
def _open_readers(bag_path: str) -> Iterator[list[Reader]]:
    """Open rosbags Readers: one for a directory with metadata.yaml, else one per storage file."""
    if os.path.isdir(bag_path) and os.path.isfile(os.path.join(bag_path, "metadata.yaml")):
        _check_metadata(bag_path)
        paths = [bag_path]
    else:
        paths = storage_files(bag_path)
    with ExitStack() as stack:
        readers = []
        for path in paths:
            reader = stack.enter_context(Reader(path))
            storages = getattr(reader.storage, "storages", [reader.storage])
            for storage in storages:
                if isinstance(storage, McapReader):
                    _check_chunk_overlap(storage)
            readers.append(reader)
        yield readers


def _topics(readers: list[Reader]) -> dict[str, str]:
    found: dict[str, str] = {}
    for reader in readers:
        for conn in reader.connections:
            if conn.msgtype in IMAGE_TYPES and conn.ext.serialization_format == "cdr":
                found.setdefault(conn.topic, conn.msgtype)
    return found


def _all_topics(readers: list[Reader]) -> list[str]:
    return sorted({f"{c.topic} ({c.msgtype})" for r in readers for c in r.connections})


def _choose_topic(bag_path: str, readers: list[Reader], topic: Optional[str]) -> str:
    topics = _topics(readers)
    if not topics:
        raise BagError(f"{bag_path}: the bag has no sensor_msgs Image or CompressedImage topic "
                       f"(it has {', '.join(_all_topics(readers)) or 'no topics'}); record the "
                       "camera's image topic")
    if not topic:
        if len(topics) != 1:
            raise BagError(f"{bag_path}: the bag has several image topics {sorted(topics)}; "
                           "set calibration_topic (--topic for trt_infer_ros_int8) to one of them")
        return next(iter(topics))
    if topic not in topics:
        raise BagError(f"{bag_path}: the bag has no Image/CompressedImage topic {topic!r}; "
                       f"it has {sorted(topics) or 'none'}")
    return topic


def image_topics(bag_path: str) -> dict[str, str]:
    """{topic: type} of the Image/CompressedImage topics in the bag."""
    with _errors(bag_path), _open_readers(bag_path) as readers:
        return _topics(readers)


def read_images(bag_path: str, topic: Optional[str] = None,
                limit: Optional[int] = None) -> Iterator[ImageMessage]:
    """Decoded images of `topic` (default: the bag's only image topic), in time order."""
    with _errors(bag_path), _open_readers(bag_path) as readers:
        topic = _choose_topic(bag_path, readers, topic)
        count = 0
        for reader in readers:
            connections = [c for c in reader.connections if c.topic == topic]
            for conn, timestamp, data in reader.messages(connections):
                if limit is not None and count >= limit:
                    return
                msg = decode_image(data) if conn.msgtype == IMAGE_TYPE else \
                    decode_compressed_image(data)
                msg.topic, msg.timestamp_ns = topic, timestamp
                yield msg
                count += 1


def probe_bag(path: str, topic: str = "") -> str:
    """Check that `path` is a readable bag with an image topic (`topic`, or its only one) whose
    first message decodes; returns the topic. Raises BagError naming the file otherwise."""
    with _errors(path), _open_readers(path) as readers:
        chosen = _choose_topic(path, readers, topic)
    for _ in read_images(path, chosen, limit=1):
        return chosen
    raise BagError(f"{path}: the topic {chosen!r} has no messages")
