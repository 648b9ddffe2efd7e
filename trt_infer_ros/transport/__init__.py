"""Feature tensors between backbone_node and head_node: the wire format and the same-host paths."""
