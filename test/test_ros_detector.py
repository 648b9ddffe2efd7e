"""detector_node and image_source_node as real rclpy nodes over real DDS, with the real model."""
import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/test.sh)")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built (run scripts/setup_env.sh)")

from rcl_interfaces.srv import GetParameters, SetParameters  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

from ros_harness import isolated_context, spin_until, wait_for_subscribers  # noqa: E402
from trt_infer_ros.resources import default_model_path, sample_images_dir  # noqa: E402
from trt_infer_ros.ros.image_conversion import array_to_image  # noqa: E402

IMAGES = sample_images_dir()
ASTRONAUT = IMAGES / "astronaut.jpg"
pytestmark = pytest.mark.skipif(
    not default_model_path().is_file() or not ASTRONAUT.is_file(),
    reason="bundled model or photos missing")


@pytest.fixture
def ros():
    """(context, executor, helper node) torn down after the test."""
    context = isolated_context()
    executor = SingleThreadedExecutor(context=context)
    helper = rclpy.create_node("test_helper", context=context)
    executor.add_node(helper)
    nodes = [helper]
    yield context, executor, helper, nodes
    for node in nodes:
        executor.remove_node(node)
        node.destroy_node()
    executor.shutdown()
    rclpy.shutdown(context=context)


def start(node_class, context, executor, nodes, **params):
    overrides = [Parameter(k, value=v) for k, v in params.items()]
    node = node_class(context=context, parameter_overrides=overrides)
    executor.add_node(node)
    nodes.append(node)
    return node


def detector(context, executor, nodes, **params):
    from trt_infer_ros.ros.detector_node import DetectorNode
    params.setdefault("backend", "onnxruntime")
    return start(DetectorNode, context, executor, nodes, **params)


def collect(helper, topic, msg_type=Detection2DArray):
    received = []
    helper.create_subscription(msg_type, topic, received.append, 10)
    return received


def labels(msg):
    return [(d.results[0].hypothesis.class_id, d.results[0].hypothesis.score) for d in msg.detections]


def test_source_feeds_detector_and_finds_the_astronaut(ros):
    from trt_infer_ros.ros.image_source_node import ImageSourceNode
    context, executor, helper, nodes = ros
    frames = collect(helper, "image", Image)
    results = collect(helper, "/detector_node/detections")
    detector(context, executor, nodes, qos_reliability="reliable", qos_depth=5)
    photos = sorted(IMAGES.glob("*.jpg"))
    source = start(ImageSourceNode, context, executor, nodes, source=str(IMAGES), loop=False,
                   rate=2.0, frame_id="test_camera")

    assert spin_until(executor, lambda: len(results) >= len(photos), 60.0), \
        f"got {len(results)} detection messages for {len(photos)} photos"
    assert source.published == len(photos)
    # Every result carries the header of the frame it came from.
    assert [m.header.stamp for m in results] == [m.header.stamp for m in frames]
    assert all(m.header.frame_id == "test_camera" for m in results)

    astronaut = results[[p.name for p in photos].index("astronaut.jpg")]
    height, width = cv2.imread(str(ASTRONAUT)).shape[:2]
    people = [d for d in astronaut.detections
              if d.results[0].hypothesis.class_id == "person"
              and d.results[0].hypothesis.score > 0.5]
    assert people, f"no person found in the astronaut photo: {labels(astronaut)}"
    box = people[0].bbox
    # Boxes are in source pixels: inside the photo, and covering its centre region.
    assert 0 <= box.center.position.x - box.size_x / 2 and box.center.position.x + box.size_x / 2 <= width
    assert 0 <= box.center.position.y - box.size_y / 2 and box.center.position.y + box.size_y / 2 <= height
    assert box.size_x > width * 0.3 and box.size_y > height * 0.5


def astronaut_message(encoding="bgr8"):
    image = cv2.imread(str(ASTRONAUT))
    if encoding == "rgb8":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    msg = array_to_image(image, encoding)
    msg.header.frame_id = "cam"
    return msg


def publish_and_wait(executor, publisher, results, msg, timeout_s=20.0):
    """Publish `msg` until one new result arrives; returns that result."""
    before = len(results)
    for _ in range(int(timeout_s / 0.5)):
        publisher.publish(msg)
        if spin_until(executor, lambda: len(results) > before, 0.5):
            return results[-1]
    raise AssertionError("detector_node published nothing")


def call(executor, client, request, timeout_s=10.0):
    assert client.wait_for_service(timeout_sec=timeout_s), f"{client.srv_name} not available"
    future = client.call_async(request)
    assert spin_until(executor, future.done, timeout_s), f"{client.srv_name} did not answer"
    return future.result()


def set_parameter(executor, helper, name, value):
    client = helper.create_client(SetParameters, "/detector_node/set_parameters")
    request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
    return call(executor, client, request).results[0]


def get_parameter(executor, helper, name):
    client = helper.create_client(GetParameters, "/detector_node/get_parameters")
    return call(executor, client, GetParameters.Request(names=[name])).values[0]


def test_live_parameter_changes_through_the_set_parameters_service(ros):
    context, executor, helper, nodes = ros
    results = collect(helper, "/detector_node/detections")
    publisher = helper.create_publisher(Image, "image", 1)
    detector(context, executor, nodes, score_threshold=0.05)
    wait_for_subscribers(executor, publisher)
    msg = astronaut_message()

    low = publish_and_wait(executor, publisher, results, msg)
    low_scores = [s for _, s in labels(low)]
    assert any(s < 0.5 for s in low_scores), f"expected low-score detections: {labels(low)}"

    assert set_parameter(executor, helper, "score_threshold", 0.5).successful
    high = publish_and_wait(executor, publisher, results, msg)
    assert labels(high) and all(s >= 0.5 for _, s in labels(high))
    assert len(high.detections) < len(low.detections)

    # Out of the declared range: rejected with a reason, and the old value stays.
    rejected = set_parameter(executor, helper, "score_threshold", 1.5)
    assert not rejected.successful and rejected.reason
    assert get_parameter(executor, helper, "score_threshold").double_value == pytest.approx(0.5)

    rejected = set_parameter(executor, helper, "class_filter", "person,unicorn")
    assert not rejected.successful and "unicorn" in rejected.reason

    rejected = set_parameter(executor, helper, "backend", "tinygrad")
    assert not rejected.successful, "backend is read-only at run time"

    assert set_parameter(executor, helper, "score_threshold", 0.05).successful
    assert set_parameter(executor, helper, "class_filter", "person").successful
    only_people = publish_and_wait(executor, publisher, results, msg)
    assert only_people.detections and {c for c, _ in labels(only_people)} == {"person"}

    assert set_parameter(executor, helper, "max_detections", 1).successful
    one = publish_and_wait(executor, publisher, results, msg)
    assert len(one.detections) == 1


def test_bad_messages_are_dropped_and_the_node_keeps_going(ros):
    context, executor, helper, nodes = ros
    results = collect(helper, "/detector_node/detections")
    publisher = helper.create_publisher(Image, "image", 10)
    detector(context, executor, nodes, qos_reliability="reliable", qos_depth=10)
    wait_for_subscribers(executor, publisher)

    wrong_encoding = Image(height=4, width=4, encoding="16UC1", step=8, data=bytes(32))
    truncated = Image(height=100, width=100, encoding="bgr8", step=300, data=bytes(300))
    empty = Image(height=0, width=0, encoding="bgr8", step=0)
    for bad in (wrong_encoding, truncated, empty):
        publisher.publish(bad)
        spin_until(executor, lambda: False, 0.3)
    assert results == []

    good = publish_and_wait(executor, publisher, results, astronaut_message("rgb8"))
    assert good.header.frame_id == "cam"


def test_overlay_is_published_while_someone_subscribes(ros):
    context, executor, helper, nodes = ros
    results = collect(helper, "/detector_node/detections")
    node = detector(context, executor, nodes)
    publisher = helper.create_publisher(Image, "image", 1)
    wait_for_subscribers(executor, publisher)
    overlays = []
    helper.create_subscription(Image, "/detector_node/image", overlays.append, 10)
    assert spin_until(executor, lambda: node._output.wants_overlay, 10.0)

    msg = astronaut_message()
    publish_and_wait(executor, publisher, results, msg)
    assert spin_until(executor, lambda: overlays, 5.0), "no overlay image"
    overlay = overlays[-1]
    assert (overlay.width, overlay.height, overlay.encoding) == (msg.width, msg.height, "bgr8")
    drawn = np.frombuffer(overlay.data, np.uint8).reshape(msg.height, msg.width, 3)
    original = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)
    assert (drawn != original).any(), "overlay shows no boxes"


def test_disabled_node_publishes_nothing(ros):
    context, executor, helper, nodes = ros
    results = collect(helper, "/detector_node/detections")
    detector(context, executor, nodes, enable=False)
    publisher = helper.create_publisher(Image, "image", 1)
    wait_for_subscribers(executor, publisher)
    for _ in range(5):
        publisher.publish(astronaut_message())
        spin_until(executor, lambda: False, 0.2)
    assert results == []
    assert set_parameter(executor, helper, "enable", True).successful
    publish_and_wait(executor, publisher, results, astronaut_message())


def test_unknown_model_path_fails_with_a_clear_error(ros):
    from trt_infer_ros.ros.detector_node import DetectorNode
    context, executor, _, nodes = ros
    with pytest.raises(ValueError, match="model_path: no such file"):
        start(DetectorNode, context, executor, nodes, model_path="/nonexistent/model.onnx")


@pytest.mark.parametrize("path, reason", [("/tmp", "is a directory"),
                                          ("/dev/zero", "not a regular file"),
                                          ("EMPTY", "is empty")])
def test_model_path_that_is_no_model_file_says_what_it_is(ros, tmp_path, path, reason):
    from trt_infer_ros.ros.detector_node import DetectorNode
    context, executor, _, nodes = ros
    if path == "EMPTY":
        path = str(tmp_path / "empty.onnx")
        open(path, "wb").close()
    with pytest.raises(ValueError, match=reason):
        start(DetectorNode, context, executor, nodes, model_path=path)


@pytest.mark.parametrize("device", ["nonsense", "CUDA:x", "DLA-1", "cpu cuda"])
def test_unknown_device_is_named_before_any_backend_is_tried(ros, device):
    from trt_infer_ros.ros.detector_node import DetectorNode
    context, executor, _, nodes = ros
    with pytest.raises(ValueError, match="is not a device name"):
        start(DetectorNode, context, executor, nodes, device=device)


def test_a_burst_of_frames_is_not_queued_the_newest_is_processed(ros):
    context, executor, helper, nodes = ros
    results = collect(helper, "/detector_node/detections")
    publisher = helper.create_publisher(Image, "image", 20)
    detector(context, executor, nodes, qos_reliability="reliable", qos_depth=20)
    wait_for_subscribers(executor, publisher)
    burst = []
    for i in range(10):
        msg = astronaut_message()
        msg.header.stamp.sec, msg.header.frame_id = 1000 + i, f"frame_{i}"
        burst.append(msg)
    for msg in burst:                       # far faster than one inference
        publisher.publish(msg)
    assert spin_until(executor, lambda: results and results[-1].header.frame_id == "frame_9", 30.0)
    spin_until(executor, lambda: False, 0.5)
    assert len(results) < len(burst), "every frame of the burst was processed: frames queue up"
    ids = [m.header.frame_id for m in results]
    assert ids == sorted(ids, key=lambda s: int(s.split("_")[1])), "results out of order"
