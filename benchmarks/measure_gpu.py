"""One GPU-machine run of the measuring tools: graph vs eager on the GPU pipeline, and the
precision/accelerator comparison with NVML power (onnxruntime FP32/INT8 on the CPU, tinygrad
FP32 on CUDA), plus the GPU's idle power for reference.

  python benchmarks/measure_gpu.py --out DIR [--frames 200] [--size 1280x720]

Writes at most 8 files to DIR (the device tool brings back 8): graph_vs_eager.json/.png and
compare_{result.json,summary.md,latency.png,tradeoff.png,timeline.png}.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trt_infer_ros.bench import graph_eager  # noqa: E402
from trt_infer_ros.bench.cli import main as bench_main  # noqa: E402
from trt_infer_ros.bench.frames import load_frames, parse_size  # noqa: E402
from trt_infer_ros.measure import plots  # noqa: E402
from trt_infer_ros.measure.power import mean_power_w, open_power_sampler  # noqa: E402
from trt_infer_ros.measure.report import write_json  # noqa: E402
from trt_infer_ros.measure.stats import summarize  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", default=str(REPO / "models" / "centernet_mobilenetv3_coco.onnx"))
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--size", default="1280x720")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frames = load_frames(None, parse_size(args.size))

    sampler, note = open_power_sampler("nvml", 0.05)
    print("power:", note, flush=True)
    if sampler is not None:
        with sampler:
            time.sleep(3.0)
        t = [s.t for s in sampler.samples]
        idle = mean_power_w(sampler.samples, t[0], t[-1])
        print(f"idle GPU power: {idle:.1f} W over {t[-1] - t[0]:.1f} s "
              f"({len(t)} readings; limit {sampler.power_limit_w} W)", flush=True)

    ge = graph_eager.measure(args.model, frames, args.frames, backend="tinygrad")
    write_json(out / "graph_vs_eager.json", ge)
    if ge.get("available"):
        for mode in ("graph", "eager"):
            r = ge[mode]
            samples = r["samples"]
            print(f"{mode:5} ({r['frame_mode']}): launch {summarize(samples['host_launch_ms'])}"
                  f"\n      frame latency {summarize(samples['frame_latency_ms'])}", flush=True)
        plots.graph_vs_eager(ge, out / "graph_vs_eager.png",
                             "GPU pipeline (tinygrad CUDA, CenterNet, 1280x720): graph vs eager")
    else:
        print("graph vs eager:", ge["reason"])

    work = Path(tempfile.mkdtemp(prefix="compare_"))
    rc = bench_main(["compare", "--model", args.model, "--frames", str(args.frames),
                     "--size", args.size, "--power", "nvml", "--power-interval", "0.05",
                     "--output", str(work)])
    for name in ("result.json", "summary.md", "latency.png", "tradeoff.png", "timeline.png"):
        if (work / name).exists():
            shutil.copy(work / name, out / f"compare_{name}")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
