"""The last few camera images by header, so head_node can draw its overlay on the frame the
features came from (the features carry the header, not the pixels)."""
from __future__ import annotations

import threading
from collections import OrderedDict


class RecentImages:
    def __init__(self, keep: int = 8) -> None:
        self._lock = threading.Lock()
        self._items: "OrderedDict[tuple, object]" = OrderedDict()
        self._keep = keep

    @staticmethod
    def key(stamp, frame_id: str) -> tuple:
        return int(stamp[0]), int(stamp[1]), frame_id

    def put(self, msg) -> None:
        with self._lock:
            self._items[self.key((msg.header.stamp.sec, msg.header.stamp.nanosec),
                                 msg.header.frame_id)] = msg
            while len(self._items) > self._keep:
                self._items.popitem(last=False)

    def get(self, stamp, frame_id: str):
        with self._lock:
            return self._items.get(self.key(stamp, frame_id))

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
