"""QoS profiles chosen by a parameter, so users can match their camera driver."""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

RELIABILITY_CHOICES = ("best_effort", "reliable")


def image_qos(reliability: str, depth: int) -> QoSProfile:
    """Volatile, KEEP_LAST `depth`: a late frame is worth less than the next one.

    best_effort (the sensor-data profile camera drivers use) also accepts reliable publishers;
    reliable only matches reliable publishers.
    """
    if reliability not in RELIABILITY_CHOICES:
        raise ValueError(f"qos_reliability must be one of {RELIABILITY_CHOICES}, got {reliability!r}")
    policy = (ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort"
              else ReliabilityPolicy.RELIABLE)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=policy,
                      durability=DurabilityPolicy.VOLATILE)
