"""The graph benchmark end to end: detector_node in its own process over real DDS on the
bundled model, a short fixed-rate run and a two-trial search; its JSON, table and PNGs, and
the plot command on its result and on a tegrastats log."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/test.sh)")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built (run scripts/setup_env.sh)")

from ros_harness import domain_id  # noqa: E402
from trt_infer_ros.bench.nodes import GRAPHS, missing_commands  # noqa: E402

from test_measure_tegrastats import JP5_ORIN_NX, JP6_ORIN_NANO  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _run(args, timeout=120):
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id()), PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def bench_result(tmp_path_factory):
    if missing_commands(GRAPHS["detector"]):
        pytest.skip("detector_node is not installed (run scripts/setup_env.sh)")
    out = tmp_path_factory.mktemp("bench")
    proc = _run(["trt_infer_ros.bench.cli", "--rate", "4", "--frames", "8",
                 "--warmup-frames", "2", "--search-trials", "2", "--size", "320x240",
                 "--param", "backend=onnxruntime", "--power", "auto", "--output", str(out)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_result_json_reports_latency_rate_cpu_and_search(bench_result):
    out, stdout = bench_result
    r = json.loads((out / "result.json").read_text())
    fixed = r["fixed_rate"]
    assert fixed["rate_hz"] == 4 and fixed["sent"] == 8
    assert fixed["received"] >= 7                       # 4 Hz is far below this graph's peak
    lat = fixed["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"] < 5000
    assert len(fixed["latencies_ms"]) == fixed["received"]
    assert fixed["cpu_percent_of_one_core"]["detector_node"] > 0
    assert fixed["achieved_tops"] > 0 and r["ops"]["macs"] == 1295249792
    search = r["search"]
    assert search["drop_limit"] == 0.05 and len(search["trials"]) == 2
    assert [t["rate_hz"] for t in search["trials"]] == [4, 8]
    assert r["nodes"][0][0].endswith("detector_node")
    if r["power"]["source"] is None:
        assert r["power"]["note"].startswith("power not measured")
    if not r["graph_vs_eager"]["available"]:
        assert "no frame graph" in r["graph_vs_eager"]["reason"]
    summary = (out / "summary.md").read_text()
    assert "| fixed 4 Hz | 4.00 |" in summary and "peak sustainable input rate" in summary
    assert "p99 ms" in stdout


def test_pngs_are_written(bench_result):
    out, _ = bench_result
    for name in ("latency.png", "rate_sweep.png", "timeline.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, name


def test_plot_command_on_the_result_and_on_a_tegrastats_log(bench_result, tmp_path):
    out, _ = bench_result
    target = tmp_path / "again.png"
    proc = _run(["trt_infer_ros.bench.plot_cli", str(out / "result.json"), "--output",
                 str(target)])
    assert proc.returncode == 0, proc.stderr
    assert target.read_bytes().startswith(PNG)
    log = tmp_path / "tegrastats.log"
    log.write_text("\n".join([JP6_ORIN_NANO, "garbage", JP5_ORIN_NX, JP6_ORIN_NANO]) + "\n")
    proc = _run(["trt_infer_ros.bench.plot_cli", str(log), "--interval", "0.5"])
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).read_bytes().startswith(PNG)
    proc = _run(["trt_infer_ros.bench.plot_cli", str(tmp_path / "missing.log")])
    assert proc.returncode == 2 and "not found" in proc.stderr


def test_split_pair_runs_by_name_or_is_skipped_with_the_reason(tmp_path):
    """backbone_node + head_node wired by the benchmark (features remapped between them)."""
    missing = missing_commands(GRAPHS["split"])
    proc = _run(["trt_infer_ros.bench.cli", "--graph", "split", "--rate", "3", "--frames", "6",
                 "--warmup-frames", "2", "--no-search", "--size", "320x240", "--param",
                 "backend=onnxruntime", "--param", f"split_cache_dir={tmp_path / 'cache'}",
                 "--power", "none", "--graph-vs-eager", "off", "--output", str(tmp_path)])
    result = json.loads((tmp_path / "result.json").read_text())
    if missing:
        assert proc.returncode == 3 and "not installed here" in proc.stderr
        assert result["skipped"]
        return
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert [Path(n[0]).name for n in result["nodes"]] == ["backbone_node", "head_node"]
    assert result["fixed_rate"]["received"] >= 5
    assert result["fixed_rate"]["latency_ms"]["p50"] > 0
    assert set(result["fixed_rate"]["cpu_percent_of_one_core"]) == {"backbone_node", "head_node"}
