"""Progress during long builds.

TensorRT >= 10: an `IProgressMonitor` subclass that turns phase start / step / finish callbacks
into log lines with the phase path and percent (throttled, thread-safe, cancellable).
Older TensorRT: a heartbeat thread that logs the elapsed time every few seconds.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from trt_infer_ros.engine import trt_compat

LogFn = Callable[[str], None]


class ProgressState:
    """Phase bookkeeping shared by the TensorRT monitor; usable (and tested) without TensorRT."""

    def __init__(self, log: LogFn, min_percent_step: float = 10.0, clock=time.monotonic):
        self._log = log
        self._lock = threading.Lock()
        self._phases: dict[str, tuple[Optional[str], int, float]] = {}  # name->(parent,steps,last%)
        self._min_step = min_percent_step
        self._clock = clock
        self._start = clock()
        self.cancelled = threading.Event()

    def _path(self, name: str) -> str:
        parts = [name]
        parent = self._phases.get(name, (None, 0, 0.0))[0]
        while parent:
            parts.append(parent)
            parent = self._phases.get(parent, (None, 0, 0.0))[0]
        return " > ".join(reversed(parts))

    def _elapsed(self) -> str:
        return format_elapsed(self._clock() - self._start)

    def phase_start(self, phase_name: str, parent_phase: Optional[str], num_steps: int) -> None:
        with self._lock:
            self._phases[phase_name] = (parent_phase or None, max(int(num_steps), 1), 0.0)
            self._log(f"[{self._elapsed()}] {self._path(phase_name)}: started ({num_steps} steps)")

    def step_complete(self, phase_name: str, step: int) -> bool:
        with self._lock:
            parent, steps, last = self._phases.get(phase_name, (None, 1, 0.0))
            percent = 100.0 * (int(step) + 1) / steps
            if percent - last >= self._min_step or percent >= 100.0 and last < 100.0:
                self._phases[phase_name] = (parent, steps, percent)
                self._log(f"[{self._elapsed()}] {self._path(phase_name)}: {int(percent)}% "
                          f"({int(step) + 1}/{steps})")
        return not self.cancelled.is_set()

    def phase_finish(self, phase_name: str) -> None:
        with self._lock:
            self._log(f"[{self._elapsed()}] {self._path(phase_name)}: done")
            self._phases.pop(phase_name, None)


def make_progress_monitor(trt, log: LogFn, min_percent_step: float = 10.0):
    """An instance of a `trt.IProgressMonitor` subclass feeding `log`; None before TensorRT 10."""
    if not trt_compat.supports_progress_monitor(trt):
        return None

    class _LoggingProgressMonitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.state = ProgressState(log, min_percent_step)

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.state.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name, step):
            return self.state.step_complete(phase_name, step)

        def phase_finish(self, phase_name):
            self.state.phase_finish(phase_name)

    return _LoggingProgressMonitor()


def format_elapsed(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


class Heartbeat:
    """Logs 'still building, MM:SS elapsed' every `interval_s` until stopped (context manager)."""

    def __init__(self, log: LogFn, interval_s: float = 15.0, what: str = "building engine"):
        self._log = log
        self._interval = interval_s
        self._what = what
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._start = 0.0
        self.beats = 0

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.beats += 1
            self._log(f"{self._what}: {format_elapsed(time.monotonic() - self._start)} elapsed "
                      "(TensorRT < 10 reports no progress; DLA and INT8 builds take minutes)")

    def __enter__(self) -> "Heartbeat":
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="engine-build-heartbeat",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._log(f"{self._what}: finished after {format_elapsed(time.monotonic() - self._start)}")
