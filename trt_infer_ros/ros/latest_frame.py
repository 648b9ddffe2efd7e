"""A one-slot mailbox between the subscription callback and the inference thread.

A camera faster than inference must not build a queue: each new frame replaces the one waiting,
so the worker always takes the newest and latency stays bounded by one inference.
"""
from __future__ import annotations

import threading
from typing import Any, Optional

# How long put() waits for an idle worker to take its item (see put()).
HANDOVER_TIMEOUT_S = 0.002


class LatestFrame:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._closed = False
        self._worker_waiting = False
        self.replaced = 0   # frames overwritten before the worker took them

    def put(self, item: Any) -> bool:
        """Leave `item` for the worker; True when it replaced one the worker never took.

        When the worker is idle, waits (at most HANDOVER_TIMEOUT_S) until it has taken the
        item: the caller (an executor thread) would otherwise hold the GIL for its own
        bookkeeping while the woken worker waits for it, a few tenths of a millisecond per frame.
        """
        with self._cond:
            replaced = self._item is not None
            self.replaced += replaced
            self._item = item
            self._cond.notify_all()
            if self._worker_waiting:
                self._cond.wait_for(lambda: self._item is not item, HANDOVER_TIMEOUT_S)
            return replaced

    def take(self, timeout: Optional[float] = None) -> Any:
        """The newest item, or None when closed or after `timeout` seconds without one."""
        with self._cond:
            self._worker_waiting = True
            try:
                self._cond.wait_for(lambda: self._item is not None or self._closed, timeout)
            finally:
                self._worker_waiting = False
            item, self._item = self._item, None
            self._cond.notify_all()       # a put() waiting for the hand-over
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
