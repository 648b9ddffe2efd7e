"""JPEG camera frames into the GPU pipeline: decoded on the host by OpenCV then uploaded, against
decoded on the GPU by nvImageCodec straight into the frame graph, side by side in one run.

  python benchmarks/jpeg_decode_benchmark.py [--model m.onnx] [--backend auto]
              [--sizes 1280x720 1920x1080] [--quality 90] [--frames 100] [--repeats 3]

Per size (a bundled photo resized, JPEG at --quality), host wall medians per frame:
  raw frame          pipeline(bgr8 pixels): what a raw sensor_msgs/Image costs past transport
  OpenCV + frame     cv2.imdecode(bytes) then pipeline(pixels): the CPU decode path
  GPU decode frame   pipeline.detect_jpeg(bytes): nvImageCodec decode + the frame graph
  decode alone       cv2.imdecode alone, and the GPU decode alone (queued + synchronized)
Each figure is the median of --repeats round medians, [min..max] beside it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from gpu_runner_benchmark import fmt, rounds  # noqa: E402  (benchmarks/ is on sys.path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "models" / "centernet_mobilenetv3_coco.onnx"))
    ap.add_argument("--sizes", nargs="*", default=["1280x720", "1920x1080"])
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--backend", default="auto", help="GPU runner: auto, onnxruntime, tinygrad")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import cv2

    from trt_infer_ros.cuda.jpeg_decoder import GpuJpegDecoder, unavailable_reason
    from trt_infer_ros.pipeline.gpu_pipeline import build_gpu_pipeline
    from trt_infer_ros.pipeline.settings import DetectionSettings

    reason = unavailable_reason()
    if reason:
        raise SystemExit(reason)
    pipe = build_gpu_pipeline(args.model, backend=args.backend,
                              settings=DetectionSettings(0.3, 0.45, 100), precision="fp32")
    print(f"model {args.model}: {pipe.runner.name} {pipe.runner.device}", flush=True)
    decoder = GpuJpegDecoder()              # the decode alone, on its own stream
    photo = cv2.imread(str(REPO / "data" / "images" / "astronaut.jpg"))
    rows = []
    try:
        for size in args.sizes:
            w, h = (int(v) for v in size.lower().split("x"))
            image = cv2.resize(photo, (w, h))
            ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, args.quality])
            data = encoded.tobytes()
            pixels = np.ascontiguousarray(image)
            print(f"[{w}x{h}] JPEG q{args.quality}: {len(data) / 1024:.0f} KiB "
                  f"(raw {pixels.nbytes / 1024:.0f} KiB)", flush=True)
            results = {
                "raw frame": rounds(lambda: pipe(pixels, "bgr8"), args.frames, args.repeats),
                "OpenCV + frame": rounds(lambda: pipe(cv2.imdecode(encoded, cv2.IMREAD_COLOR),
                                                      "bgr8"), args.frames, args.repeats),
                "GPU decode frame": rounds(lambda: pipe.detect_jpeg(data), args.frames,
                                           args.repeats),
                "OpenCV decode alone": rounds(lambda: cv2.imdecode(encoded, cv2.IMREAD_COLOR),
                                              args.frames, args.repeats),
                "GPU decode alone": rounds(lambda: (decoder.decode(data),
                                                    decoder.stream.synchronize()),
                                           args.frames, args.repeats),
            }
            for label, r in results.items():
                print(f"  {label:20s} {fmt(r)}", flush=True)
            assert decoder.failures == 0 and pipe._jpeg.failures == 0, decoder.last_error
            ratio = results["GPU decode frame"][0] / results["OpenCV + frame"][0]
            print(f"  GPU decode frame / OpenCV + frame = {ratio:.2f}", flush=True)
            rows.append((f"{w}x{h}", len(data), results, ratio))
    finally:
        decoder.close()
        pipe.close()
    print("\n| size | JPEG | raw frame | OpenCV + frame | GPU decode frame | ratio | "
          "OpenCV decode | GPU decode |")
    print("|---|---|---|---|---|---|---|---|")
    for size, nbytes, r, ratio in rows:
        print(f"| {size} | {nbytes / 1024:.0f} KiB | {r['raw frame'][0]:.2f} | "
              f"{r['OpenCV + frame'][0]:.2f} | {r['GPU decode frame'][0]:.2f} | {ratio:.2f}x | "
              f"{r['OpenCV decode alone'][0]:.2f} | {r['GPU decode alone'][0]:.2f} |")


if __name__ == "__main__":
    main()
