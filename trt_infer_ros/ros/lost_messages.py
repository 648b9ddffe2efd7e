"""Frames the middleware lost before they reached a subscription (rmw's message-lost event).

A best_effort image subscription drops frames silently when the transport cannot keep up (large
frames over fragmented UDP); this counts them so the node can report them apart from the frames
it skipped itself for newer ones.
"""
from __future__ import annotations

import threading
from typing import Callable, Optional

try:                                    # Iron and later
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:                     # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks


class LostMessageCounter:
    def __init__(self, on_lost: Optional[Callable[[int], None]] = None) -> None:
        self._on_lost_count = on_lost       # told each new loss as it is reported
        self._lock = threading.Lock()
        self.total = 0
        self.pending = 0                # since the last take()

    def subscription_kwargs(self) -> dict:
        """Keyword arguments for create_subscription that route the event here."""
        return {"event_callbacks": SubscriptionEventCallbacks(message_lost=self._on_lost)}

    def _on_lost(self, info) -> None:
        with self._lock:
            self.total += info.total_count_change
            self.pending += info.total_count_change
        if self._on_lost_count is not None:
            self._on_lost_count(info.total_count_change)

    def take(self) -> int:
        """Frames lost since the last call."""
        with self._lock:
            count, self.pending = self.pending, 0
            return count
