"""A one-slot mailbox between the subscription callback and the inference thread.

A camera faster than inference must not build a queue: each new frame replaces the one waiting,
so the worker always takes the newest and latency stays bounded by one inference.
"""
from __future__ import annotations

import threading
from typing import Any, Optional


class LatestFrame:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._closed = False
        self.replaced = 0   # frames overwritten before the worker took them

    def put(self, item: Any) -> bool:
        """Leave `item` for the worker; True when it replaced one the worker never took."""
        with self._cond:
            replaced = self._item is not None
            self.replaced += replaced
            self._item = item
            self._cond.notify()
            return replaced

    def take(self, timeout: Optional[float] = None) -> Any:
        """The newest item, or None when closed or after `timeout` seconds without one."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed, timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
