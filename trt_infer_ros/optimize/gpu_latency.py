"""Whole-frame latency of model variants on each GPU runner installed: the GPU half of the
compression commands' before/after report. Empty where there is no CUDA GPU."""
from __future__ import annotations

import logging
from typing import Optional

LOG = logging.getLogger("trt_infer_ros.optimize.gpu_latency")


def gpu_frame_latency_ms(model_paths: list) -> dict[str, list[Optional[float]]]:
    """{runner: [ms per 1280x720 frame for each model, None where it did not run]}; the same
    whole-frame timing `backend: auto` uses to pick a runner."""
    from trt_infer_ros.pipeline.gpu_pipeline import build_gpu_pipeline, unavailable_reason
    from trt_infer_ros.pipeline.gpu_runner_choice import installed_gpu_runners, time_whole_frame

    if unavailable_reason() is not None:
        return {}
    result = {}
    for runner in installed_gpu_runners():
        times: list[Optional[float]] = []
        for path in model_paths:
            try:
                pipe = build_gpu_pipeline(str(path), backend=runner, device="CUDA",
                                          precision="fp32")
            except Exception as exc:          # one runner refusing a model is a finding
                LOG.warning("%s on %s: not run (%s)", path, runner, exc)
                times.append(None)
                continue
            try:
                times.append(time_whole_frame(pipe))
            finally:
                pipe.close()
        result[runner] = times
    return result


def describe(latency: dict) -> list[str]:
    """One report line per runner: before -> after."""
    lines = []
    for runner, (before, after) in latency.items():
        if before and after:
            lines.append(f"GPU frame latency ({runner}, 1280x720) {before:.2f} ms -> "
                         f"{after:.2f} ms ({(after - before) / before * 100:+.1f} %)")
        else:
            lines.append(f"GPU frame latency ({runner}): not measured for "
                         + ("both models" if not (before or after) else
                            "the input model" if not before else "the output model"))
    return lines
