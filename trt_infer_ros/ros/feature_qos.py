"""QoS of the feature topic between backbone_node and head_node.

Reliable, KEEP_LAST 2, volatile: a handle is a few hundred bytes and losing one loses a whole
frame's work, so it is delivered reliably; depth 2 lets the backbone hand over frame N while
the head still reads N-1; nothing is kept for late joiners (old handles name reused slots).
"""
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

FEATURES_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2,
                          reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
INLINE_REQUEST_SUFFIX = "/inline_request"
