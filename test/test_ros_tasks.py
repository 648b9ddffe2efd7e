"""What detector_node publishes for segmentation, pose and OBB models, the class map, labels
files and agnostic NMS: real nodes over real DDS, models with the exporters' I/O contracts."""
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/test.sh)")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built (run scripts/setup_env.sh)")

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from vision_msgs.msg import Detection2DArray, LabelInfo  # noqa: E402

from onnx_graphs import save_export, ultralytics_metadata  # noqa: E402
from ros_harness import spin_until  # noqa: E402
from test_ros_detector import collect, detector, publish_and_wait, ros, set_parameter  # noqa: E402,F401
from trt_infer_ros.ros.image_conversion import array_to_image  # noqa: E402



def anchors(size=64):
    return sum((size // s) ** 2 for s in (8, 16, 32))


def frame(height=64, width=64):
    msg = array_to_image(np.zeros((height, width, 3), np.uint8), "bgr8")
    msg.header.frame_id = "cam"
    return msg


def first(executor, helper, topic, msg, msg_type=Detection2DArray):
    results = collect(helper, topic, msg_type)
    pub = helper.create_publisher(Image, "image", 1)
    return publish_and_wait(executor, pub, results, msg)


def test_segmentation_publishes_boxes_ids_and_an_instance_mask_image(ros, tmp_path):
    context, executor, helper, nodes = ros
    n = anchors()
    out = np.zeros((1, 4 + 2 + 32, n), np.float32)
    out[0, :4, 0], out[0, 5, 0], out[0, 6, 0] = [10, 32, 20, 64], 0.8, 1.0
    out[0, 7:, 1:] = 50.0                              # mask coefficients, never scores
    protos = -np.ones((1, 32, 16, 16), np.float32)
    protos[0, 0, :8, :8] = 1.0
    path = save_export(tmp_path / "seg.onnx", {"output0": out, "output1": protos},
                       metadata=ultralytics_metadata(task="segment", names=["a", "b"]))
    detector(context, executor, nodes, model_path=path)
    masks = collect(helper, "/detector_node/masks", Image)
    det = first(executor, helper, "/detector_node/detections", frame())
    assert [(d.id, d.results[0].hypothesis.class_id) for d in det.detections] == [("1", "b")]
    assert spin_until(executor, lambda: bool(masks), 10.0), "no mask image"
    m = masks[-1]
    assert (m.encoding, m.height, m.width, m.step, m.is_bigendian) == ("mono16", 64, 64, 128, 0)
    ids = np.frombuffer(bytes(m.data), "<u2").reshape(64, 64)
    want = np.zeros((64, 64), np.uint16)
    want[:32, :20] = 1
    np.testing.assert_array_equal(ids, want)
    assert m.header.frame_id == "cam"


def test_pose_publishes_keypoints_after_the_class(ros, tmp_path):
    context, executor, helper, nodes = ros
    out = np.zeros((1, 4 + 1 + 51, anchors()), np.float32)
    out[0, :4, 2], out[0, 4, 2] = [32, 32, 20, 40], 0.9
    kpts = np.zeros((17, 3), np.float32)
    kpts[:, 0], kpts[:, 1], kpts[:, 2] = np.arange(17) + 20, 30, 0.5
    out[0, 5:, 2] = kpts.reshape(-1)
    path = save_export(tmp_path / "pose.onnx", {"output0": out},
                       metadata=ultralytics_metadata(task="pose", names=["person"],
                                                     kpt_shape=[17, 3]))
    detector(context, executor, nodes, model_path=path)
    (d,) = first(executor, helper, "/detector_node/detections", frame()).detections
    assert d.results[0].hypothesis.class_id == "person"
    points = d.results[1:]
    assert len(points) == 17
    assert points[0].hypothesis.class_id == "keypoint:0:nose"
    assert points[16].hypothesis.class_id == "keypoint:16:right_ankle"
    assert [p.pose.pose.position.x for p in points] == pytest.approx(list(np.arange(17) + 20.0))
    assert all(p.pose.pose.position.y == pytest.approx(30.0) for p in points)
    assert all(p.hypothesis.score == pytest.approx(0.5) for p in points)


def test_obb_rotation_goes_in_bbox_theta(ros, tmp_path):
    context, executor, helper, nodes = ros
    out = np.zeros((1, 4 + 2 + 1, anchors()), np.float32)
    out[0, :4, 0], out[0, 4, 0], out[0, 6, 0] = [32, 32, 40, 10], 0.9, np.pi / 6
    path = save_export(tmp_path / "obb.onnx", {"output0": out},
                       metadata=ultralytics_metadata(task="obb", names=["ship", "plane"]))
    detector(context, executor, nodes, model_path=path)
    (d,) = first(executor, helper, "/detector_node/detections", frame()).detections
    assert d.bbox.center.theta == pytest.approx(np.pi / 6)
    assert (d.bbox.center.position.x, d.bbox.center.position.y) == pytest.approx((32, 32))
    assert (d.bbox.size_x, d.bbox.size_y) == pytest.approx((40, 10))
    assert d.results[0].hypothesis.class_id == "ship"


def test_label_info_reaches_a_late_subscriber_and_labels_file_renames(ros, tmp_path):
    context, executor, helper, nodes = ros
    names = tmp_path / "names.txt"
    names.write_text("# our classes\nforklift\npallet\n")
    out = np.zeros((1, 4 + 2, anchors()), np.float32)
    out[0, :4, 0], out[0, 5, 0] = [32, 32, 20, 20], 0.9
    path = save_export(tmp_path / "det.onnx", {"output0": out},
                       metadata=ultralytics_metadata(names=["a", "b"]))
    detector(context, executor, nodes, model_path=path, labels=str(names))
    spin_until(executor, lambda: False, 0.5)
    infos = []
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    helper.create_subscription(LabelInfo, "/detector_node/label_info", infos.append, latched)
    assert spin_until(executor, lambda: bool(infos), 10.0), "no LabelInfo for a late subscriber"
    assert [(c.class_id, c.class_name) for c in infos[0].class_map] == [(0, "forklift"),
                                                                      (1, "pallet")]
    (d,) = first(executor, helper, "/detector_node/detections", frame()).detections
    assert d.results[0].hypothesis.class_id == "pallet"
    # The threshold it states follows live tuning.
    assert infos[-1].threshold != pytest.approx(0.6)
    assert set_parameter(executor, helper, "score_threshold", 0.6).successful
    assert spin_until(executor, lambda: infos[-1].threshold == pytest.approx(0.6), 5.0), \
        [i.threshold for i in infos]


def test_agnostic_nms_is_live(ros, tmp_path):
    context, executor, helper, nodes = ros
    out = np.zeros((1, 4 + 3, anchors()), np.float32)
    for i, cls in enumerate((4, 5, 6)):                     # one object, three classes
        out[0, :4, i], out[0, cls, i] = [32, 32, 20, 20], 0.9 - 0.1 * i
    path = save_export(tmp_path / "cows.onnx", {"output0": out},
                       metadata=ultralytics_metadata(names=["cow", "sheep", "horse"]))
    detector(context, executor, nodes, model_path=path)
    results = collect(helper, "/detector_node/detections")
    pub = helper.create_publisher(Image, "image", 1)
    before = publish_and_wait(executor, pub, results, frame())
    assert sorted(d.results[0].hypothesis.class_id for d in before.detections) == \
        ["cow", "horse", "sheep"]
    assert set_parameter(executor, helper, "agnostic_nms", True).successful
    after = publish_and_wait(executor, pub, results, frame())
    assert [d.results[0].hypothesis.class_id for d in after.detections] == ["cow"]


@pytest.mark.parametrize("value", ["abc", "640x", "10", "99999", "640x384x3", "６４０"])
def test_bad_input_size_is_refused_at_start(ros, value):
    context, executor, helper, nodes = ros
    with pytest.raises(ValueError, match="input_size"):
        detector(context, executor, nodes, input_size=value)
