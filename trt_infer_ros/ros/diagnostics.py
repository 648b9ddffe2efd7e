"""A node's health on /diagnostics (diagnostic_msgs/DiagnosticArray, about 1 Hz).

What a robot's diagnostic aggregator and rqt_robot_monitor show for each node: frames in,
processed, skipped for newer, lost in transport, rejected; input and output rates over the last
period; per-stage latency p50/p99 over a sliding window; the backend and device; and a level
(OK / WARN / ERROR) with the reason when something is off, e.g. the output rate below the
`expected_rate` parameter.

QoS: reliable, depth 10, volatile (what diagnostic_updater uses; /diagnostics is low rate).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, Optional, Sequence

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

COUNTERS = ("in", "processed", "skipped", "lost", "rejected")
# How the periodic log line names each counter (nodes add their own, e.g. "busy").
LOG_WORDS = {"skipped": "skipped for newer frames", "lost": "lost in transport",
             "rejected": "rejected"}
WINDOW_S = 10.0          # latency percentiles cover the last 10 s of frames
STALL_S = 3.0            # frames arriving but none processed for this long: ERROR


class NodeDiagnostics:
    """Counts and stage latencies of one node, published on /diagnostics every `period_s`."""

    def __init__(self, node, hardware_id: str, stages: Sequence[str],
                 expected_rate: Callable[[], float] = lambda: 0.0, period_s: float = 1.0,
                 extra_counters: Optional[dict] = None, summary_period_s: float = 10.0,
                 logged: Sequence[str] = tuple(LOG_WORDS)):
        """`extra_counters`: the node's own counters, {name: words for the log line};
        `logged`: which of the standard counters the log line names (a source has no input
        to skip or lose)."""
        self._node = node
        self._counters = COUNTERS + tuple(extra_counters or {})
        self._log_words = {name: LOG_WORDS[name] for name in logged}
        self._log_words.update(extra_counters or {})
        self._hardware_id = hardware_id
        self._stages = tuple(stages)
        self._expected_rate = expected_rate
        self._lock = threading.Lock()
        self._period = {name: 0 for name in self._counters}     # since the last publish
        self._total = {name: 0 for name in self._counters}
        self._summary = {name: 0 for name in self._counters}    # since the last log line
        self._summary_ms = 0.0
        self._summary_period = summary_period_s
        self._samples: deque = deque()                       # (time, {stage: ms})
        self._last_publish = time.monotonic()
        self._last_processed = time.monotonic()
        self._extra: dict[str, str] = {}
        self._problems: dict[str, str] = {}     # conditions that hold the level at WARN
        self._publisher = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._timer = node.create_timer(period_s, self.publish)
        self._summary_timer = node.create_timer(summary_period_s, self.log_summary)

    # -- fed by the node (any thread) ------------------------------------------------------------
    def count(self, counter: str, n: int = 1) -> None:
        if n == 0:
            return
        with self._lock:
            self._period[counter] += n
            self._total[counter] += n
            self._summary[counter] += n

    def frame_done(self, stage_ms: dict) -> None:
        """One frame processed, with the milliseconds each stage took."""
        now = time.monotonic()
        with self._lock:
            self._period["processed"] += 1
            self._total["processed"] += 1
            self._summary["processed"] += 1
            self._summary_ms += sum(stage_ms.values())
            self._last_processed = now
            self._samples.append((now, dict(stage_ms)))

    def log_summary(self) -> None:
        """The periodic log line (every `summary_period_s`, only when something happened)."""
        with self._lock:
            counts, total_ms = dict(self._summary), self._summary_ms
            self._summary = {name: 0 for name in self._counters}
            self._summary_ms = 0.0
        if not any(counts[name] for name in self._counters if name != "in"):
            return
        if not self._node.context.ok():
            return          # Ctrl-C came while this timer ran: the log would not reach /rosout
        frames = counts["processed"]
        parts = [f"{frames / self._summary_period:.1f} frames/s",
                 f"{total_ms / max(frames, 1):.1f} ms per frame"]
        parts += [f"{counts[name]} {words}" for name, words in self._log_words.items()]
        logger = self._node.get_logger()
        logger.info(", ".join(parts))
        if counts["lost"]:
            logger.warning(f"{counts['lost']} frames were lost before they reached this node; "
                           "see the README ('Frames lost in transport') for the DDS transport "
                           "and QoS that avoid it", throttle_duration_sec=60.0)

    def total(self, counter: str) -> int:
        """How many `counter` events since the node started."""
        with self._lock:
            return self._total[counter]

    def set_value(self, key: str, value) -> None:
        """A fixed fact shown with every status (model, input size, ...)."""
        with self._lock:
            self._extra[key] = str(value)

    def set_problem(self, key: str, text: Optional[str]) -> None:
        """A condition (a source that cannot be opened, a calibration for another size) that
        makes the level WARN with `text` as the reason while it lasts; None: it is over."""
        with self._lock:
            if text is None:
                self._problems.pop(key, None)
            else:
                self._problems[key] = text

    # -- the timer --------------------------------------------------------------------------------
    def publish(self) -> None:
        try:
            status = self.status()
            msg = DiagnosticArray(status=[status])
            msg.header.stamp = self._node.get_clock().now().to_msg()
            self._publisher.publish(msg)
        except Exception as err:             # diagnostics must never take the node down
            if self._node.context.ok():
                self._node.get_logger().warning(f"diagnostics not published: {err!r}",
                                                throttle_duration_sec=60.0)

    def status(self) -> DiagnosticStatus:
        now = time.monotonic()
        with self._lock:
            elapsed = max(now - self._last_publish, 1e-6)
            period, total = dict(self._period), dict(self._total)
            self._period = {name: 0 for name in self._counters}
            self._last_publish = now
            while self._samples and self._samples[0][0] < now - WINDOW_S:
                self._samples.popleft()
            samples = [s for _, s in self._samples]
            stalled_s = now - self._last_processed
            extra, problems = dict(self._extra), list(self._problems.values())
        rate_in, rate_out = period["in"] / elapsed, period["processed"] / elapsed
        level, reason = self._level(rate_in, rate_out, period, stalled_s)
        if problems and level == DiagnosticStatus.OK:
            level, reason = DiagnosticStatus.WARN, "; ".join(problems)
        values = [("input rate (Hz)", f"{rate_in:.2f}"), ("output rate (Hz)", f"{rate_out:.2f}")]
        values += [(f"frames {name}", str(total[name])) for name in self._counters]
        values += [(f"frames {name} (last period)", str(period[name]))
                   for name in self._counters]
        for stage in self._stages:
            ms = [s[stage] for s in samples if stage in s]
            if ms:
                p50, p99 = np.percentile(ms, [50, 99])
                values.append((f"{stage} p50 (ms)", f"{p50:.2f}"))
                values.append((f"{stage} p99 (ms)", f"{p99:.2f}"))
        expected = self._expected_rate()
        values.append(("expected rate (Hz)", f"{expected:g}" if expected > 0 else "not set"))
        values += sorted(extra.items())
        return DiagnosticStatus(
            level=level, name=f"{self._node.get_name()}: detection",
            message=reason, hardware_id=self._hardware_id,
            values=[KeyValue(key=k, value=v) for k, v in values])

    def _level(self, rate_in: float, rate_out: float, period: dict,
               stalled_s: float) -> tuple[bytes, str]:
        if period["in"] > 0 and period["processed"] == 0 and stalled_s > STALL_S:
            return DiagnosticStatus.ERROR, (f"frames arrive ({rate_in:.1f} Hz) but none was "
                                            f"processed for {stalled_s:.0f} s")
        expected = self._expected_rate()
        if expected > 0 and rate_out < 0.9 * expected:
            why = "no input" if rate_in == 0 else f"input {rate_in:.1f} Hz"
            return DiagnosticStatus.WARN, (f"output {rate_out:.1f} Hz below the expected "
                                           f"{expected:g} Hz ({why})")
        if period["rejected"]:
            return DiagnosticStatus.WARN, f"{period['rejected']} frames rejected (bad messages)"
        if period["lost"]:
            return DiagnosticStatus.WARN, (f"{period['lost']} frames lost in transport "
                                           "(see README: Frames lost in transport)")
        if period["in"] == 0:
            return DiagnosticStatus.OK, "waiting for frames"
        return DiagnosticStatus.OK, f"{rate_out:.1f} Hz"

    def destroy(self) -> None:
        self._timer.cancel()
        self._summary_timer.cancel()


def stage_times(convert_ms: float, pipeline_timings: Optional[object], publish_ms: float) -> dict:
    """The node's stage names from a pipeline's FrameTimings plus the node's own stages."""
    stages = {"convert": convert_ms, "publish": publish_ms}
    if pipeline_timings is not None:
        t = pipeline_timings
        stages["preprocess"] = t.preprocess
        stages["inference"] = t.inference
        stages["decode+nms"] = t.decode + t.nms + t.postprocess
    return stages


DETECTOR_STAGES = ("convert", "preprocess", "inference", "decode+nms", "publish")
