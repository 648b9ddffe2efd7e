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
