"""backbone_node + head_node as real rclpy nodes over real DDS, with the real model on
onnxruntime: same detections as detector_node, bad bundles dropped, restarts resumed."""
import array
import json
import struct
import time

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/test.sh)")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built (run scripts/setup_env.sh)")

from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import UInt8MultiArray  # noqa: E402
from vision_msgs.msg import Detection2DArray, LabelInfo  # noqa: E402

from ros_harness import spin_until, wait_for_subscribers  # noqa: E402
from test_ros_detector import ros, start  # noqa: E402,F401  (the same node fixture)
from trt_infer_ros.ros.detection_output import LATCHED  # noqa: E402
from trt_infer_ros.resources import default_model_path, sample_images_dir  # noqa: E402
from trt_infer_ros.ros.image_conversion import array_to_image  # noqa: E402

PHOTOS = sorted(sample_images_dir().glob("*.jpg"))
pytestmark = pytest.mark.skipif(not default_model_path().is_file() or not PHOTOS,
                                reason="bundled model or photos missing")
FEATURES = "/backbone_node/features"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("split"))


def stop(node, executor, nodes):
    executor.remove_node(node)
    nodes.remove(node)
    node.destroy_node()


def backbone(ros, cache_dir, **params):
    from trt_infer_ros.ros.backbone_node import BackboneNode
    context, executor, _, nodes = ros
    return start(BackboneNode, context, executor, nodes, backend="onnxruntime",
                 split_cache_dir=cache_dir, qos_reliability="reliable", **params)


def _head(context, executor, nodes, cache_dir, **params):
    from trt_infer_ros.ros.head_node import HeadNode
    params = dict(backend="onnxruntime", split_cache_dir=cache_dir, **params)
    node = HeadNode(context=context, cli_args=["--ros-args", "-r", f"features:={FEATURES}"],
                    parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    executor.add_node(node)
    nodes.append(node)
    return node


def collect(helper, topic, msg_type=Detection2DArray):
    received = []
    helper.create_subscription(msg_type, topic, received.append, 10)
    return received


def photo_message(path, index):
    msg = array_to_image(cv2.imread(str(path)), "bgr8")
    msg.header.frame_id = f"photo{index}"
    msg.header.stamp.sec = 1000 + index
    return msg


def until_result(executor, publisher, results, msg, timeout_s):
    """Publish `msg` every 0.25 s until a result with its header arrives; the result."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        publisher.publish(msg)
        found = [r for r in results if r.header.stamp == msg.header.stamp
                 and r.header.frame_id == msg.header.frame_id]
        if found or spin_until(executor, lambda: any(
                r.header.stamp == msg.header.stamp for r in results), 0.25):
            return next(r for r in results if r.header.stamp == msg.header.stamp)
    raise AssertionError(f"no result for {msg.header.frame_id} within {timeout_s} s")


def as_rows(msg):
    return [(d.results[0].hypothesis.class_id, d.results[0].hypothesis.score,
             d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.size_x, d.bbox.size_y)
            for d in msg.detections]


def test_the_pair_publishes_what_detector_node_publishes(ros, cache_dir):
    from trt_infer_ros.ros.detector_node import DetectorNode
    context, executor, helper, nodes = ros
    start(DetectorNode, context, executor, nodes, backend="onnxruntime",
          qos_reliability="reliable", score_threshold=0.2)
    backbone(ros, cache_dir)
    _head(context, executor, nodes, cache_dir, score_threshold=0.2)
    whole = collect(helper, "/detector_node/detections")
    split = collect(helper, "/head_node/detections")
    labels = []
    helper.create_subscription(LabelInfo, "/head_node/label_info", labels.append, LATCHED)
    publisher = helper.create_publisher(Image, "image", 5)
    wait_for_subscribers(executor, publisher, 2)
    compared = 0
    for i, path in enumerate(PHOTOS):
        msg = photo_message(path, i)
        a = until_result(executor, publisher, whole, msg, 30.0)
        b = until_result(executor, publisher, split, msg, 30.0)
        rows_a, rows_b = as_rows(a), as_rows(b)
        assert [r[0] for r in rows_a] == [r[0] for r in rows_b], path.name
        assert np.allclose([r[1] for r in rows_a], [r[1] for r in rows_b], atol=1e-6), path.name
        assert np.allclose([r[2:] for r in rows_a], [r[2:] for r in rows_b], atol=1e-3), path.name
        assert b.header.frame_id == msg.header.frame_id
        compared += len(rows_a)
    assert compared >= 3
    assert spin_until(executor, lambda: labels, 5.0) and len(labels[0].class_map) == 80


def bundle_bytes(meta, version=1, payload=b""):
    raw = json.dumps(meta).encode()
    offset = (16 + len(raw) + 63) // 64 * 64 if payload else 0
    head = struct.pack("<4sHHII", b"TIRB", version, 0, len(raw), offset) + raw
    return head + b"\0" * (offset - len(head)) + payload if payload else head


def test_bad_bundles_are_dropped_and_the_head_keeps_working(ros, cache_dir):
    from trt_infer_ros.transport.host import host_id
    context, executor, helper, nodes = ros
    node = _head(context, executor, nodes, cache_dir)
    results = collect(helper, "/head_node/detections")
    attacker = helper.create_publisher(UInt8MultiArray, FEATURES, 10)
    wait_for_subscribers(executor, attacker)
    meta = {"seq": 1, "stamp": [1, 2], "frame_id": "x", "transform": [1, 1, 0, 0, 10, 10],
            "tensors": [{"name": "t", "dtype": "<f4", "shape": [1, 4], "offset": 0,
                         "nbytes": 16}], "location": {"kind": "inline"}}
    stale = dict(meta, location={"kind": "shm", "path": "/dev/shm/trt_infer_ros-ring-"
                                 "0123456789abcdef", "ring_id": 5, "slot": 0, "slot_seq": 1,
                                 "host": host_id()})
    foreign = dict(stale, location=dict(stale["location"], host="elsewhere/boot"))
    escape = dict(stale, location=dict(stale["location"], path="/etc/passwd"))
    bad = [b"", b"TIRB", bundle_bytes(meta, version=2), bundle_bytes(meta)[:-5],
           bundle_bytes(meta, payload=b"\0" * 8), bundle_bytes(stale), bundle_bytes(foreign),
           bundle_bytes(escape), bundle_bytes(dict(meta, location={"kind": "carrier pigeon"})),
           bundle_bytes(dict(meta, tensors=[dict(meta["tensors"][0], dtype="|O")]),
                        payload=b"\0" * 16),
           bundle_bytes(meta, payload=b"\0" * 16),    # well-formed, but not the head's inputs
           b"\xff" * 5000]
    requests = collect(helper, FEATURES + "/inline_request",
                       __import__("std_msgs.msg", fromlist=["String"]).String)
    for raw in bad:
        attacker.publish(UInt8MultiArray(data=array.array("B", raw)))
        spin_until(executor, lambda: False, 0.15)
    assert spin_until(executor, lambda: node._diagnostics.total("dropped") + node._diagnostics.total("rejected") >= 8, 10.0)
    assert results == []
    assert spin_until(executor, lambda: requests, 3.0), "a foreign handle asks for inline bytes"
    # The node is alive: real features still become detections.
    backbone(ros, cache_dir)
    publisher = helper.create_publisher(Image, "image", 5)
    wait_for_subscribers(executor, publisher)
    assert until_result(executor, publisher, results, photo_message(PHOTOS[0], 0), 30.0)


def test_restarts_resume_within_two_seconds(ros, cache_dir):
    context, executor, helper, nodes = ros
    first_backbone = backbone(ros, cache_dir)
    first_head = _head(context, executor, nodes, cache_dir)
    results = collect(helper, "/head_node/detections")
    publisher = helper.create_publisher(Image, "image", 5)
    wait_for_subscribers(executor, publisher)
    until_result(executor, publisher, results, photo_message(PHOTOS[0], 0), 30.0)

    stop(first_head, executor, nodes)                 # the head restarts
    _head(context, executor, nodes, cache_dir)
    ready = time.monotonic()
    until_result(executor, publisher, results, photo_message(PHOTOS[1], 1), 10.0)
    assert time.monotonic() - ready < 2.0

    stop(first_backbone, executor, nodes)             # the backbone restarts: a new ring
    backbone(ros, cache_dir)
    ready = time.monotonic()
    until_result(executor, publisher, results, photo_message(PHOTOS[2], 2), 10.0)
    assert time.monotonic() - ready < 2.0
