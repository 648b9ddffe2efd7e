"""bag_reader: real rosbag2 bags (sqlite3 and MCAP) written by rosbags' own writer and by the MCAP
reference writer, read back; and a corpus of corrupt bags generated here (truncated, bit-flipped,
nested chunks, compression bombs, wrong magic, garbage metadata, wrong sqlite schemas), each of
which must give one BagError naming the file, within bounded time and memory."""
from __future__ import annotations

import os
import resource
import shutil
import sqlite3
import sys
import time
import tracemalloc

import cv2
import lz4.frame
import numpy as np
import pytest
from mcap.writer import CompressionType
from mcap.writer import Writer as McapWriter
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as BagWriter

from trt_infer_ros.engine.bag_reader import (MAX_CHUNK_BYTES, TYPESTORE, BagError, image_topics,
                                            probe_bag, read_images)

if sys.version_info >= (3, 14):
    from compression.zstd import ZstdCompressor
    from compression.zstd import compress as zstd_compress
else:
    from backports.zstd import ZstdCompressor
    from backports.zstd import compress as zstd_compress

T = TYPESTORE.types
MAGIC = b"\x89MCAP0\r\n"


def image_cdr(pixels: np.ndarray, encoding: str, stamp: int, pad: int = 0) -> bytes:
    """sensor_msgs/Image CDR with `pad` bytes at the end of each row (step > width * channels)."""
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    rows = np.zeros((height, width * channels + pad), np.uint8)
    rows[:, :width * channels] = pixels.reshape(height, -1)
    header = T["std_msgs/msg/Header"](T["builtin_interfaces/msg/Time"](stamp, 500), "camera")
    msg = T["sensor_msgs/msg/Image"](header, height, width, encoding, 0, rows.shape[1],
                                     rows.reshape(-1))
    return bytes(TYPESTORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))


def png_cdr(pixels: np.ndarray, stamp: int) -> bytes:
    header = T["std_msgs/msg/Header"](T["builtin_interfaces/msg/Time"](stamp, 0), "camera")
    data = cv2.imencode(".png", pixels)[1].reshape(-1)
    msg = T["sensor_msgs/msg/CompressedImage"](header, "png", data)
    return bytes(TYPESTORE.serialize_cdr(msg, "sensor_msgs/msg/CompressedImage"))


def string_cdr(text: str) -> bytes:
    return bytes(TYPESTORE.serialize_cdr(T["std_msgs/msg/String"](text), "std_msgs/msg/String"))


def write_bag(path, messages, storage=StoragePlugin.SQLITE3):
    """rosbags' writer: a rosbag2 directory with metadata.yaml. messages: (topic, type, ns, cdr)."""
    connections = {}
    with BagWriter(path, version=9, storage_plugin=storage) as writer:
        for topic, msgtype, stamp, data in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=TYPESTORE)
            writer.write(connections[topic], stamp, data)
    return path


def write_mcap(path, messages, compression=CompressionType.ZSTD, chunk_size=1 << 20):
    """The MCAP reference writer: a bare .mcap file."""
    with open(path, "wb") as f:
        writer = McapWriter(f, compression=compression, chunk_size=chunk_size)
        writer.start(profile="ros2", library="test")
        channels = {}
        for topic, msgtype, stamp, data in messages:
            if topic not in channels:
                schema = writer.register_schema(msgtype, "ros2msg", b"")
                channels[topic] = writer.register_channel(topic, "cdr", schema)
            writer.add_message(channels[topic], log_time=stamp, publish_time=stamp, data=data,
                               sequence=stamp)
        writer.finish()
    return path


@pytest.fixture
def frames():
    rng = np.random.default_rng(5)
    return [rng.integers(0, 255, (12, 10, 3), dtype=np.uint8) for _ in range(3)]


def mixed_messages(frames):
    """Three bgr8 frames stored out of time order, a mono8 and an rgb8 topic, a png topic and a
    String topic."""
    msgs = [("/camera/image_raw", "sensor_msgs/msg/Image", 300 - i, image_cdr(f, "bgr8", i, 3))
            for i, f in enumerate(frames)]
    msgs.append(("/mono", "sensor_msgs/msg/Image", 10, image_cdr(frames[0][:, :, 1], "mono8", 1)))
    msgs.append(("/rgb", "sensor_msgs/msg/Image", 11, image_cdr(frames[1], "rgb8", 2, 1)))
    msgs.append(("/camera/compressed", "sensor_msgs/msg/CompressedImage", 7, png_cdr(frames[0], 3)))
    msgs.append(("/chatter", "std_msgs/msg/String", 5, string_cdr("not an image")))
    return msgs


def check_mixed_bag(bag, frames):
    assert image_topics(bag) == {"/camera/image_raw": "sensor_msgs/msg/Image",
                                 "/mono": "sensor_msgs/msg/Image",
                                 "/rgb": "sensor_msgs/msg/Image",
                                 "/camera/compressed": "sensor_msgs/msg/CompressedImage"}
    images = list(read_images(bag, "/camera/image_raw"))
    assert [m.stamp_sec for m in images] == [2, 1, 0]            # in bag time order
    assert [m.timestamp_ns for m in images] == [298, 299, 300]
    for m, frame in zip(images, reversed(frames)):
        assert m.encoding == "bgr8" and m.frame_id == "camera" and m.stamp_nanosec == 500
        np.testing.assert_array_equal(m.image, frame)            # row padding dropped
    (mono,) = read_images(bag, "/mono")
    assert mono.encoding == "mono8" and mono.image.shape == (12, 10)
    np.testing.assert_array_equal(mono.image, frames[0][:, :, 1])
    (rgb,) = read_images(bag, "/rgb")
    assert rgb.encoding == "rgb8"
    np.testing.assert_array_equal(rgb.image, frames[1])
    (png,) = read_images(bag, "/camera/compressed")
    assert png.encoding == "bgr8" and png.topic == "/camera/compressed"
    np.testing.assert_array_equal(png.image, frames[0])          # png is lossless
    assert len(list(read_images(bag, "/camera/image_raw", limit=2))) == 2
    with pytest.raises(BagError, match="set calibration_topic") as err:
        list(read_images(bag))
    assert str(err.value).startswith(f"{bag}: ")
    with pytest.raises(BagError, match="no Image/CompressedImage topic '/nope'"):
        list(read_images(bag, "/nope"))
    assert probe_bag(bag, "/rgb") == "/rgb"
    with pytest.raises(BagError, match=r"image topics \['/camera/compressed'"):
        probe_bag(bag)


@pytest.mark.parametrize("storage", [StoragePlugin.SQLITE3, StoragePlugin.MCAP])
def test_rosbag2_directory_written_by_rosbags(tmp_path, frames, storage):
    bag = write_bag(tmp_path / "bag", mixed_messages(frames), storage)
    check_mixed_bag(str(bag), frames)
    # The storage file alone, and the directory without its metadata.yaml, read the same.
    (storage_file,) = [p for p in bag.iterdir() if p.suffix in (".db3", ".mcap")]
    check_mixed_bag(str(storage_file), frames)
    os.remove(bag / "metadata.yaml")
    check_mixed_bag(str(bag), frames)


@pytest.mark.parametrize("compression", [CompressionType.ZSTD, CompressionType.LZ4,
                                         CompressionType.NONE])
def test_mcap_file_written_by_the_reference_writer(tmp_path, frames, compression):
    path = write_mcap(tmp_path / "bag.mcap", mixed_messages(frames), compression, chunk_size=300)
    check_mixed_bag(str(path), frames)


def test_directory_without_metadata_reads_its_files_in_order(tmp_path, frames):
    bag = tmp_path / "split"
    bag.mkdir()
    for i in (2, 10, 1):              # bag_10 after bag_2: numbers in names compare as numbers
        write_mcap(bag / f"bag_{i}.mcap",
                   [("/cam", "sensor_msgs/msg/Image", i, image_cdr(frames[i % 3], "rgb8", i))])
    assert [m.stamp_sec for m in read_images(str(bag))] == [1, 2, 10]
    assert probe_bag(str(bag)) == "/cam"


def test_probe_bag_errors_name_the_file(tmp_path, frames):
    none = write_mcap(tmp_path / "none.mcap", [("/chatter", "std_msgs/msg/String", 1,
                                                 string_cdr("hi"))])
    with pytest.raises(BagError, match=r"none.mcap: the bag has no sensor_msgs Image or CompressedImage topic \(it has /chatter"):
        probe_bag(str(none))
    bad = write_mcap(tmp_path / "bad.mcap", [("/cam", "sensor_msgs/msg/Image", 1,
                                               image_cdr(frames[0], "bgr16", 1))])
    with pytest.raises(BagError, match=r"bad.mcap: image encoding 'bgr16' is not one of"):
        probe_bag(str(bad))
    with pytest.raises(BagError, match=r"nope: bag not found"):
        probe_bag(str(tmp_path / "nope"))
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(BagError, match=r"empty_dir: the directory has no .db3 or .mcap"):
        probe_bag(str(tmp_path / "empty_dir"))


def test_calibration_reads_bag_images(tmp_path, frames):
    from trt_infer_ros.engine.calibration import image_source
    bag = write_bag(tmp_path / "bag", [("/cam", "sensor_msgs/msg/Image", i,
                                        image_cdr(f, "rgb8", i)) for i, f in enumerate(frames)])
    out = list(image_source(bag_path=str(bag)))
    assert [e for _, e in out] == ["rgb8"] * 3
    np.testing.assert_array_equal(out[2][0], frames[2])


def test_compressed_bags_that_rosbags_would_inflate_unbounded_are_refused(tmp_path, frames):
    bag = write_bag(tmp_path / "bag", [("/cam", "sensor_msgs/msg/Image", 1,
                                        image_cdr(frames[0], "rgb8", 1))])
    meta = (bag / "metadata.yaml").read_text()
    assert "compression_mode: ''" in meta
    (bag / "metadata.yaml").write_text(meta.replace("compression_mode: ''",
                                                    "compression_mode: file"))
    with pytest.raises(BagError, match=r"bag: the bag is file-compressed"):
        probe_bag(str(bag))


# --- the corrupt corpus ----------------------------------------------------------------------

def record(op: int, body: bytes) -> bytes:
    return bytes([op]) + len(body).to_bytes(8, "little") + body


def string(text: str) -> bytes:
    return len(text.encode()).to_bytes(4, "little") + text.encode()


def chunk(records: bytes, compressed: bytes = b"", compression: str = "",
          declared: int | None = None) -> bytes:
    """An MCAP chunk record; `declared` uncompressed size defaults to the true one."""
    payload = compressed if compression else records
    body = (0).to_bytes(8, "little") + (10).to_bytes(8, "little") + \
        (len(records) if declared is None else declared).to_bytes(8, "little") + \
        (0).to_bytes(4, "little") + string(compression) + \
        len(payload).to_bytes(8, "little") + payload
    return record(0x06, body)


def unindexed_mcap(body: bytes) -> bytes:
    """Header, schema, an Image channel, `body`, and a footer without a summary."""
    header = record(0x01, string("ros2") + string("test"))
    schema = record(0x03, (1).to_bytes(2, "little") + string("sensor_msgs/msg/Image") +
                    string("ros2msg") + string(""))
    channel = record(0x04, (1).to_bytes(2, "little") + (1).to_bytes(2, "little") +
                     string("/cam") + string("cdr") + (0).to_bytes(4, "little"))
    footer = record(0x02, bytes(20))
    return MAGIC + header + schema + channel + body + footer + MAGIC


def message(stamp: int, data: bytes) -> bytes:
    return record(0x05, (1).to_bytes(2, "little") + (0).to_bytes(4, "little") +
                  stamp.to_bytes(8, "little") * 2 + data)


def sqlite_db(path, script: str):
    con = sqlite3.connect(path)
    con.executescript(script)
    con.commit()
    con.close()


ROSBAG2_SCHEMA = """
    CREATE TABLE schema(schema_version INTEGER PRIMARY KEY, ros_distro TEXT NOT NULL);
    CREATE TABLE metadata(id INTEGER PRIMARY KEY, metadata_version INTEGER NOT NULL,
                          metadata TEXT NOT NULL);
    CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,
                        serialization_format TEXT NOT NULL, offered_qos_profiles TEXT NOT NULL,
                        type_description_hash TEXT NOT NULL);
    CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL,
                          timestamp INTEGER NOT NULL, data BLOB NOT NULL);
    INSERT INTO schema VALUES (3, 'kilted');
"""


def build_corpus(root, frames) -> tuple[list, list]:
    """(must_fail, may_read): paths that must each raise BagError, and damaged copies of valid
    bags that may still read (a flip in pixels or unused bytes, a cut into sqlite's unused last
    page) but must otherwise raise BagError too."""
    rng = np.random.default_rng(1234)
    root.mkdir()
    msgs = [("/cam", "sensor_msgs/msg/Image", i, image_cdr(f, "bgr8", i))
            for i, f in enumerate(frames)] * 4
    sources = {
        "zstd.mcap": write_mcap(root / "src_zstd.mcap", msgs, CompressionType.ZSTD, 400),
        "lz4.mcap": write_mcap(root / "src_lz4.mcap", msgs, CompressionType.LZ4, 400),
        "plain.mcap": write_mcap(root / "src_plain.mcap", msgs, CompressionType.NONE, 400),
        "rosbags.mcap": next(write_bag(root / "src_rb_mcap", msgs, StoragePlugin.MCAP)
                             .glob("*.mcap")),
        "rosbags.db3": next(write_bag(root / "src_rb_db3", msgs).glob("*.db3")),
    }
    must_fail, may_read = [], []

    def put(name: str, data: bytes, into: list):
        path = root / name
        path.write_bytes(data)
        into.append(path)

    for kind, src in sources.items():
        data = src.read_bytes()
        cuts = sorted({1, 8, 9, len(data) - 1, len(data) - 8, *rng.integers(1, len(data), 30)})
        for cut in cuts:
            # sqlite does not notice a cut into its last page when that page is not needed.
            last_page = kind.endswith(".db3") and cut > len(data) - 4096
            put(f"cut{cut}_{kind}", data[:cut], may_read if last_page else must_fail)
        for i in range(40):
            flipped = bytearray(data)
            pos = int(rng.integers(0, len(data)))
            flipped[pos] ^= 1 << int(rng.integers(0, 8))
            put(f"flip{i}_{pos}_{kind}", bytes(flipped), may_read)

    good = image_cdr(frames[0], "bgr8", 1)
    nested = message(1, good)
    for _ in range(3000):
        nested = chunk(nested)
    put("nested3000.mcap", unindexed_mcap(nested), must_fail)

    zeros = bytes(64 << 20)
    small_zstd = zstd_compress(zeros, level=19)
    assert len(small_zstd) < 4096                    # a ~2 KB chunk that expands to 64 MiB
    # 1 GiB bombs: far past the memory bound below, should anything decompress them whole.
    packer = ZstdCompressor()
    big_zstd = b"".join(packer.compress(zeros) for _ in range(16)) + packer.flush()
    packer = lz4.frame.LZ4FrameCompressor()
    big_lz4 = packer.begin() + b"".join(packer.compress(zeros) for _ in range(16)) + \
        packer.flush()
    for name, compression, payload in (("zstd64M", "zstd", small_zstd),
                                       ("zstd1G", "zstd", big_zstd), ("lz41G", "lz4", big_lz4)):
        for declared in (1024, 64 << 20, 1 << 40, 2**64 - 1):
            mcap = unindexed_mcap(chunk(bytes(1024), payload, compression, declared))
            put(f"bomb_{name}_declares{declared}.mcap", mcap, must_fail)
    # An indexed file whose chunks overlap in time and together declare more than the limit.
    big = [("/cam", "sensor_msgs/msg/Image", 1, image_cdr(np.zeros((4096, 4096, 3), np.uint8),
                                                            "bgr8", 1))]
    one = sources["zstd.mcap"].parent / "src_big.mcap"
    write_mcap(one, big * (MAX_CHUNK_BYTES // (48 << 20) + 1), CompressionType.ZSTD, 1)
    must_fail.append(one)

    put("empty.mcap", b"", must_fail)
    put("empty.db3", b"", must_fail)
    put("magic.mcap", b"\x89MCAP1\r\n" + bytes(100), must_fail)
    put("garbage.mcap", rng.bytes(4096), must_fail)
    put("garbage.db3", rng.bytes(4096), must_fail)
    put("notabag.bag", sources["zstd.mcap"].read_bytes(), must_fail)
    put("only_magic.mcap", MAGIC, must_fail)
    put("no_footer.mcap", unindexed_mcap(message(1, good))[:-37] + MAGIC, must_fail)
    put("bad_record_length.mcap", unindexed_mcap(bytes([0x05]) + (2**62).to_bytes(8, "little")),
        must_fail)
    put("short_message.mcap", unindexed_mcap(record(0x05, bytes(3))), must_fail)
    put("garbage_cdr.mcap", unindexed_mcap(message(1, b"\x00\x01\x00\x00" + rng.bytes(64))),
        must_fail)
    put("huge_sequence_cdr.mcap",
        unindexed_mcap(message(1, good[:40] + (2**32 - 1).to_bytes(4, "little") + good[44:])),
        must_fail)
    put("unknown_compression.mcap", unindexed_mcap(chunk(message(1, good), b"x", "brotli")),
        must_fail)

    for name, text in (("binary", rng.bytes(512)), ("list", b"[1, 2, 3]"),
                       ("empty", b""), ("missing_keys", b"rosbag2_bagfile_information: {}"),
                       ("wrong_types", b"rosbag2_bagfile_information:\n  version: x\n"),
                       ("bad_yaml", b"a: [b\n  c: {"),
                       # lists src_rb_db3.db3, which is not in the directory
                       ("missing_file", (sources["rosbags.db3"].parent / "metadata.yaml")
                        .read_bytes())):
        bag = root / f"meta_{name}"
        bag.mkdir()
        shutil.copy(sources["rosbags.db3"], bag / "x_0.db3")
        (bag / "metadata.yaml").write_bytes(text)
        must_fail.append(bag)

    for name, script in (
            ("unrelated", "CREATE TABLE t(x); INSERT INTO t VALUES (1);"),
            ("no_messages", ROSBAG2_SCHEMA.split("CREATE TABLE messages")[0]),
            ("topics_columns", "CREATE TABLE topics(id INTEGER); CREATE TABLE messages(x);"),
            ("null_data", ROSBAG2_SCHEMA.replace("data BLOB NOT NULL", "data BLOB") +
             "INSERT INTO topics VALUES (1, '/cam', 'sensor_msgs/msg/Image', 'cdr', '', '');"
             "INSERT INTO messages VALUES (1, 1, 5, NULL);"),
            ("text_data", ROSBAG2_SCHEMA +
             "INSERT INTO topics VALUES (1, '/cam', 'sensor_msgs/msg/Image', 'cdr', '', '');"
             "INSERT INTO messages VALUES (1, 1, 5, 'hello');"),
            ("no_topic_row", ROSBAG2_SCHEMA +
             "INSERT INTO topics VALUES (1, '/cam', 'sensor_msgs/msg/Image', 'cdr', '', '');"
             "INSERT INTO messages VALUES (1, 7, 5, x'00010000');"),
            ("wrong_format", ROSBAG2_SCHEMA +
             "INSERT INTO topics VALUES (1, '/cam', 'sensor_msgs/msg/Image', 'json', '', '');"),
            ("string_timestamp", ROSBAG2_SCHEMA +
             "INSERT INTO topics VALUES (1, '/cam', 'sensor_msgs/msg/Image', 'cdr', '', '');"
             "INSERT INTO messages VALUES (1, 1, 'soon', x'00010000');"),
            ("bad_msgdef", ROSBAG2_SCHEMA.replace("(3, 'kilted')", "(4, 'kilted')") +
             "CREATE TABLE message_definitions(id INTEGER PRIMARY KEY, topic_type TEXT,"
             " encoding TEXT, encoded_message_definition TEXT, type_description_hash TEXT);"
             "INSERT INTO message_definitions VALUES (1, 'sensor_msgs/msg/Image', 'weird', '', '');"
             "INSERT INTO topics VALUES (1, '/cam', 'sensor_msgs/msg/Image', 'cdr', '', '');"),
            ("schema_version", ROSBAG2_SCHEMA.replace("schema_version INTEGER PRIMARY KEY",
                                                      "schema_version")
             .replace("VALUES (3, 'kilted')", "VALUES ('x', 'kilted')"))):
        sqlite_db(root / f"schema_{name}.db3", script)
        must_fail.append(root / f"schema_{name}.db3")
    return must_fail, may_read


def read_all(path) -> str:
    """'read' when the bag reads cleanly, 'BagError' for one naming the file, else the type."""
    try:
        topic = probe_bag(str(path))
        for _ in read_images(str(path), topic):
            pass
        return "read"
    except BagError as exc:
        assert str(exc).startswith(f"{path}: "), str(exc)
        assert "\n" not in str(exc)
        return "BagError"
    except Exception as exc:  # noqa: BLE001 - counted and reported below
        return f"{type(exc).__name__}: {exc}"


def test_corrupt_corpus_gives_one_clear_error_in_bounded_time_and_memory(tmp_path, frames):
    must_fail, may_read = build_corpus(tmp_path / "corpus", frames)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10
    outcomes, slowest, biggest = {}, (0.0, ""), (0, "")
    tracemalloc.start()
    start = time.perf_counter()
    try:
        for path in must_fail + may_read:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            t = time.perf_counter()
            outcomes[path] = read_all(path)
            slowest = max(slowest, (time.perf_counter() - t, path.name))
            biggest = max(biggest, (tracemalloc.get_traced_memory()[1] - base, path.name))
    finally:
        tracemalloc.stop()
    total = time.perf_counter() - start
    rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10) - rss_before
    others = {p.name: o for p, o in outcomes.items() if o not in ("read", "BagError")}
    clean = [p.name for p in must_fail if outcomes[p] == "read"]
    flips_failed = sum(outcomes[p] == "BagError" for p in may_read)
    print(f"\ncorpus: {len(outcomes)} inputs ({len(must_fail)} must fail, {len(may_read)} "
          f"may read: {flips_failed} BagError, {len(may_read) - flips_failed} still read); "
          f"other exceptions: {len(others)}; {total:.1f} s in all, slowest {slowest[0]:.2f} s "
          f"({slowest[1]}); peak traced growth {biggest[0] >> 20} MiB ({biggest[1]}); "
          f"peak RSS growth {rss_growth >> 20} MiB")
    assert not others, others
    assert not clean, f"read without error: {clean}"
    assert flips_failed >= len(may_read) // 4        # most flips in a compressed chunk show
    assert slowest[0] < 5.0, slowest
    assert total < 30.0
    assert biggest[0] < 200 << 20, biggest
    assert rss_growth < 300 << 20
