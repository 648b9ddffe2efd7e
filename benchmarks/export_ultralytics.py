"""Build Ultralytics detection models from their YAML definitions (random weights, nothing
downloaded) and export them to ONNX, for the GPU runner benchmark.

  python benchmarks/export_ultralytics.py [--out DIR] [--imgsz 640] yolov8n yolo11n yolov10n

Needs `pip install ultralytics onnx onnxslim` (and torch). Writes DIR/<name>_random.onnx with
the I/O contract and metadata of a real export ([1,3,640,640] in, [1,84,8400] out).
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="+", help="model YAML names, e.g. yolov8n yolo11n yolov10n")
    ap.add_argument("--out", default="bench_models")
    ap.add_argument("--imgsz", type=int, default=640)
    args = ap.parse_args()
    from ultralytics import YOLO

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.names:
        exported = YOLO(f"{name}.yaml").export(format="onnx", imgsz=args.imgsz, opset=17,
                                                simplify=True, dynamic=False)
        target = out / f"{name}_random.onnx"
        shutil.move(exported, target)
        print(f"{name}: {target}")


if __name__ == "__main__":
    main()
