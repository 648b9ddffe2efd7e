#!/usr/bin/env python3
"""Export real Ultralytics models from their YAML definitions (random weights, nothing is
downloaded) and run each through the detection pipeline: prints the detected model type, what
the pipeline chose, and milliseconds per frame.

Needs `pip install ultralytics onnx` (not a dependency of this package). Random weights mean
the detections themselves are meaningless; what is checked is that every export is recognised,
preprocessed and decoded without errors or non-finite boxes.

    python scripts/check_ultralytics_exports.py [--out /tmp/exports] [--frames 5] [--only yolo11n]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# (name, model YAML, export arguments)
EXPORTS = [
    ("yolov8n", "yolov8n.yaml", {}),
    ("yolo11n", "yolo11n.yaml", {}),
    ("yolo12n", "yolo12n.yaml", {}),
    ("yolov5nu", "yolov5nu.yaml", {}),
    ("yolo11n-320", "yolo11n.yaml", {"imgsz": 320}),
    ("yolo11n-rect", "yolo11n.yaml", {"imgsz": (384, 640)}),
    ("yolov8n-p6", "yolov8n-p6.yaml", {}),
    ("yolo11n-dynamic", "yolo11n.yaml", {"dynamic": True}),
    ("yolo11n-nms", "yolo11n.yaml", {"nms": True}),
    ("yolov10n", "yolov10n.yaml", {}),
    ("yolo26n", "yolo26n.yaml", {}),
    ("yolo11n-seg", "yolo11n-seg.yaml", {}),
    ("yolo11n-pose", "yolo11n-pose.yaml", {}),
    ("yolo11n-obb", "yolo11n-obb.yaml", {}),
    ("yolo26n-seg", "yolo26n-seg.yaml", {}),
    ("yolo26n-pose", "yolo26n-pose.yaml", {}),
    ("yolo26n-obb", "yolo26n-obb.yaml", {}),
    ("yolo11n-seg-nms", "yolo11n-seg.yaml", {"nms": True}),
    ("yolo11n-pose-nms", "yolo11n-pose.yaml", {"nms": True}),
    ("yolo11n-obb-nms", "yolo11n-obb.yaml", {"nms": True}),
    ("rtdetr-l", "rtdetr-l.yaml", {}),
    ("yolo11n-cls", "yolo11n-cls.yaml", {}),          # must be refused as a classifier
]


def export(yaml_name: str, out_dir: Path, name: str, args: dict) -> Path:
    from ultralytics import RTDETR, YOLO
    target = out_dir / f"{name}.onnx"
    if target.exists():
        return target
    model = (RTDETR if yaml_name.startswith("rtdetr") else YOLO)(yaml_name)
    produced = Path(model.export(format="onnx", opset=17, simplify=False, verbose=False, **args))
    produced.rename(target)
    return target


def run(path: Path, frames: int) -> str:
    from trt_infer_ros.pipeline.detector import build_pipeline
    image = (np.random.default_rng(0).random((480, 640, 3)) * 255).astype(np.uint8)
    pipe = build_pipeline(str(path), backend="onnxruntime", input_size=None)
    pipe.settings.score_threshold = 0.0 if pipe.adapter.nms_inside else 0.01
    pipe(image, "bgr8")                                 # warm-up
    start = time.perf_counter()
    for _ in range(frames):
        dets = pipe(image, "bgr8")
    ms = (time.perf_counter() - start) * 1e3 / frames
    finite = bool(np.isfinite(dets.boxes).all())
    fields = [f for f in ("angles", "keypoints", "masks") if getattr(dets, f) is not None]
    return (f"{pipe.adapter.model_type:13s} {ms:7.1f} ms/frame  {len(dets):3d} dets  "
            f"finite={finite} {' '.join(fields)}  [{pipe.selection}]")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/ultralytics_exports")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    try:
        import ultralytics  # noqa: F401
    except ImportError:
        print("ultralytics is not installed: pip install ultralytics onnx")
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for name, yaml_name, export_args in EXPORTS:
        if args.only and args.only != name:
            continue
        try:
            path = export(yaml_name, out, name, export_args)
        except Exception as exc:
            print(f"{name:16s} export failed: {type(exc).__name__}: {exc}")
            continue
        try:
            print(f"{name:16s} {run(path, args.frames)}")
        except Exception as exc:
            refused = name.endswith("-cls") and "classifier" in str(exc)
            failures += not refused
            print(f"{name:16s} {'refused as expected' if refused else 'FAILED'}: {exc}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
