"""/diagnostics from running nodes over real DDS: values move with the frames, the level follows
the expected rate."""
import time

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/test.sh)")
pytest.importorskip("diagnostic_msgs.msg", reason="diagnostic_msgs not installed")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from ros_harness import spin_until  # noqa: E402
from test_ros_detector import astronaut_message, detector, ros, set_parameter, start  # noqa: E402,F401


def statuses(helper, name):
    got = []

    def keep(msg):
        got.extend(s for s in msg.status if s.name.startswith(name))
    helper.create_subscription(DiagnosticArray, "/diagnostics", keep, 10)
    return got


def values(status):
    return {kv.key: kv.value for kv in status.values}


def feed(executor, publisher, msg, seconds, rate_hz=10.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        publisher.publish(msg)
        spin_until(executor, lambda: False, 1.0 / rate_hz)


def test_detector_diagnostics_move_with_frames_and_warn_below_the_expected_rate(ros):
    context, executor, helper, nodes = ros
    got = statuses(helper, "detector_node")
    detector(context, executor, nodes, qos_reliability="reliable", qos_depth=1)
    pub = helper.create_publisher(Image, "image", 10)
    assert spin_until(executor, lambda: pub.get_subscription_count() > 0, 10.0)
    assert spin_until(executor, lambda: bool(got), 5.0), "no /diagnostics from detector_node"
    assert got[-1].level == DiagnosticStatus.OK and got[-1].message == "waiting for frames"

    feed(executor, pub, astronaut_message(), 3.0)
    latest = values(got[-1])
    assert int(latest["frames processed"]) > 3
    assert int(latest["frames in"]) >= int(latest["frames processed"])
    assert float(latest["output rate (Hz)"]) > 0
    for stage in ("convert", "preprocess", "inference", "decode+nms", "publish"):
        assert float(latest[f"{stage} p50 (ms)"]) <= float(latest[f"{stage} p99 (ms)"])
    assert got[-1].hardware_id.startswith("onnxruntime")
    assert got[-1].level == DiagnosticStatus.OK, got[-1].message

    assert set_parameter(executor, helper, "expected_rate", 500.0).successful
    count = len(got)
    feed(executor, pub, astronaut_message(), 2.5)
    warned = [s for s in got[count:] if s.level == DiagnosticStatus.WARN]
    assert warned and "below the expected 500 Hz" in warned[-1].message

    assert not set_parameter(executor, helper, "expected_rate", -1.0).successful


def test_image_source_reports_its_frames(ros):
    from trt_infer_ros.ros.image_source_node import ImageSourceNode
    context, executor, helper, nodes = ros
    got = statuses(helper, "image_source_node")
    start(ImageSourceNode, context, executor, nodes, rate=20.0)
    assert spin_until(executor, lambda: len(got) >= 3, 10.0)
    latest = values(got[-1])
    assert int(latest["frames processed"]) > 10
    assert float(latest["read p50 (ms)"]) >= 0
    assert latest["expected rate (Hz)"] == "20"
