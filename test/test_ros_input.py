"""Frames from a capture source inside the process and from compressed topics give the same
detections as raw frames over DDS; a missing or vanished source is survived and reported."""
import os

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/test.sh)")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built (run scripts/setup_env.sh)")

from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from ros_harness import spin_until  # noqa: E402
from test_ros_detector import IMAGES, collect, detector, publish_and_wait, ros  # noqa: E402,F401
from trt_infer_ros.pipeline.detector import build_pipeline  # noqa: E402
from trt_infer_ros.resources import default_model_path  # noqa: E402
from trt_infer_ros.ros.image_conversion import array_to_image  # noqa: E402


def rows(msg):
    return sorted((d.results[0].hypothesis.class_id, round(d.results[0].hypothesis.score, 5),
                   round(d.bbox.center.position.x, 3), round(d.bbox.center.position.y, 3),
                   round(d.bbox.size_x, 3), round(d.bbox.size_y, 3)) for d in msg.detections)


def expected_rows(pipeline, image):
    dets = pipeline(image, "bgr8")
    return sorted((pipeline.adapter.class_names[int(c)], round(float(s), 5),
                   round(float((b[0] + b[2]) / 2), 3), round(float((b[1] + b[3]) / 2), 3),
                   round(float(b[2] - b[0]), 3), round(float(b[3] - b[1]), 3))
                  for b, s, c in zip(dets.boxes, dets.scores, dets.class_ids))


@pytest.fixture
def video(tmp_path):
    """A short MJPG video of the bundled photos, and its frames as a reader decodes them."""
    path = str(tmp_path / "photos.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for photo in sorted(IMAGES.glob("*.jpg")):
        writer.write(cv2.resize(cv2.imread(str(photo)), (320, 240)))
    writer.release()
    capture, frames = cv2.VideoCapture(path), []
    ok, frame = capture.read()
    while ok:
        frames.append(frame)
        ok, frame = capture.read()
    capture.release()
    assert frames, "OpenCV wrote no readable video here"
    return path, frames


def test_captured_video_matches_the_same_frames_over_dds(ros, video):
    context, executor, helper, nodes = ros
    path, frames = video
    pipeline = build_pipeline(str(default_model_path()), backend="onnxruntime")
    expected = [expected_rows(pipeline, f) for f in frames]

    captured = collect(helper, "/detector_node/detections")
    detector(context, executor, nodes, source=path, frame_id="video_cam")
    assert spin_until(executor, lambda: len(captured) >= 6, 60.0), "nothing from the capture"
    assert all(m.header.frame_id == "video_cam" for m in captured)
    assert all(rows(m) in expected for m in captured), "a captured frame's detections differ"

    # The same frames over DDS, to a detector subscribing as usual.
    nodes[-1].destroy_node()
    executor.remove_node(nodes.pop())
    subscribed = collect(helper, "/detector_node/detections")
    detector(context, executor, nodes, qos_reliability="reliable")
    pub = helper.create_publisher(Image, "image", 1)
    for frame, want in zip(frames, expected):
        got = publish_and_wait(executor, pub, subscribed, array_to_image(frame, "bgr8"))
        assert rows(got) == want


@pytest.mark.parametrize("codec", [".png", ".jpg"])
def test_compressed_input_matches_raw(ros, codec):
    context, executor, helper, nodes = ros
    photo = cv2.imread(str(IMAGES / "astronaut.jpg"))
    results = collect(helper, "/detector_node/detections")
    detector(context, executor, nodes, image_transport="compressed")
    pub = helper.create_publisher(CompressedImage, "image/compressed", 1)
    ok, encoded = cv2.imencode(codec, photo)
    msg = CompressedImage(format=f"bgr8; {codec[1:]} compressed bgr8")
    msg.data = encoded.tobytes()
    got = publish_and_wait(executor, pub, results, msg)
    pipeline = build_pipeline(str(default_model_path()), backend="onnxruntime")
    want = expected_rows(pipeline, photo)
    if codec == ".png":                              # lossless: identical
        assert rows(got) == want
    else:                                            # JPEG: the same objects, boxes close
        strong = lambda rs: [(r[0], r[2:]) for r in rs if r[1] > 0.5]  # noqa: E731
        for (cls, box), (want_cls, want_box) in zip(strong(rows(got)), strong(want)):
            assert cls == want_cls and np.allclose(box, want_box, atol=4.0)

    bad = CompressedImage(format="jpeg")
    bad.data = b"\xff\xd8 not a jpeg"
    pub.publish(bad)
    again = publish_and_wait(executor, pub, results, msg)   # the node goes on
    assert again.detections


def test_a_kept_jpeg_without_a_gpu_decoder_is_decoded_here():
    """JPEG payloads stay encoded only for a pipeline that decodes them (on the GPU); any other
    pipeline gets them decoded by OpenCV, with the same detections as decoding first."""
    from trt_infer_ros.ros.frame_input import detect, frame_from

    photo = cv2.imread(str(IMAGES / "chelsea.jpg"))
    pipeline = build_pipeline(str(default_model_path()), backend="onnxruntime")
    ok, jpeg = cv2.imencode(".jpg", photo)
    msg = CompressedImage(format="bgr8; jpeg compressed bgr8")
    msg.data = jpeg.tobytes()
    kept = frame_from(msg, keep_jpeg=True)
    assert kept.image is None and kept.compressed is not None
    dets, frame = detect(pipeline, kept)
    assert frame.image is not None and frame.encoding == "bgr8"
    want = pipeline(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), "bgr8")
    np.testing.assert_array_equal(dets.boxes, want.boxes)
    ok, png = cv2.imencode(".png", photo)
    msg.data = png.tobytes()
    assert frame_from(msg, keep_jpeg=True).image is not None      # PNG: decoded at once


def test_missing_and_vanishing_sources_are_survived_and_reported(ros, video, tmp_path):
    context, executor, helper, nodes = ros
    node = detector(context, executor, nodes, source=str(tmp_path / "nowhere.avi"))
    assert spin_until(executor, lambda: node._input._capture.reopened >= 1, 10.0)
    assert "cannot open" in node._input.capture_state
    node.destroy_node()
    executor.remove_node(nodes.pop())

    path, _ = video
    results = collect(helper, "/detector_node/detections")
    node = detector(context, executor, nodes, source=path)
    assert spin_until(executor, lambda: len(results) >= 2, 30.0)
    os.remove(path)                                  # the file vanishes: the node goes on
    assert spin_until(executor, lambda: "cannot open" in node._input.capture_state, 30.0)
    assert node.context.ok()


def test_a_video_file_plays_at_its_recorded_rate(tmp_path):
    """A file is read at its frame rate, like a camera, not as fast as it decodes."""
    import threading
    import time

    from trt_infer_ros.ros.capture import CaptureThread

    path = str(tmp_path / "twenty_fps.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 20, (64, 48))
    for i in range(12):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    times, enough = [], threading.Event()

    def deliver(frame, stamp_ns):
        times.append(time.monotonic())
        if len(times) >= 10:
            enough.set()

    capture = CaptureThread(path, deliver, lambda level, text: None)
    try:
        assert enough.wait(10.0), "the file was not played"
    finally:
        capture.stop()
    # 9 intervals of 50 ms; decoding alone takes well under a millisecond a frame
    assert times[9] - times[0] >= 9 * 0.05 * 0.8


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_an_open_that_blocks_is_reported_and_does_not_hold_up_stop(tmp_path):
    """A pipe whose writer sends nothing: OpenCV's open waits for data to probe. The capture
    thread says so while it lasts and still stops at once."""
    import threading
    import time

    from trt_infer_ros.ros.capture import CaptureThread

    pipe = str(tmp_path / "silent.mjpeg")
    os.mkfifo(pipe)
    release = threading.Event()

    def silent_writer():
        with open(pipe, "wb"):
            release.wait(30)
    threading.Thread(target=silent_writer, daemon=True).start()
    reports = []
    capture = CaptureThread(pipe, lambda frame, stamp: None,
                            lambda level, text: reports.append(text), stall_s=0.5)
    try:
        deadline = time.monotonic() + 10
        while not reports and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reports and "opening has taken over 0.5 s" in reports[0], reports
        assert "(blocked)" in capture.state
        start = time.monotonic()
        capture.stop()
        assert time.monotonic() - start < 1.5
        assert not capture._thread.is_alive()
    finally:
        release.set()
