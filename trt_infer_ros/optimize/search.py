"""Mixed-precision search: from full INT8, promote layers to FP16 in sensitivity order until the
agreement target is met.

One at a time for small models; for large ones a bisection over how many of the ranked layers
to promote (the fewest k whose promotion meets the target, assuming more FP16 never hurts).
Every layer in FP16 is measured first: a target it misses cannot be met by any plan.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import onnx

from trt_infer_ros.optimize.analysis import Analysis
from trt_infer_ros.optimize.layers import precision_pattern
from trt_infer_ros.optimize.sensitivity import LayerSensitivity, ranked

BISECT_FROM = 24           # layers: above this, bisection


class TargetUnreachable(RuntimeError):
    pass


@dataclass
class SearchResult:
    target: float
    metric: str
    promoted: list[str]                       # layers kept in FP16, in promotion order
    plan: dict[str, str]
    value: float                              # the agreement of the final plan
    history: list[tuple[int, float]] = field(default_factory=list)   # (FP16 layers, agreement)
    mode: str = "linear"

    def layer_precisions(self) -> list[str]:
        """The engine builder's `layer_precisions` entries for this plan."""
        return [f"{precision_pattern(name)}=fp16" for name in self.promoted]


def search(analysis: Analysis, rows: list[LayerSensitivity], target: float,
           metric: str = "map50_95", mode: str = "auto") -> SearchResult:
    if not 0 < target <= 1:
        raise ValueError(f"accuracy target {target} must be in (0, 1]")
    order = [r.name for r in ranked(rows)]
    log = analysis.log
    history: dict[int, float] = {}

    def value(k: int) -> float:
        if k not in history:
            history[k] = analysis.measure(analysis.all_int8(order[:k])).value(metric)
            log(f"search: {k} layer(s) in FP16 -> {metric} {history[k]:.4f}")
        return history[k]

    n = len(order)
    if value(n) < target:
        raise TargetUnreachable(
            f"{metric} {target} cannot be met: with every one of the {n} layers in FP16 the "
            f"agreement is {history[n]:.4f} (FP16 rounding alone); lower accuracy_target or build "
            "in FP16")
    mode = ("bisect" if n > BISECT_FROM else "linear") if mode == "auto" else mode
    if value(0) >= target:
        k = 0
    elif mode == "linear":
        k = next(k for k in range(1, n + 1) if value(k) >= target)
    else:
        lo, hi = 0, n                 # value(lo) < target <= value(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if value(mid) >= target else (mid, hi)
        k = hi
    promoted = order[:k]
    return SearchResult(target, metric, promoted, analysis.all_int8(promoted), history[k],
                        sorted(history.items()), mode)


def qdq_model(analysis: Analysis, result: SearchResult) -> onnx.ModelProto:
    """The Q/DQ ONNX of the plan for strongly typed builds: only the INT8 layers quantized, the
    promoted ones left in float (TensorRT picks FP16 for them when FP16 is allowed)."""
    plan = {name: p for name, p in result.plan.items() if p == "int8"}
    return analysis.model_for(plan)
