"""A node's parameters as one table: declared with descriptors, checked strictly, shown by --help.

Each long-running node lists its parameters as `ParamSpec`s. From that one table:
- `declare_all` declares them with full descriptors (type, range, choices, read-only);
- `check` validates a value strictly (rclpy's own range test has a tolerance: 1.0000001 passes
  a 0..1 range; NaN passes every range), so the node's set-parameters callback and its start-up
  both reject what the table does not allow;
- integers are taken where a double or a string is declared (`ros2 param set ...
  score_threshold 1`, `class_filter 0`, `rate:=5` in a launch file): at start-up by rewriting
  the override, while running through rclpy's pre-set callback (Iron and later; on Humble type
  1.0 and "'0'");
- `help_text` prints them for `--help` without starting ROS;
- parameters given to the node but never declared (a misspelling) are named in one warning.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    read_only: bool = False
    float_range: Optional[tuple[float, float]] = None
    int_range: Optional[tuple[int, int]] = None
    choices: Optional[Sequence[str]] = None
    max_length: int = 4096          # strings longer than this are refused

    @property
    def type_name(self) -> str:
        return {bool: "bool", int: "int", float: "double", str: "string"}[type(self.default)]

    def descriptor(self) -> ParameterDescriptor:
        d = ParameterDescriptor(description=self.description, read_only=self.read_only)
        if self.float_range is not None:
            d.floating_point_range = [FloatingPointRange(from_value=float(self.float_range[0]),
                                                         to_value=float(self.float_range[1]))]
        if self.int_range is not None:
            d.integer_range = [IntegerRange(from_value=int(self.int_range[0]),
                                            to_value=int(self.int_range[1]), step=1)]
        if self.choices is not None:
            d.additional_constraints = "one of: " + ", ".join(self.choices)
        return d

    def check(self, value: Any) -> Optional[str]:
        """Why `value` is not allowed for this parameter, or None when it is."""
        kind = type(self.default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not kind:
            return (f"{self.name} takes a {self.type_name}, got {type(value).__name__} "
                    f"{_short(value)}")
        if kind is float and not math.isfinite(value):
            return f"{self.name} must be a finite number, got {value}"
        bounds = self.float_range or self.int_range
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            return f"{self.name} must be within {bounds[0]}..{bounds[1]}, got {value}"
        if kind is str and len(value) > self.max_length:
            return f"{self.name} is {len(value)} characters long; at most {self.max_length}"
        if self.choices is not None and value not in self.choices:
            return f"{self.name} must be one of {', '.join(self.choices)}, got {_short(value)}"
        return None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...'"


def declare_all(node, specs: Sequence[ParamSpec]) -> dict:
    """Declare every parameter of `specs` on `node` and return the start-up values by name.

    Raises ValueError naming the first start-up value the table does not allow.
    """
    _accept_integers_as_typed(node, specs)
    values = {}
    for spec in specs:
        values[spec.name] = node.declare_parameter(spec.name, spec.default,
                                                   spec.descriptor()).value
        problem = spec.check(values[spec.name])
        if problem:
            raise ValueError(problem)
    _warn_undeclared(node, specs)
    return values


def _accept_integers_as_typed(node, specs: Sequence[ParamSpec]) -> None:
    """Take an integer where a double or a string is declared, as users type them.

    `rate:=5`, `ros2 param set ... score_threshold 1` and `ros2 param set ... class_filter 0`
    all arrive as INTEGER: they become 5.0, 1.0 and "0".
    """
    from rclpy.parameter import Parameter

    wanted = {s.name: Parameter.Type.DOUBLE if isinstance(s.default, float) else
              Parameter.Type.STRING for s in specs if isinstance(s.default, (float, str))}

    def convert(p):
        if p.name not in wanted or p.type_ != Parameter.Type.INTEGER:
            return p
        kind = wanted[p.name]
        return Parameter(p.name, kind, float(p.value) if kind == Parameter.Type.DOUBLE
                         else str(p.value))

    # rclpy keeps the command line / params-file values here until they are declared.
    overrides = getattr(node, "_parameter_overrides", {})
    for name in set(wanted) & set(overrides):
        overrides[name] = convert(overrides[name])
    if hasattr(node, "add_pre_set_parameters_callback"):       # Iron and later
        node.add_pre_set_parameters_callback(lambda params: [convert(p) for p in params])


def _warn_undeclared(node, specs: Sequence[ParamSpec]) -> None:
    known = [s.name for s in specs] + ["use_sim_time", "start_type_description_service"]
    unknown = sorted(set(getattr(node, "_parameter_overrides", {})) - set(known))
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        node.get_logger().warning(f"parameter {name!r} is not a parameter of this node and is "
                                  f"ignored{hint}")


def check_updates(specs: Sequence[ParamSpec], parameters) -> tuple[dict, Optional[str]]:
    """The new values of a set-parameters request by name, or the first reason to refuse it."""
    by_name = {s.name: s for s in specs}
    values = {}
    for p in parameters:
        spec = by_name.get(p.name)
        if spec is None:
            continue
        problem = spec.check(p.value)
        if problem:
            return {}, problem
        values[p.name] = float(p.value) if isinstance(spec.default, float) else p.value
    return values, None


def help_text(node_name: str, summary: str, specs: Sequence[ParamSpec]) -> str:
    """What `<node> --help` prints: usage, then one line per parameter."""
    lines = [f"usage: ros2 run trt_infer_ros {node_name} [--ros-args -p name:=value ...]", "",
             summary, "", "parameters (live: settable with `ros2 param set` while running):"]
    width = max(len(s.name) for s in specs)
    for s in specs:
        allowed = (f"{s.float_range[0]}..{s.float_range[1]}" if s.float_range else
                   f"{s.int_range[0]}..{s.int_range[1]}" if s.int_range else
                   "|".join(s.choices) if s.choices else "")
        live = "" if s.read_only else ", live"
        lines.append(f"  {s.name:<{width}}  {s.type_name}{' ' + allowed if allowed else ''}"
                     f", default {s.default!r}{live}")
        lines.append(f"  {'':<{width}}  {s.description}")
    return "\n".join(lines)
