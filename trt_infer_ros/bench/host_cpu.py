"""Whole-host CPU utilisation over time, for the timeline plot next to power."""
from __future__ import annotations

import threading
import time

import psutil


class HostCpuSampler:
    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "HostCpuSampler":
        psutil.cpu_percent(interval=None)          # the first call only sets the baseline
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.samples.append({"t": time.monotonic(),
                                 "cpu_percent": psutil.cpu_percent(interval=None)})

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
