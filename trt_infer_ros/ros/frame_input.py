"""Where a node's frames come from: a raw image topic, its compressed form, or a capture source
inside the process. Each becomes a `Frame` (pixels, encoding, header) for the same worker.

- raw:        sensor_msgs/Image on `image` (zero-copy view of the message).
- compressed: sensor_msgs/CompressedImage on `<image>/compressed`, image_transport's name for it
              (the resolved `image` topic, remappings included, plus "/compressed"); JPEG
              decoded on the GPU by nvImageCodec straight into the GPU pipeline's frame graph
              where both are there (cuda/jpeg_decoder.py), else JPEG and PNG with OpenCV.
- capture:    the `source` parameter (see capture.py): frames reach the model without DDS.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from trt_infer_ros.cuda.jpeg_decoder import is_jpeg
from trt_infer_ros.ros.capture import (CaptureThread, camera_info_from_file, describe,
                                       frame_and_encoding, stamp_of)
from trt_infer_ros.ros.image_conversion import (ImageConversionError, array_to_image,
                                                image_for_model, opencv_pixels)
from trt_infer_ros.ros.parameters import ParamSpec
from trt_infer_ros.ros.qos import image_qos

TRANSPORTS = ("raw", "compressed")


@dataclass
class Frame:
    image: Optional[np.ndarray]  # HxW or HxWxC uint8; None while `compressed` is not decoded
    encoding: str              # bgr8, rgb8, mono8, bgra8, rgba8
    header: object             # std_msgs/Header: the stamp and frame_id detections carry
    compressed: Optional[tuple] = None  # (format, data) of a JPEG kept for the GPU decoder


def frame_from(msg, keep_jpeg: bool = False) -> Frame:
    """A Frame from an Image, a CompressedImage or an already captured Frame. With `keep_jpeg`
    a JPEG payload stays encoded, for a pipeline that decodes it on the GPU (`detect`)."""
    if isinstance(msg, Frame):
        return msg
    if hasattr(msg, "format"):                  # sensor_msgs/CompressedImage
        if keep_jpeg and is_jpeg(msg.data) and not jpeg_truncated(msg.data):
            return Frame(None, "bgr8", msg.header, (msg.format, msg.data))
        image, encoding = decode_compressed(msg.format, msg.data)
        return Frame(image, encoding, msg.header)
    return Frame(*image_for_model(msg), msg.header)


def detect(pipeline, frame: Frame):
    """(detections, frame) of one frame: a kept JPEG decoded on the GPU by the pipeline, or, when
    it cannot read it, decoded here (the returned frame then has the pixels)."""
    if frame.compressed is not None:
        fmt, data = frame.compressed
        detect_jpeg = getattr(pipeline, "detect_jpeg", None)
        detections = detect_jpeg(data) if detect_jpeg is not None else None
        if detections is not None:
            return detections, frame
        image, encoding = decode_compressed(fmt, data)
        frame = Frame(image, encoding, frame.header)
    return pipeline(frame.image, frame.encoding), frame


def decode_compressed(fmt: str, data) -> tuple[np.ndarray, str]:
    """Pixels and encoding of a JPEG or PNG payload.

    compressed_image_transport writes `format` as "<source encoding>; <codec> compressed
    <encoded encoding>" (e.g. "rgb8; jpeg compressed bgr8"); OpenCV returns the channels in the
    encoded order, so that last encoding is the one the pixels have. The codec is read from the
    data itself, whatever `format` says. 16-bit PNGs (mono16, bgr16) keep their high byte.
    """
    import cv2

    buffer = np.frombuffer(bytes(data), np.uint8) if not isinstance(data, np.ndarray) else data
    if buffer.size == 0:
        raise ImageConversionError("compressed image with no data")
    if is_depth_format(fmt):
        raise ImageConversionError(f"compressed image ({fmt}) is a depth map, not a camera "
                                   "image; subscribe to the camera's colour or mono topic")
    if is_jpeg(buffer) and jpeg_truncated(buffer):
        raise ImageConversionError(f"compressed image ({fmt or 'no format'}) is a truncated "
                                   f"JPEG ({buffer.size} bytes, no end-of-image marker)")
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageConversionError(f"compressed image ({fmt or 'no format'}, {buffer.size} "
                                   "bytes) is neither a readable JPEG nor PNG")
    encoded = fmt.split("compressed", 1)[1].strip().lower() if "compressed" in fmt else ""
    return opencv_pixels(image, "compressed image", encoded)


DEPTH_ENCODINGS = ("16uc1", "32fc1")     # what depth cameras and depth_image_proc publish


def is_depth_format(fmt: str) -> bool:
    """Whether a CompressedImage format names a depth map: compressed_depth_image_transport's
    "...; compressedDepth ..." or a 16UC1 / 32FC1 source encoding."""
    text = fmt.lower()
    return "compresseddepth" in text or text.split(";")[0].strip() in DEPTH_ENCODINGS


JPEG_END = b"\xff\xd9"


JPEG_TAIL = 4096    # padding some cameras append after the end marker; entropy-coded data
                    # never holds the marker's bytes, so a cut-off image has none in its tail


def jpeg_truncated(data) -> bool:
    """Whether a JPEG lacks its end-of-image marker near the end: OpenCV may decode such a
    frame with grey rows instead of refusing it."""
    return JPEG_END not in bytes(data[-JPEG_TAIL:])


def compressed_topic(node, base: str = "image") -> str:
    """image_transport's compressed topic for `base`: its resolved name plus /compressed."""
    return node.resolve_topic_name(base).rstrip("/") + "/compressed"


INPUT_PARAMETERS = (
    ParamSpec("source", "", "capture in this process instead of subscribing: a V4L2 device "
              "(/dev/video0 or 0), a GStreamer pipeline ending in appsink, a video file or an "
              "RTSP URL; empty subscribes to the image topic", read_only=True),
    ParamSpec("image_transport", "raw", "raw subscribes to `image`; compressed to "
              "`<image>/compressed` (JPEG/PNG, image_transport's convention)", read_only=True,
              choices=TRANSPORTS),
    ParamSpec("frame_id", "camera", "header.frame_id of captured frames (source set)",
              read_only=True),
    ParamSpec("camera_info_file", "", "camera calibration YAML: published as ~/camera_info "
              "with captured frames while someone subscribes", read_only=True),
)


class FrameInput:
    """Connects a node's FrameWorker to its frames as the parameters ask, and for captured
    frames publishes `~/image_raw` (and `~/camera_info`) while someone subscribes."""

    def __init__(self, node, worker, params: dict, qos, diagnostics) -> None:
        self._node = node
        self._worker = worker
        self._diagnostics = diagnostics
        self._capture = None
        self._warn_unused_parameters(params)
        if params["source"]:
            self._start_capture(params)
        elif params["image_transport"] == "compressed":
            topic = compressed_topic(node)
            worker.subscribe(CompressedImage, topic, qos)
            self.description = f"{topic} (compressed)"
        else:
            worker.subscribe(Image, "image", qos)
            self.description = worker.subscription.topic_name

    def _warn_unused_parameters(self, params: dict) -> None:
        """A parameter that has no effect with the others given is said so, not ignored."""
        log = self._node.get_logger()
        if params["source"] and params["image_transport"] != "raw":
            log.warning(f"image_transport {params['image_transport']!r} is ignored: frames are "
                        f"captured from source {params['source']!r}, not subscribed")
        defaults = {spec.name: spec.default for spec in INPUT_PARAMETERS}
        unused = [name for name in ("frame_id", "camera_info_file")
                  if not params["source"] and params[name] != defaults[name]]
        if unused:
            verbs = "apply only to captured frames (source) and are" if len(unused) > 1 else \
                "applies only to captured frames (source) and is"
            log.warning(f"{' and '.join(unused)} {verbs} ignored: subscribed frames keep their "
                        "own header")

    def _start_capture(self, params: dict) -> None:
        self._frame_id = params["frame_id"]
        self._camera_info = (camera_info_from_file(params["camera_info_file"])
                             if params["camera_info_file"] else None)
        self._checked_size = None
        self._trouble_shown = False     # /diagnostics shows a capture problem not yet over
        # Reliable depth 1, as a camera driver's raw topic: late is worse than skipped.
        self._image_pub = self._node.create_publisher(Image, "~/image_raw",
                                                      image_qos("reliable", 1))
        self._info_pub = self._node.create_publisher(CameraInfo, "~/camera_info", 10)
        clock = self._node.get_clock()
        self._capture = CaptureThread(params["source"], self._captured, self._report,
                                      clock_ns=lambda: clock.now().nanoseconds)
        self.description = f"{describe(params['source'])} {params['source']!r} (in process)"
        self._diagnostics.set_value("source", self.description)
        self._diagnostics.set_value("capture", "opening")

    def _captured(self, frame, stamp_ns: int) -> None:
        """One frame from the capture thread: to the worker, and to ~/image_raw and
        ~/camera_info for their subscribers."""
        if not self._node.context.ok():
            return                  # shutting down: the publishers are going away
        if self._trouble_shown:         # frames flow again: the last problem is over
            self._trouble_shown = False
            self._diagnostics.set_value("capture", "capturing")
            self._diagnostics.set_problem("capture", None)
        image, encoding = frame_and_encoding(frame)
        header = Header(stamp=stamp_of(stamp_ns), frame_id=self._frame_id)
        self._worker.put(Frame(image, encoding, header))
        try:
            self._publish_camera_topics(image, encoding, header)
        except Exception:
            if self._node.context.ok():
                raise               # else: shut down while publishing, nothing to report

    def _publish_camera_topics(self, image, encoding: str, header) -> None:
        if self._image_pub.get_subscription_count() > 0:
            self._image_pub.publish(array_to_image(image, encoding, header))
        if self._camera_info is None:
            return
        self._check_calibration_size(image.shape[1], image.shape[0])
        if self._info_pub.get_subscription_count() > 0:
            self._camera_info.header = header
            self._info_pub.publish(self._camera_info)

    def _check_calibration_size(self, width: int, height: int) -> None:
        """Say once per frame size when the calibration is for another image size."""
        if self._checked_size == (width, height):
            return
        self._checked_size = (width, height)
        info = self._camera_info
        if (info.width, info.height) != (width, height):
            text = (f"camera_info_file is for {info.width}x{info.height} images but the source "
                    f"delivers {width}x{height}; ~/camera_info is published as the file says")
            self._diagnostics.set_value("camera_info", text)
            self._diagnostics.set_problem("camera_info", text)
            if self._node.context.ok():
                self._node.get_logger().warning(text)
        else:
            self._diagnostics.set_problem("camera_info", None)

    def _report(self, level: str, text: str) -> None:
        if not self._node.context.ok():
            return      # shut down (Ctrl-C): a source stopping now is no problem, and a log
            #             call from this thread would only print rcl's "/rosout" error
        self._trouble_shown = True
        self._diagnostics.set_value("capture", text)
        self._diagnostics.set_problem("capture", text)
        logger = self._node.get_logger()
        # One call site per severity: rclpy refuses a throttled call site whose level changes.
        if level == "error":
            logger.error(text, throttle_duration_sec=10.0)
        else:
            logger.warning(text, throttle_duration_sec=10.0)

    @property
    def capture_state(self) -> str:
        return self._capture.state if self._capture else ""

    def close(self) -> None:
        if self._capture is not None:
            self._capture.stop()
