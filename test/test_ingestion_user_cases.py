"""Camera ingestion as users meet it: compressed payloads of every kind image_transport and
cameras produce (16-bit PNGs, truncated JPEGs, depth maps), capture sources that cannot be
opened (each with its reason), captured frames that are not bgr8, a calibration for another
size, the launch file's capture arguments, and a clean stop while frames are captured."""
import os
import shutil
import signal
import subprocess
import time

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/test.sh)")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built (run scripts/setup_env.sh)")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402

from ros_harness import domain_id, spin_until  # noqa: E402
from test_ros_detector import IMAGES, collect, detector, publish_and_wait, ros  # noqa: E402,F401
from test_ros_input import rows, video  # noqa: E402,F401
from test_ros_processes import start_node, wait_ready  # noqa: E402
from trt_infer_ros.pipeline.detector import build_pipeline  # noqa: E402
from trt_infer_ros.resources import default_model_path  # noqa: E402
from trt_infer_ros.ros.capture import CaptureThread, frame_and_encoding  # noqa: E402
from trt_infer_ros.ros.frame_input import decode_compressed  # noqa: E402
from trt_infer_ros.ros.image_conversion import ImageConversionError  # noqa: E402


@pytest.fixture(scope="module")
def photo():
    """An odd-sized colour photo (641x479), as a camera of unusual resolution gives."""
    return cv2.resize(cv2.imread(str(IMAGES / "astronaut.jpg")), (641, 479))


@pytest.fixture(scope="module")
def pipeline():
    return build_pipeline(str(default_model_path()), backend="onnxruntime")


def compressed(fmt: str, data: bytes, frame_id: str, sec: int) -> CompressedImage:
    msg = CompressedImage(format=fmt)
    msg.header.frame_id, msg.header.stamp.sec = frame_id, sec
    msg.data = data
    return msg


def encoded(ext: str, image) -> bytes:
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


def expected_rows_of(pipeline, image, encoding):
    dets = pipeline(image, encoding)
    return sorted((pipeline.adapter.class_names[int(c)], round(float(s), 5),
                   round(float((b[0] + b[2]) / 2), 3), round(float((b[1] + b[3]) / 2), 3),
                   round(float(b[2] - b[0]), 3), round(float(b[3] - b[1]), 3))
                  for b, s, c in zip(dets.boxes, dets.scores, dets.class_ids))


# -- compressed payloads ------------------------------------------------------------------------

def test_sixteen_bit_pngs_keep_their_high_byte(photo):
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    image, encoding = decode_compressed("mono16; png compressed ",
                                        encoded(".png", gray.astype(np.uint16) * 256 + 200))
    assert encoding == "mono8" and image.dtype == np.uint8
    np.testing.assert_array_equal(image, gray)
    image, encoding = decode_compressed("rgb16; png compressed bgr16",
                                        encoded(".png", photo.astype(np.uint16) * 257))
    assert encoding == "bgr8"
    np.testing.assert_array_equal(image, photo)


def test_broken_payloads_are_refused_with_their_reason(photo):
    jpeg = encoded(".jpg", photo)
    with pytest.raises(ImageConversionError, match="truncated JPEG"):
        decode_compressed("jpeg", jpeg[: len(jpeg) // 2])
    with pytest.raises(ImageConversionError, match="is a depth map"):
        decode_compressed("16UC1; compressedDepth png", b"\0" * 12 + encoded(".png", photo))
    with pytest.raises(ImageConversionError, match="is a depth map"):
        decode_compressed("16UC1; png compressed ", encoded(".png", photo.astype(np.uint16)))
    with pytest.raises(ImageConversionError, match="neither a readable JPEG nor PNG"):
        decode_compressed("jpeg", np.random.default_rng(0).bytes(4000))
    with pytest.raises(ImageConversionError, match="no data"):
        decode_compressed("jpeg", b"")
    # A complete JPEG with padding after its end marker, as some cameras send, is fine.
    for padding in (b"\0" * 16, b"\xaa" * 1000):
        image, encoding = decode_compressed("jpeg", jpeg + padding)
        assert encoding == "bgr8" and image.shape == photo.shape


def test_compressed_topic_survives_bad_payloads_and_keeps_headers(ros, photo, pipeline):
    """Each bad payload gives no detections; each good one, including mono16 and bgr16 PNGs,
    gives the raw frame's detections with its own stamp and frame_id."""
    context, executor, helper, nodes = ros
    results = collect(helper, "/detector_node/detections")
    node = detector(context, executor, nodes, image_transport="compressed",
                    qos_reliability="reliable")
    pub = helper.create_publisher(CompressedImage, "image/compressed", 10)
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    jpeg = encoded(".jpg", photo)
    good = [
        ("mono16; png compressed ", encoded(".png", gray.astype(np.uint16) * 257), gray, "mono8"),
        ("rgb16; png compressed bgr16", encoded(".png", photo.astype(np.uint16) * 257), photo,
         "bgr8"),
        ("bgr8; png compressed bgr8", encoded(".png", photo), photo, "bgr8"),
    ]
    bad = [("jpeg", jpeg[:-4000]), ("jpeg", b""), ("jpeg", b"\x89PNG not really"),
           ("16UC1; compressedDepth png", b"\0" * 12 + encoded(".png", gray.astype(np.uint16)))]
    for i, (fmt, data) in enumerate(bad):
        before = len(results)
        pub.publish(compressed(fmt, data, f"bad{i}", 10 + i))
        assert not spin_until(executor, lambda: len(results) > before, 1.0), fmt
    assert spin_until(executor, lambda: node._diagnostics.total("rejected") == len(bad), 5.0)
    for i, (fmt, data, pixels, encoding) in enumerate(good):
        got = publish_and_wait(executor, pub, results, compressed(fmt, data, f"good{i}", 50 + i))
        assert (got.header.frame_id, got.header.stamp.sec) == (f"good{i}", 50 + i)
        assert rows(got) == expected_rows_of(pipeline, pixels, encoding), fmt


def sixteen_bit_image(pixels, encoding: str, big_endian: bool, frame_id: str) -> Image:
    """A 16-bit Image of 8-bit `pixels` (value * 256 + 100: the low byte must not matter),
    with 6 bytes of padding at the end of each row."""
    words = pixels.astype(np.uint16) * 256 + 100
    rows = words.reshape(pixels.shape[0], -1).astype(">u2" if big_endian else "<u2")
    padded = np.concatenate([rows.view(np.uint8), np.zeros((rows.shape[0], 6), np.uint8)], 1)
    msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding,
                is_bigendian=int(big_endian), step=padded.shape[1])
    msg.header.frame_id = frame_id
    msg.data = padded.tobytes()
    return msg


def test_sixteen_bit_raw_images_are_detected_on_their_high_byte(ros, photo, pipeline):
    context, executor, helper, nodes = ros
    results = collect(helper, "/detector_node/detections")
    detector(context, executor, nodes, qos_reliability="reliable")
    pub = helper.create_publisher(Image, "image", 1)
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    for pixels, encoding, want_encoding, big_endian in [(gray, "mono16", "mono8", False),
                                                        (photo, "bgr16", "bgr8", True)]:
        msg = sixteen_bit_image(pixels, encoding, big_endian, encoding)
        got = publish_and_wait(executor, pub, results, msg)
        assert got.header.frame_id == encoding
        assert rows(got) == expected_rows_of(pipeline, pixels, want_encoding), encoding


def test_yuv422_and_bayer_camera_frames_are_detected(ros, photo, pipeline):
    """What usb_cam (yuv422_yuy2) and machine-vision drivers (bayer_rggb8) publish: the node
    detects on the frame converted to bgr8 (the conversion itself: test_camera_encodings)."""
    from test_camera_encodings import message, mosaic, packed_yuv422
    from trt_infer_ros.ros.image_conversion import image_for_model

    context, executor, helper, nodes = ros
    results = collect(helper, "/detector_node/detections")
    detector(context, executor, nodes, qos_reliability="reliable")
    pub = helper.create_publisher(Image, "image", 1)
    even = photo[:, :640]                              # YUV 4:2:2 pairs pixels
    for msg in (message(packed_yuv422(even, "yuyv"), "yuv422_yuy2", 4),
                message(mosaic(photo, "rggb"), "bayer_rggb8")):
        msg.header.frame_id = msg.encoding
        got = publish_and_wait(executor, pub, results, msg)
        assert got.header.frame_id == msg.encoding
        want = expected_rows_of(pipeline, image_for_model(msg)[0], "bgr8")
        assert want and rows(got) == want, msg.encoding


# -- capture sources ------------------------------------------------------------------------------

def first_report(source: str, timeout_s: float = 10.0) -> str:
    reports = []
    capture = CaptureThread(source, lambda frame, stamp: None,
                            lambda level, text: reports.append(text), stall_s=2.0)
    try:
        deadline = time.monotonic() + timeout_s
        while not reports and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        capture.stop()
    assert reports, f"nothing reported for {source!r}"
    return reports[0]


def test_sources_that_cannot_be_opened_say_why(tmp_path):
    text_video = tmp_path / "notes.mp4"
    text_video.write_text("not a video\n" * 20)
    (tmp_path / "empty.avi").write_bytes(b"")
    cases = {
        str(tmp_path / "missing.avi"): "no such file",
        str(tmp_path): "is a directory",
        str(text_video): "not a video OpenCV can read",
        str(tmp_path / "empty.avi"): "the file is empty",
    }
    if not cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER):
        cases["videotestsrc ! videoconvert ! appsink"] = "built without GStreamer"
    if not os.path.exists("/dev/video9"):
        cases["/dev/video9"] = "no such device /dev/video9"
        cases["9"] = "no such device /dev/video9"
    for source, reason in cases.items():
        report = first_report(source)
        assert "cannot be opened" in report and reason in report, (source, report)


def test_captured_frames_keep_their_encoding():
    gray = np.arange(48 * 64, dtype=np.uint8).reshape(48, 64)
    assert frame_and_encoding(gray)[1] == "mono8"
    image, encoding = frame_and_encoding(gray.astype(np.uint16) << 8)
    assert encoding == "mono8" and image.dtype == np.uint8
    np.testing.assert_array_equal(image, gray)
    assert frame_and_encoding(np.zeros((4, 4, 4), np.uint8))[1] == "bgra8"
    assert frame_and_encoding(np.zeros((4, 4, 3), np.uint8))[1] == "bgr8"


def test_a_mono_captured_frame_is_detected_as_mono(ros, photo, pipeline, tmp_path):
    """A GStreamer pipeline ending in GRAY8 gives HxW frames: detected as mono8, with the
    capture's frame_id, and published on ~/image_raw as mono8."""
    context, executor, helper, nodes = ros
    results = collect(helper, "/detector_node/detections")
    raw = collect(helper, "/detector_node/image_raw", Image)
    node = detector(context, executor, nodes, source=str(tmp_path / "no_camera_yet.avi"),
                    frame_id="gray_cam")
    assert spin_until(executor, lambda: helper.count_publishers("/detector_node/image_raw") > 0
                      and node._input._image_pub.get_subscription_count() > 0, 10.0)
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    node._input._captured(gray, 123 * 10**9)
    assert spin_until(executor, lambda: results and raw, 20.0)
    assert results[0].header.frame_id == "gray_cam" and results[0].header.stamp.sec == 123
    assert rows(results[0]) == expected_rows_of(pipeline, gray, "mono8")
    assert raw[0].encoding == "mono8" and (raw[0].width, raw[0].height) == (641, 479)


def test_warnings_and_errors_from_one_capture_are_both_reported(ros, tmp_path):
    """A consumer error and a source that ends come from the same node: rclpy refuses a
    throttled log call whose severity changes, which must not end the capture thread."""
    context, executor, helper, nodes = ros
    node = detector(context, executor, nodes, source=str(tmp_path / "missing.avi"))
    for level in ("warn", "error", "warn", "error"):
        node._input._report(level, f"capture {level} report")


def test_diagnostics_show_the_capture_as_it_is_now(ros, photo, tmp_path):
    """A camera file that appears after the node started: /diagnostics says why it cannot be
    opened, then that it is capturing, not the old problem."""
    context, executor, helper, nodes = ros
    path = str(tmp_path / "ten_seconds.avi")       # long enough to be seen playing
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for _ in range(100):
        writer.write(cv2.resize(photo, (320, 240)))
    writer.release()
    later = tmp_path / "later.avi"
    diagnostics = collect(helper, "/diagnostics", DiagnosticArray)
    detector(context, executor, nodes, source=str(later))

    def capture_value():
        values = [v.value for array in diagnostics[-1:] for s in array.status for v in s.values
                  if v.key == "capture"]
        return values[0] if values else ""

    def level_and_reason():
        statuses = [s for array in diagnostics[-1:] for s in array.status]
        return (statuses[0].level, statuses[0].message) if statuses else (None, "")
    assert spin_until(executor, lambda: "no such file" in capture_value(), 10.0), \
        capture_value()
    level, reason = level_and_reason()
    assert level == DiagnosticStatus.WARN and "no such file" in reason, (level, reason)
    shutil.copy(path, later)
    assert spin_until(executor, lambda: capture_value() == "capturing", 15.0), capture_value()
    assert spin_until(executor, lambda: level_and_reason()[0] == DiagnosticStatus.OK, 5.0), \
        level_and_reason()


def test_a_source_typed_with_spaces_is_captured(ros, video):
    context, executor, helper, nodes = ros
    path, _ = video
    results = collect(helper, "/detector_node/detections")
    node = detector(context, executor, nodes, source=f"  {path} ")
    assert spin_until(executor, lambda: len(results) >= 1, 30.0), node._input.capture_state


def test_captured_frames_camera_info_shares_their_header(ros, video, tmp_path):
    context, executor, helper, nodes = ros
    path, frames = video
    calibration = tmp_path / "front.yaml"
    calibration.write_text(
        "image_width: 640\nimage_height: 480\ncamera_name: front\n"
        "camera_matrix: {rows: 3, cols: 3, data: [500, 0, 320, 0, 500, 240, 0, 0, 1]}\n"
        "distortion_model: plumb_bob\n"
        "distortion_coefficients: {rows: 1, cols: 5, data: [0, 0, 0, 0, 0]}\n")
    infos = collect(helper, "/detector_node/camera_info", CameraInfo)
    raw = collect(helper, "/detector_node/image_raw", Image)
    diagnostics = collect(helper, "/diagnostics", DiagnosticArray)
    detector(context, executor, nodes, source=path, frame_id="front",
             camera_info_file=str(calibration))
    assert spin_until(executor, lambda: len(infos) >= 3 and len(raw) >= 3, 30.0)
    info_headers = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in infos}
    assert any((m.header.stamp.sec, m.header.stamp.nanosec) in info_headers for m in raw)
    assert all(m.header.frame_id == "front" for m in infos + raw)
    # No projection_matrix in the file: P is K with a zero fourth column.
    assert list(infos[0].p) == [500, 0, 320, 0, 0, 500, 240, 0, 0, 0, 1, 0]
    assert list(infos[0].k) == [500, 0, 320, 0, 500, 240, 0, 0, 1]

    def mismatch_reported():
        statuses = [s for array in diagnostics for s in array.status]
        return (any(v.key == "camera_info" and "640x480" in v.value and "320x240" in v.value
                    for s in statuses for v in s.values)
                and any(s.level == DiagnosticStatus.WARN and "camera_info_file" in s.message
                        for s in statuses))
    assert spin_until(executor, mismatch_reported, 5.0), "calibration size mismatch not reported"


def test_calibration_files_that_are_not_calibrations_are_refused(tmp_path):
    from trt_infer_ros.ros.capture import camera_info_from_file

    cases = {"- 1\n- 2\n": "a YAML mapping",
             "image_width: 640\nimage_height: 480\n": "has no 'camera_matrix'",
             "image_width: 640\nimage_height: 480\ncamera_matrix: {data: [1, 2, 3]}\n":
                 "camera_matrix has 3 numbers, not 9"}
    for text, reason in cases.items():
        path = tmp_path / "calibration.yaml"
        path.write_text(text)
        with pytest.raises(ValueError, match=reason):
            camera_info_from_file(str(path))


# -- whole processes --------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_capturing_node_stops_quietly_while_image_raw_is_watched(ros, video, sig):
    context, executor, helper, nodes = ros
    path, _ = video
    raw = collect(helper, "/detector_node/image_raw", Image)
    proc = start_node("detector_node", "-p", f"source:={path}")
    try:
        log = wait_ready(proc, "ready:")       # grows until the process ends
        assert spin_until(executor, lambda: len(raw) >= 3, 30.0), "no captured frames published"
        proc.send_signal(sig)
        spin_until(executor, lambda: proc.poll() is not None, 30.0)
        rc = proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read()
    assert rc == 0 and stderr == "", stderr + "\nits log:\n" + "".join(log[-30:])


def stop_launch(proc: subprocess.Popen) -> None:
    """Ctrl-C to a `ros2 launch` started in its own session, as a terminal sends it."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def test_launch_file_passes_source_and_frame_id_to_the_detector(ros, video):
    ros2 = shutil.which("ros2")
    if ros2 is None:
        pytest.skip("the ros2 command line is not installed (../shared/tools/ros2_cli.sh)")
    context, executor, helper, nodes = ros
    path, _ = video
    results = collect(helper, "/detector_node/detections")
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id()))
    proc = subprocess.Popen([ros2, "launch", "trt_infer_ros", "detect.launch.py",
                             f"source:={path}", "frame_id:=launched_cam",
                             "backend:=onnxruntime"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    try:
        assert spin_until(executor, lambda: len(results) >= 2, 60.0), "the launched detector " \
            "published nothing from source"
        assert all(m.header.frame_id == "launched_cam" for m in results)
    finally:
        stop_launch(proc)


def _environment_of(session: int, executable: str) -> dict:
    """The environment of the process running `executable` in launch session `session`."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getsid(int(pid)) != session:
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if executable.encode() not in f.read():
                    continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                pairs = [e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e]
            return {k.decode(): v.decode() for k, v in pairs}
        except (OSError, ProcessLookupError):
            continue
    return {}


def test_launch_file_gives_the_nodes_the_camera_frames_profile(ros):
    ros2 = shutil.which("ros2")
    if ros2 is None:
        pytest.skip("the ros2 command line is not installed (../shared/tools/ros2_cli.sh)")
    context, executor, helper, nodes = ros
    results = collect(helper, "/detector_node/detections")
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id()), FASTDDS_BUILTIN_TRANSPORTS="LARGE_DATA")
    proc = subprocess.Popen([ros2, "launch", "trt_infer_ros", "detect.launch.py",
                             "start_source:=true", "rate:=5.0", "backend:=onnxruntime",
                             "camera_topic:=/profiled/image", "dds_profile:=camera_frames"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    try:
        # The profile keeps UDPv4 too: this process, on LARGE_DATA, still hears the detector.
        assert spin_until(executor, lambda: len(results) >= 2, 60.0), "nothing detected"
        for executable in ("detector_node", "image_source_node"):
            node_env = _environment_of(proc.pid, executable)
            assert node_env.get("FASTDDS_DEFAULT_PROFILES_FILE", "").endswith(
                "fastdds_camera_frames.xml"), executable
            assert "FASTDDS_BUILTIN_TRANSPORTS" not in node_env, executable
    finally:
        stop_launch(proc)


def test_launch_file_refuses_a_dds_profile_that_is_no_file(tmp_path):
    ros2 = shutil.which("ros2")
    if ros2 is None:
        pytest.skip("the ros2 command line is not installed (../shared/tools/ros2_cli.sh)")
    missing = str(tmp_path / "nowhere.xml")
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id()))
    done = subprocess.run([ros2, "launch", "trt_infer_ros", "detect.launch.py",
                           f"dds_profile:={missing}"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode != 0
    assert f"no such file {missing!r}" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
