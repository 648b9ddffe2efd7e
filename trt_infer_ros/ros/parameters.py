"""Declaring parameters with full descriptors in one line each."""
from __future__ import annotations

from typing import Any, Optional, Sequence

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor


def declare(node, name: str, default: Any, description: str, *, read_only: bool = False,
            float_range: Optional[tuple[float, float]] = None,
            int_range: Optional[tuple[int, int]] = None,
            choices: Optional[Sequence[str]] = None, dynamic_typing: bool = False) -> Any:
    """Declare `name` with a descriptor (range, choices, read-only) and return its value.

    rclpy itself rejects values outside the declared range and writes to read-only parameters;
    `choices` is shown in the descriptor and must be checked by the node's callback.
    """
    descriptor = ParameterDescriptor(description=description, read_only=read_only,
                                     dynamic_typing=dynamic_typing)
    if float_range is not None:
        descriptor.floating_point_range = [
            FloatingPointRange(from_value=float(float_range[0]), to_value=float(float_range[1]))]
    if int_range is not None:
        descriptor.integer_range = [
            IntegerRange(from_value=int(int_range[0]), to_value=int(int_range[1]), step=1)]
    if choices is not None:
        descriptor.additional_constraints = "one of: " + ", ".join(choices)
    return node.declare_parameter(name, default, descriptor).value
