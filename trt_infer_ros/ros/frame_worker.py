"""Subscription -> one-slot mailbox -> worker thread: how every frame-processing node takes its
input (detector_node, backbone_node, head_node).

A producer faster than the node must not build a queue: the newest message waits while the
worker is busy, and each one it replaces is counted as skipped. Messages the middleware lost on
the way are counted as lost (the subscription's message-lost event). `process(msg)` runs on the
worker thread; a malformed image or any exception there is counted as rejected and logged
(throttled), and the worker goes on with the next message; while the node shuts down the
worker ends quietly.
"""
from __future__ import annotations

import threading
from typing import Callable

from trt_infer_ros.ros.diagnostics import NodeDiagnostics
from trt_infer_ros.ros.image_conversion import ImageConversionError
from trt_infer_ros.ros.latest_frame import LatestFrame
from trt_infer_ros.ros.lost_messages import LostMessageCounter


class FrameWorker:
    def __init__(self, node, process: Callable, diagnostics: NodeDiagnostics, thread_name: str,
                 enabled: Callable[[], bool] = lambda: True) -> None:
        self._node = node
        self._process = process
        self._diagnostics = diagnostics
        self._enabled = enabled
        self._mailbox = LatestFrame()
        self.subscription = None
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self._thread.start()

    def subscribe(self, msg_type, topic: str, qos) -> None:
        """Take the messages of `topic`, counting those the middleware lost on the way."""
        lost = LostMessageCounter(on_lost=lambda n: self._diagnostics.count("lost", n))
        self.subscription = self._node.create_subscription(msg_type, topic, self.put, qos,
                                                           **lost.subscription_kwargs())

    def put(self, item) -> None:
        """Leave `item` for the worker (from a subscription or a capture thread)."""
        self._diagnostics.count("in")
        if self._mailbox.put(item):
            self._diagnostics.count("skipped")

    def _run(self) -> None:
        while True:
            msg = self._mailbox.take()
            if msg is None:
                return
            if not self._enabled():
                continue
            try:
                self._process(msg)
            except ImageConversionError as err:      # a malformed message
                self._diagnostics.count("rejected")
                if not self._node.context.ok():
                    return
                self._node.get_logger().warning(f"dropped a frame: {err}",
                                                throttle_duration_sec=5.0)
            except Exception as err:                 # one bad frame never stops the node
                if not self._node.context.ok():
                    return          # shutting down: the publishers are already gone
                self._diagnostics.count("rejected")
                self._node.get_logger().error(f"frame not processed: {err!r}",
                                              throttle_duration_sec=5.0)

    def stop(self, timeout_s: float) -> None:
        """Let the message in flight finish (the publishers must outlive it), then end."""
        self._mailbox.close()
        self._thread.join(timeout=timeout_s)
