"""The live-parameter callback of the detecting nodes (detector_node, head_node).

`ros2 param set` on score_threshold, nms_iou_threshold, agnostic_nms, max_detections,
class_filter or enable changes the pipeline's settings from the next frame. The whole batch is
validated first, then applied: a rejected batch changes nothing.
"""
from __future__ import annotations

from typing import Callable, Sequence

from rcl_interfaces.msg import SetParametersResult

from trt_infer_ros.pipeline.settings import DetectionSettings
from trt_infer_ros.ros.class_filter import ClassFilterError, parse_class_filter
from trt_infer_ros.ros.detector_parameters import DETECTOR_PARAMETERS, LIVE
from trt_infer_ros.ros.parameters import check_updates


class LiveTuning:
    """Holds `enabled` and writes accepted changes into `settings` (read on every frame)."""

    def __init__(self, node, settings: DetectionSettings, class_names: Sequence[str],
                 enabled: bool, specs=DETECTOR_PARAMETERS,
                 on_applied: Callable[[dict], None] = lambda updates: None) -> None:
        """`on_applied(updates)`: told each accepted batch ({name: value})."""
        self._node = node
        self._on_applied = on_applied
        self._settings = settings
        self._class_names = list(class_names)
        self._specs = specs
        self.enabled = bool(enabled)

    def attach(self) -> None:
        self._node.add_on_set_parameters_callback(self.on_set_parameters)

    def on_set_parameters(self, parameters) -> SetParametersResult:
        # No exception may leave this callback: rclpy would take the node down with it.
        try:
            return self._apply(parameters)
        except Exception as err:
            return SetParametersResult(successful=False, reason=f"rejected: {err!r}"[:500])

    def _apply(self, parameters) -> SetParametersResult:
        values, problem = check_updates(self._specs, parameters)
        if problem:
            return SetParametersResult(successful=False, reason=problem)
        updates = {name: value for name, value in values.items() if name in LIVE}
        if "class_filter" in updates:
            try:
                updates["class_filter"] = parse_class_filter(updates["class_filter"],
                                                             self._class_names)
            except ClassFilterError as err:
                return SetParametersResult(successful=False, reason=str(err))
        for name, value in updates.items():
            if name == "enable":
                self.enabled = bool(value)
            else:
                setattr(self._settings, name, value)
        if updates:
            self._node.get_logger().info("updated " + ", ".join(
                f"{k}={shown(v)}" for k, v in updates.items()))
            self._on_applied(updates)
        return SetParametersResult(successful=True)


def shown(value):
    return sorted(value) if isinstance(value, frozenset) else value
