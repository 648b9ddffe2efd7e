"""image_source_node over real DDS: directories and video files, encodings, once and looping."""
from pathlib import Path

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/test.sh)")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from ros_harness import isolated_context, spin_until  # noqa: E402
from trt_infer_ros.ros.image_conversion import image_to_array  # noqa: E402
from trt_infer_ros.ros.image_source_node import ImageSourceNode  # noqa: E402


@pytest.fixture
def ros():
    context = isolated_context()
    executor = SingleThreadedExecutor(context=context)
    listener = rclpy.create_node("source_listener", context=context)
    executor.add_node(listener)
    received = []
    listener.create_subscription(Image, "image", received.append, 50)
    nodes = [listener]

    def start(**params):
        node = ImageSourceNode(context=context,
                               parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        executor.add_node(node)
        nodes.append(node)
        return node

    yield executor, start, received
    for node in nodes:
        executor.remove_node(node)
        node.destroy_node()
    executor.shutdown()
    rclpy.shutdown(context=context)


def write_photos(directory: Path, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    frames = [rng.integers(0, 256, (24 + i, 32, 3), dtype=np.uint8) for i in range(count)]
    for i, frame in enumerate(frames):
        cv2.imwrite(str(directory / f"frame_{i}.png"), frame)    # PNG: lossless
    return frames


def test_directory_once_in_rgb8_with_frame_id_and_stamps(ros, tmp_path):
    executor, start, received = ros
    frames = write_photos(tmp_path, 3)
    node = start(source=str(tmp_path), loop=False, rate=50.0, encoding="rgb8", frame_id="cam_a")
    assert spin_until(executor, lambda: node.finished and len(received) == 3, 10.0)
    spin_until(executor, lambda: False, 0.3)
    assert len(received) == 3, "a source played once must stop after the last file"
    for msg, frame in zip(received, frames):
        assert (msg.encoding, msg.header.frame_id) == ("rgb8", "cam_a")
        np.testing.assert_array_equal(image_to_array(msg), cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in received]
    assert stamps == sorted(stamps) and stamps[0] > 0


def test_directory_loops(ros, tmp_path):
    executor, start, received = ros
    write_photos(tmp_path, 2)
    start(source=str(tmp_path), loop=True, rate=100.0, encoding="mono8")
    assert spin_until(executor, lambda: len(received) >= 5, 10.0)
    assert all(m.encoding == "mono8" and m.step == m.width for m in received)


def test_video_file(ros, tmp_path):
    executor, start, received = ros
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened(), "OpenCV cannot write MJPG here"
    for i in range(4):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    node = start(source=str(video), loop=False, rate=50.0)
    assert spin_until(executor, lambda: node.finished, 10.0)
    spin_until(executor, lambda: len(received) == 4, 2.0)
    assert len(received) == 4
    assert all((m.width, m.height, m.encoding) == (64, 48, "bgr8") for m in received)
    # Brightness rises frame by frame, as written (MJPG is lossy, so compare means).
    means = [image_to_array(m).mean() for m in received]
    assert means == sorted(means)


@pytest.mark.parametrize("params, message", [
    ({"source": "/no/such/dir"}, "no such file or directory"),
    ({"encoding": "yuv422"}, "encoding must be one of"),
])
def test_bad_parameters_are_refused_with_the_reason(ros, tmp_path, params, message):
    _, start, _ = ros
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        start(**params)


def test_directory_without_images_is_refused(ros, tmp_path):
    _, start, _ = ros
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="holds no images"):
        start(source=str(tmp_path))
