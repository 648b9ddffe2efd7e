"""The ROS 2 environment the project runs on: rclpy over Fast DDS, vision_msgs, parameter services.

These run against whatever ROS is importable (the pip-wheel venv of scripts/setup_env.sh, or a
distro install) and fail when that environment cannot carry the project's traffic.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

rclpy = pytest.importorskip("rclpy")

from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue, SetParametersResult  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402


def _domain_id() -> int:
    """This run's DDS domain: ROS_DOMAIN_ID when set (scripts/test.sh sets one per run)."""
    value = os.environ.get("ROS_DOMAIN_ID")
    return int(value) if value else 1 + (os.getpid() + 53) % 100


@pytest.fixture
def ros_context():
    context = Context()
    rclpy.init(context=context, domain_id=_domain_id())
    executor = SingleThreadedExecutor(context=context)
    nodes: list[Node] = []

    def make_node(name: str) -> Node:
        node = Node(name, context=context)
        nodes.append(node)
        executor.add_node(node)
        return node

    yield make_node, executor
    for node in nodes:
        executor.remove_node(node)
        node.destroy_node()
    executor.shutdown()
    rclpy.shutdown(context=context)


def _spin_until(executor, done, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not done():
        executor.spin_once(timeout_sec=0.05)
    return done()


def test_vision_msgs_matches_the_4x_interface():
    from vision_msgs.msg import (BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesis,
                                 ObjectHypothesisWithPose, Point2D, Pose2D)

    # Field names and types of upstream vision_msgs 4.x, which the detector publishes.
    expected = {
        Detection2DArray: {"header": "std_msgs/Header",
                           "detections": "sequence<vision_msgs/Detection2D>"},
        Detection2D: {"header": "std_msgs/Header",
                      "results": "sequence<vision_msgs/ObjectHypothesisWithPose>",
                      "bbox": "vision_msgs/BoundingBox2D", "id": "string"},
        BoundingBox2D: {"center": "vision_msgs/Pose2D", "size_x": "double", "size_y": "double"},
        Pose2D: {"position": "vision_msgs/Point2D", "theta": "double"},
        Point2D: {"x": "double", "y": "double"},
        ObjectHypothesisWithPose: {"hypothesis": "vision_msgs/ObjectHypothesis",
                                   "pose": "geometry_msgs/PoseWithCovariance"},
        ObjectHypothesis: {"class_id": "string", "score": "double"},
    }
    for msg_type, fields in expected.items():
        assert msg_type.get_fields_and_field_types() == fields, msg_type.__name__


def test_rmw_is_fast_dds():
    assert rclpy.get_rmw_implementation_identifier() == os.environ.get(
        "RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")


_PUBLISHER = textwrap.dedent("""
    import sys, time
    import numpy as np
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

    context = Context()
    rclpy.init(context=context, domain_id=int(sys.argv[1]))
    node = Node("env_check_publisher", context=context)
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    det_pub = node.create_publisher(Detection2DArray, "env_check/detections", qos)
    img_pub = node.create_publisher(Image, "env_check/image", qos)
    deadline = time.monotonic() + 15.0
    while (det_pub.get_subscription_count() < 1 or img_pub.get_subscription_count() < 1) \\
            and time.monotonic() < deadline:
        time.sleep(0.02)

    msg = Detection2DArray()
    msg.header.frame_id = "camera_optical"
    msg.header.stamp.sec = 1234
    det = Detection2D()
    det.bbox.center.position.x = 320.5
    det.bbox.center.position.y = 240.25
    det.bbox.size_x = 64.0
    det.bbox.size_y = 48.0
    hyp = ObjectHypothesisWithPose()
    hyp.hypothesis.class_id = "person"
    hyp.hypothesis.score = 0.875
    det.results.append(hyp)
    msg.detections.append(det)

    img = Image(height=480, width=640, encoding="bgr8", step=640 * 3)
    img.data = (np.arange(480 * 640 * 3) % 251).astype(np.uint8).tobytes()
    for _ in range(40):                 # the subscriber exits us once it has both
        det_pub.publish(msg)
        img_pub.publish(img)
        time.sleep(0.1)
    node.destroy_node()
    rclpy.shutdown(context=context)
""")


def test_detections_and_a_vga_image_cross_processes(ros_context):
    """A second process publishes; this one receives over DDS (discovery, serialization)."""
    import numpy as np
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    make_node, executor = ros_context
    node = make_node("env_check_subscriber")
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    got: dict = {}
    node.create_subscription(Detection2DArray, "env_check/detections",
                             lambda m: got.setdefault("det", m), qos)
    node.create_subscription(Image, "env_check/image", lambda m: got.setdefault("img", m), qos)

    child = subprocess.Popen([sys.executable, "-c", _PUBLISHER, str(_domain_id())],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        ok = _spin_until(executor, lambda: "det" in got and "img" in got, timeout_s=20.0)
    finally:
        child.kill()
        output = child.communicate()[0]
    assert ok, f"nothing received from the publisher process; its output:\n{output}"

    det = got["det"]
    assert det.header.frame_id == "camera_optical" and det.header.stamp.sec == 1234
    (d,) = det.detections
    assert (d.bbox.center.position.x, d.bbox.center.position.y) == (320.5, 240.25)
    assert (d.bbox.size_x, d.bbox.size_y) == (64.0, 48.0)
    assert d.results[0].hypothesis.class_id == "person"
    assert d.results[0].hypothesis.score == 0.875

    img = got["img"]
    assert (img.height, img.width, img.encoding, img.step) == (480, 640, "bgr8", 1920)
    pixels = np.frombuffer(bytes(img.data), np.uint8)
    assert np.array_equal(pixels, (np.arange(480 * 640 * 3) % 251).astype(np.uint8))


def test_set_parameters_service_changes_a_declared_parameter(ros_context):
    """What `ros2 param set /owner score_threshold 0.6` does, through the node's service."""
    make_node, executor = ros_context
    owner = make_node("env_param_owner")
    owner.declare_parameter("score_threshold", 0.25)

    def validate(params):
        for p in params:
            if p.name == "score_threshold" and not 0.0 <= p.value <= 1.0:
                return SetParametersResult(successful=False, reason="must be within [0, 1]")
        return SetParametersResult(successful=True)

    owner.add_on_set_parameters_callback(validate)

    caller = make_node("env_param_caller")
    client = caller.create_client(SetParameters, "/env_param_owner/set_parameters")
    assert _spin_until(executor, client.service_is_ready, timeout_s=10.0), "service not found"

    def set_threshold(value: float):
        request = SetParameters.Request(parameters=[Parameter(
            name="score_threshold",
            value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))])
        future = client.call_async(request)
        assert _spin_until(executor, future.done, timeout_s=10.0), "no service response"
        return future.result().results[0]

    accepted = set_threshold(0.6)
    assert accepted.successful
    assert owner.get_parameter("score_threshold").value == pytest.approx(0.6)

    rejected = set_threshold(1.5)
    assert not rejected.successful and "[0, 1]" in rejected.reason
    assert owner.get_parameter("score_threshold").value == pytest.approx(0.6)


def test_package_share_directory_resolves_through_ament_prefix():
    if not os.environ.get("AMENT_PREFIX_PATH"):
        pytest.skip("AMENT_PREFIX_PATH unset (source scripts/env.sh)")
    from ament_index_python.packages import get_package_share_directory

    share = get_package_share_directory("trt_infer_ros")
    assert os.path.isfile(os.path.join(share, "package.xml"))
