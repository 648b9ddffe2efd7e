"""Graph vs eager on the GPU pipeline detector_node runs (GpuDetectionPipeline): the host time
to launch one frame and the frame's latency (image in -> detections out, host wall clock), with
the whole frame as one CUDA graph and with every stage launched one by one (use_graph=False).
The CPU path has no frame graph: there the result says so and measures nothing."""
from __future__ import annotations

import time

from trt_infer_ros.measure.stats import summarize


def measure(model_path: str, images: list, frames: int = 200, backend: str = "auto",
            warmup: int = 5) -> dict:
    from trt_infer_ros.pipeline import gpu_pipeline

    why = gpu_pipeline.unavailable_reason()
    if why is not None:
        return {"available": False,
                "reason": f"no CUDA GPU here ({why}): the CPU path has no frame graph"}
    out = {"available": True, "frames": frames, "images": [list(i.shape) for i in images]}
    for mode, use_graph in (("graph", True), ("eager", False)):
        pipe = gpu_pipeline.build_gpu_pipeline(model_path, backend=backend, use_graph=use_graph,
                                               precision="fp32")
        try:
            for i in range(warmup):
                pipe(images[i % len(images)], "bgr8")
            frame_ms, launch_ms = [], []
            for i in range(frames):
                image = images[i % len(images)]
                start = time.perf_counter()
                pipe(image, "bgr8")
                frame_ms.append((time.perf_counter() - start) * 1e3)
            for i in range(frames):     # the launch alone: what the host pays per frame
                frame, _ = pipe.frame_for(images[i % len(images)], "bgr8")
                start = time.perf_counter()
                frame.launch()
                launch_ms.append((time.perf_counter() - start) * 1e3)
                frame.synchronize()
            out[mode] = {"frame_mode": frame.mode, "runner": pipe.runner.name,
                         "frame_latency_ms": summarize(frame_ms).as_dict(),
                         "host_launch_ms": summarize(launch_ms).as_dict(),
                         "samples": {"frame_latency_ms": frame_ms, "host_launch_ms": launch_ms}}
        finally:
            pipe.close()
    g, e = out["graph"], out["eager"]
    out["launch_speedup_p50"] = e["host_launch_ms"]["p50"] / max(g["host_launch_ms"]["p50"], 1e-9)
    out["latency_saved_p50_ms"] = e["frame_latency_ms"]["p50"] - g["frame_latency_ms"]["p50"]
    return out

