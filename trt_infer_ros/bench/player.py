"""Plays a fixed set of frames at a fixed rate on the graph's input topic and matches each
Detection2DArray to its frame by header stamp (the detector copies the image header): the
latency of a frame is its detections' arrival minus its publication, on this host's clock."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Optional

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from trt_infer_ros.ros.qos import image_qos

DRAIN_S = 1.0          # after the last frame: how long to wait for answers beyond the slowest seen


@dataclass
class Played:
    """What one fixed-rate run sent and got back (measured frames only, not the warm-up)."""

    rate_hz: float
    sent: int
    received: int
    latencies_ms: list
    window_s: float                 # publication of the first to the last measured frame
    t0: float                       # time.monotonic() of the measured window
    t1: float

    @property
    def drop_fraction(self) -> float:
        return 1.0 - self.received / self.sent if self.sent else 1.0

    @property
    def output_rate_hz(self) -> float:
        return self.received / self.window_s if self.window_s > 0 else 0.0


class FramePlayer:
    def __init__(self, input_topic: str, output_topic: str, messages: list,
                 reliability: str = "best_effort", domain_id: Optional[int] = None) -> None:
        self.messages = messages
        self.output_topic = output_topic
        self.context = Context()
        kwargs = {} if domain_id is None else {"domain_id": domain_id}
        rclpy.init(context=self.context, **kwargs)
        self.node = rclpy.create_node("trt_infer_ros_bench", context=self.context)
        self.publisher = self.node.create_publisher(Image, input_topic,
                                                    image_qos(reliability, 1))
        # Every answer counts: reliable, deep enough for a burst.
        answers = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                             reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(Detection2DArray, output_topic, self._on_detections,
                                      answers)
        self._lock = threading.Lock()
        self._sent: dict = {}            # stamp (sec, nanosec) -> (publish time, measured?)
        self._arrivals: dict = {}        # stamp -> arrival time
        self._stamp_ns = time.time_ns()
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self._spinner.start()

    def _on_detections(self, msg: Detection2DArray) -> None:
        now = time.monotonic()
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        with self._lock:
            if key in self._sent and key not in self._arrivals:
                self._arrivals[key] = now

    def _publish(self, index: int, measured: bool) -> None:
        msg = self.messages[index % len(self.messages)]
        self._stamp_ns += 1000       # unique stamps even for frames a microsecond apart
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(self._stamp_ns, 1_000_000_000)
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        with self._lock:
            self._sent[key] = (time.monotonic(), measured)
        self.publisher.publish(msg)

    def wait_first_answer(self, timeout_s: float, alive=lambda: None) -> float:
        """Send a frame every 0.5 s until one is answered (the graph finished starting); the
        seconds that took."""
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < timeout_s:
            alive()
            if self.publisher.get_subscription_count() > 0:
                self._publish(i, measured=False)
                i += 1
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                with self._lock:
                    if self._arrivals:
                        return time.monotonic() - start
                time.sleep(0.01)
        raise TimeoutError(f"no detections on {self.output_topic} within {timeout_s:.0f} s")

    def play(self, rate_hz: float, frames: int, warmup_frames: int = 0) -> Played:
        """Publish warmup_frames + frames at rate_hz on an absolute schedule (no drift)."""
        with self._lock:
            self._sent.clear()
            self._arrivals.clear()
        period = 1.0 / rate_hz
        start = time.monotonic()
        t0 = t1 = start
        for i in range(warmup_frames + frames):
            delay = start + i * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            measured = i >= warmup_frames
            if i == warmup_frames:
                t0 = time.monotonic()
            self._publish(i, measured)
        t1 = time.monotonic()
        self._drain()
        with self._lock:
            lat = [(self._arrivals[k] - sent) * 1000.0 for k, (sent, measured)
                   in self._sent.items() if measured and k in self._arrivals]
            sent_count = sum(1 for _, measured in self._sent.values() if measured)
        # the measured window spans `frames` periods, as the frames were paced
        return Played(rate_hz, sent_count, len(lat), lat, frames * period, t0, t1 + period)

    def _drain(self) -> None:
        """Wait until no answer has arrived for DRAIN_S plus the slowest latency seen."""
        last_count, last_change = -1, time.monotonic()
        while True:
            with self._lock:
                count = len(self._arrivals)
                pending = len(self._sent) - count
                slowest = max((self._arrivals[k] - self._sent[k][0] for k in self._arrivals),
                              default=0.0)
            now = time.monotonic()
            if count != last_count:
                last_count, last_change = count, now
            if pending == 0 or now - last_change > DRAIN_S + min(slowest, 10.0):
                return
            time.sleep(0.02)

    def close(self) -> None:
        self.executor.shutdown()
        self._spinner.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
