"""Frames captured inside the node's process (the `source` parameter): the camera image reaches
the model without crossing DDS.

`source` is opened with OpenCV's VideoCapture:
- a V4L2 device: `/dev/video0` or a bare index `0`;
- a GStreamer pipeline (anything with a `!`, ending in appsink), e.g. on a Jetson
  `nvarguscamerasrc ! video/x-raw(memory:NVMM),width=1280,height=720 ! nvvidconv !
  video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1`;
- a video file or an RTSP/HTTP URL (FFmpeg backend).

A source that cannot be opened (with the reason: no such file, a directory, not a video, no
such device ...), stalls (no frame for `stall_s`) or ends is reported once per episode and
reopened with a backoff of 1, 2, 4 ... 30 s; an open that blocks is reported every
`stall_s` while it lasts (stream URLs also get FFmpeg's 5 s open and read timeouts); the node
never dies of it. A video file therefore plays again after its end, at its recorded frame rate.
Each frame carries the capture time as its stamp. Frames are delivered as 8-bit images with
their encoding: bgr8, or mono8 / bgra8 where a GStreamer pipeline ends in GRAY8 / BGRx (16-bit
frames keep their high byte).
"""
from __future__ import annotations

import os
import stat
import threading
import time
from typing import Callable, Optional

from trt_infer_ros.ros.image_conversion import opencv_pixels

MAX_BACKOFF_S = 30.0


OPEN_TIMEOUT_MS = 5000     # FFmpeg's own limits for a network stream's open and reads


def _ffmpeg_with_timeouts(cv2) -> bool:
    """Whether this OpenCV has the FFmpeg backend and its open/read timeout properties (4.5.2+)."""
    try:
        return (hasattr(cv2, "CAP_PROP_OPEN_TIMEOUT_MSEC")
                and hasattr(cv2, "CAP_PROP_READ_TIMEOUT_MSEC")
                and cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG))
    except (AttributeError, cv2.error):
        return False


def _quiet_video_backends(cv2) -> None:
    """OpenCV's and FFmpeg's own warnings for a source that cannot be opened repeat at every
    retry; the node reports the reason itself. OPENCV_LOG_LEVEL / OPENCV_FFMPEG_LOGLEVEL set
    by the user still win."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")      # AV_LOG_QUIET
    if "OPENCV_LOG_LEVEL" not in os.environ:
        try:
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        except AttributeError:
            pass


def open_capture(source: str):
    """An opened cv2.VideoCapture for `source`, or None."""
    import cv2

    _quiet_video_backends(cv2)
    if source.isdigit():
        capture = cv2.VideoCapture(int(source), cv2.CAP_V4L2)
    elif source.startswith("/dev/video"):
        capture = cv2.VideoCapture(source, cv2.CAP_V4L2)
    elif "!" in source:
        capture = cv2.VideoCapture(source, cv2.CAP_GSTREAMER)
    elif "://" in source and _ffmpeg_with_timeouts(cv2):
        capture = cv2.VideoCapture(source, cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
                                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, OPEN_TIMEOUT_MS])
    else:
        capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        capture.release()
        return None
    return capture


def why_unopenable(source: str) -> str:
    """Why `source` could not be opened, as precisely as can be told from outside OpenCV."""
    kind = describe(source)
    if kind == "V4L2 device":
        return _why_device_unopenable(f"/dev/video{source}" if source.isdigit() else source)
    if kind == "GStreamer pipeline":
        return _why_pipeline_unopenable()
    if kind == "stream URL":
        return "the stream does not answer or refuses the connection"
    return _why_file_unopenable(source)


def _why_pipeline_unopenable() -> str:
    import cv2

    try:
        has_gstreamer = cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER)
    except (AttributeError, cv2.error):
        has_gstreamer = True            # cannot tell: blame the pipeline
    if not has_gstreamer:
        return ("this OpenCV is built without GStreamer (the pip wheels are); use an OpenCV "
                "built with it, such as Ubuntu's python3-opencv")
    return "the pipeline does not start (try it with gst-launch-1.0)"


def _why_device_unopenable(path: str) -> str:
    if not os.path.exists(path):
        return f"no such device {path}"
    if not os.access(path, os.R_OK | os.W_OK):
        return f"{path} is not readable by this user (is it in the video group?)"
    return f"{path} is busy or not a capture device"


def _why_file_unopenable(path: str) -> str:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "no such file"
    except OSError as err:
        return f"cannot read it: {err.strerror}"
    if stat.S_ISDIR(st.st_mode):
        return "it is a directory, not a video file (image_source_node replays a directory)"
    if not os.access(path, os.R_OK):
        return "it is not readable by this user"
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        return "the file is empty"
    return "it is not a video OpenCV can read (unknown or damaged format)"


def frame_and_encoding(frame) -> tuple:
    """A captured frame as an 8-bit image and its encoding: OpenCV gives BGR, but a GStreamer
    pipeline may end in GRAY8, GRAY16 or BGRx."""
    return opencv_pixels(frame, "captured frame")


class CaptureThread:
    """Reads `source` on its own thread and hands each frame (as OpenCV gives it, usually HxWx3
    bgr8; see frame_and_encoding) and its capture time in ns (`clock_ns`, the node's clock) to
    `deliver`; reports problems through `report(level, text)`."""

    def __init__(self, source: str, deliver: Callable, report: Callable[[str, str], None],
                 stall_s: float = 5.0, name: str = "capture",
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.source = source
        self._clock_ns = clock_ns
        self._deliver = deliver
        self._report = report
        self._stall_s = stall_s
        self._stop = threading.Event()
        self.frames = 0
        self.reopened = 0
        self.state = "opening"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            capture = self._open_watched()
            if self._stop.is_set():
                if capture is not None:
                    capture.release()
                return
            if capture is None:
                reason = why_unopenable(self.source)
                self.state = f"cannot open {self.source!r}: {reason}"
                self._report("warn", f"capture source {self.source!r} cannot be opened: "
                                     f"{reason}; retrying in {backoff:g} s")
            else:
                self.state = "capturing"
                frames_before = self.frames
                why = self._read_until_trouble(capture)
                capture.release()
                if self._stop.is_set():
                    return
                self.state = why
                if self.frames > frames_before:
                    backoff = 1.0           # it worked for a while: start the backoff over
                self._report("warn", f"capture source {self.source!r}: {why}; reopening in "
                                     f"{backoff:g} s")
            self.reopened += 1
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2.0, MAX_BACKOFF_S)

    def _open_watched(self):
        """open_capture(source) on a helper thread: an open that blocks (a stream that never
        answers, a pipe with too little data to probe) is reported every `stall_s` while it
        lasts, and stop() is not held up by it."""
        opened: list = []
        opener = threading.Thread(target=lambda: opened.append(open_capture(self.source)),
                                  name=f"{self._thread.name}_open", daemon=True)
        opener.start()
        next_report = time.monotonic() + self._stall_s
        while not self._stop.is_set():
            opener.join(0.1)
            if not opener.is_alive():
                return opened[0] if opened else None
            if time.monotonic() >= next_report:
                self.state = f"opening {self.source!r} (blocked)"
                self._report("warn", f"capture source {self.source!r}: opening has taken over "
                                     f"{self._stall_s:g} s; still waiting for it")
                next_report = time.monotonic() + self._stall_s
        return None

    def _read_until_trouble(self, capture) -> str:
        """Deliver frames until the source ends or stalls; returns what happened. One reader
        thread per opening reads, stamps and delivers; this thread only watches it for stalls
        (a blocked read cannot be interrupted, so it is abandoned and the source reopened)."""
        period = file_frame_period(capture, self.source)
        over, ended = threading.Event(), threading.Event()

        def read_frames() -> None:
            due = time.monotonic()
            while not (self._stop.is_set() or over.is_set()):
                if period:                  # a file plays at its own frame rate, as recorded
                    due += period
                    if self._stop.wait(max(0.0, due - time.monotonic())):
                        break
                ok, frame = capture.read()
                stamp = self._clock_ns()
                if over.is_set():           # given up on as stalled meanwhile
                    break
                if not ok or frame is None:
                    ended.set()
                    break
                self.frames += 1
                try:
                    self._deliver(frame, stamp)
                except Exception as err:    # the consumer's problem must not end capture
                    self._report("error", f"captured frame not delivered: {err!r}")

        reader = threading.Thread(target=read_frames, name=f"{self._thread.name}_read",
                                  daemon=True)
        reader.start()
        deadline = time.monotonic() + self._stall_s + period
        seen = self.frames
        try:
            # Polled, not woken per frame: a wake-up at each delivery would take the GIL from
            # the reader and the inference worker just when a frame is handed over.
            while not self._stop.is_set():
                if ended.wait(0.1):
                    break
                if self.frames != seen:
                    seen = self.frames
                    deadline = time.monotonic() + self._stall_s + period
                elif time.monotonic() > deadline:
                    return f"no frame for {self._stall_s:g} s (stalled)"
            # The read in flight finishes before the caller releases the capture under it.
            reader.join(self._stall_s)
            if not ended.is_set():
                return "stopped"
            return ("reached its end" if describe(self.source) == "video file"
                    else "ended or disconnected")
        finally:
            over.set()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)


def camera_info_from_file(path: str):
    """A sensor_msgs/CameraInfo from a camera_calibration_parsers YAML file (the format
    camera_calibration writes): image size, camera_name, K, D, R, P, distortion model. Without
    a projection_matrix, P is K with a zero fourth column (a monocular camera)."""
    import yaml
    from sensor_msgs.msg import CameraInfo

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"camera_info_file {path!r} cannot be read: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"camera_info_file {path!r} is not a camera calibration file (a YAML "
                         "mapping with image_width, image_height, camera_matrix, ...)")
    try:
        k = _matrix(data, "camera_matrix", 9)
        info = CameraInfo(width=int(data["image_width"]), height=int(data["image_height"]),
                          distortion_model=str(data.get("distortion_model", "plumb_bob")))
        info.k = k
        info.d = [float(v) for v in (data.get("distortion_coefficients") or {}).get("data", [])]
        info.r = (_matrix(data, "rectification_matrix", 9) if "rectification_matrix" in data
                  else [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0])
        info.p = (_matrix(data, "projection_matrix", 12) if "projection_matrix" in data
                  else k[0:3] + [0.0] + k[3:6] + [0.0] + k[6:9] + [0.0])
    except KeyError as err:
        raise ValueError(f"camera_info_file {path!r} is not a camera calibration file: it "
                         f"has no {err}") from None
    except (TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"camera_info_file {path!r} is not a camera calibration file: "
                         f"{err}") from None
    return info


def _matrix(data: dict, key: str, count: int) -> list:
    """The `count` numbers of the calibration file's matrix `key` (its `data` list)."""
    values = [float(v) for v in data[key]["data"]]
    if len(values) != count:
        raise ValueError(f"{key} has {len(values)} numbers, not {count}")
    return values


def file_frame_period(capture, source: str) -> float:
    """Seconds between frames for a video file with a plausible frame rate (1-1000 fps), else 0:
    devices and streams deliver at their own pace, a file would otherwise be read as fast as it
    decodes."""
    import cv2

    if describe(source) != "video file":
        return 0.0
    fps = capture.get(cv2.CAP_PROP_FPS)
    return 1.0 / fps if 1.0 <= fps <= 1000.0 else 0.0


def stamp_of(ns: int):
    from builtin_interfaces.msg import Time
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def describe(source: str) -> Optional[str]:
    """Which kind of source `source` names, for the log."""
    if not source:
        return None
    if source.isdigit() or source.startswith("/dev/video"):
        return "V4L2 device"
    if "!" in source:
        return "GStreamer pipeline"
    if "://" in source:
        return "stream URL"
    return "video file"
