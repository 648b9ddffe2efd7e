"""The transport benchmark end to end on one small combination: two real processes over DDS."""
import json

import pytest

pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/test.sh)")

from trt_infer_ros.bench import transport  # noqa: E402


def test_transport_benchmark_measures_a_round_trip(tmp_path):
    args = transport.parser().parse_args(
        ["--sizes", "320x240", "--encodings", "mono8", "--transports", "LARGE_DATA",
         "--reliability", "reliable", "--frames", "5", "--burst-s", "0.2",
         "--output", str(tmp_path)])
    assert transport.run(args) == 0
    (row,) = json.loads((tmp_path / "transport.json").read_text())
    assert (row["size"], row["encoding"], row["transport"]) == ("320x240", "mono8", "LARGE_DATA")
    assert 0 < row["one_way_p50_ms"] <= row["round_trip_p50_ms"] < 1000
    assert row["single_lost"] == 0 and row["delivered_hz"] > 0


def test_the_camera_frames_profile_carries_frames_between_processes(tmp_path):
    """config/fastdds_camera_frames.xml (shared memory with whole-frame segments, UDP for
    discovery) as both processes' default profile: frames bigger than Fast DDS's default
    512 KiB segment arrive."""
    from trt_infer_ros.bench.dds_environment import dds_environment
    from trt_infer_ros.resources import fastdds_camera_profile

    assert fastdds_camera_profile().is_file()
    env = dds_environment("CAMERA_FRAMES", {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"})
    assert env == {"FASTDDS_DEFAULT_PROFILES_FILE": str(fastdds_camera_profile())}
    args = transport.parser().parse_args(
        ["--sizes", "640x480", "--encodings", "bgr8", "--transports", "CAMERA_FRAMES",
         "--reliability", "reliable", "--frames", "5", "--gap-ms", "10", "--burst-s", "0.2",
         "--output", str(tmp_path)])
    assert transport.run(args) == 0
    (row,) = json.loads((tmp_path / "transport.json").read_text())
    assert row["transport"] == "CAMERA_FRAMES" and row["single_lost"] == 0
    assert 0 < row["one_way_p50_ms"] <= row["round_trip_p50_ms"] < 1000


def test_compressed_frames_are_timed_through_their_decoding(tmp_path):
    """jpeg/png rows: a CompressedImage of a real photo, decoded as detector_node decodes it
    before the answer; the payload is far smaller than the raw frame."""
    args = transport.parser().parse_args(
        ["--sizes", "640x480", "--encodings", "bgr8,rgb8,jpeg,png", "--transports", "LARGE_DATA",
         "--reliability", "reliable", "--frames", "4", "--gap-ms", "5", "--burst-s", "0.2",
         "--output", str(tmp_path)])
    assert transport.run(args) == 0
    rows = {r["encoding"]: r for r in json.loads((tmp_path / "transport.json").read_text())}
    assert set(rows) == {"bgr8", "rgb8", "jpeg", "png"}
    assert rows["rgb8"]["single_lost"] == 0
    assert rows["rgb8"]["payload_bytes"] == rows["bgr8"]["payload_bytes"] == 640 * 480 * 3
    for codec in ("jpeg", "png"):
        assert rows[codec]["single_lost"] == 0 and rows[codec]["one_way_p50_ms"] > 0
        assert 1000 < rows[codec]["payload_bytes"] < 640 * 480 * 3
