"""`trt_infer_ros_int8`: will INT8 break my detector, which layers are to blame, what to keep
in FP16.

    trt_infer_ros_int8 calibrate   MODEL.onnx --images DIR --cache calib.cache [--method entropy]
    trt_infer_ros_int8 sensitivity MODEL.onnx --images DIR [--validation-images DIR]
    trt_infer_ros_int8 search      MODEL.onnx --images DIR --target 0.9 --out DIR
    trt_infer_ros_int8 report      MODEL.onnx --images DIR --target 0.9 --out DIR

Images come from a directory or a rosbag (--bag, --topic) and go through the model adapter's
own preprocessing. Without a validation set, every n-th image (--holdout) is held out of
calibration and used to measure agreement with the FP32 model. Exit status: 0 done, 2 bad input
(images, bag, model, labels), 3 the accuracy target cannot be met.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Optional

import onnx

from trt_infer_ros.cli_arguments import number
from trt_infer_ros.file_io import same_file, write_atomic
from trt_infer_ros.optimize.agreement import AgreementError, load_labels
from trt_infer_ros.optimize.analysis import METRICS, Analysis
from trt_infer_ros.optimize.calibrate import METHODS, cache_meta, collect, write_cache
from trt_infer_ros.optimize.frames import ImageInputError, load_frames, optional_frames, split
from trt_infer_ros.optimize.layers import NoQuantizableLayers, require_layers
from trt_infer_ros.optimize.report import output_directory_problem
from trt_infer_ros.optimize.requirements import require
from trt_infer_ros.optimize.search import TargetUnreachable, qdq_model, search
from trt_infer_ros.optimize.sensitivity import measure_sensitivity, ranked

LOG = logging.getLogger("trt_infer_ros.optimize")
BAD_INPUT, UNREACHABLE = 2, 3


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("onnx", help="the FP32 ONNX detector")
    p.add_argument("--model-type", default="", help="adapter (default: detected from the ONNX)")
    p.add_argument("--images", default="", help="directory of calibration images")
    p.add_argument("--bag", default="", help="rosbag2 with calibration images")
    p.add_argument("--topic", default="", help="image topic in --bag (default: the only one)")
    p.add_argument("--validation-images", default="", help="held-out images (default: every "
                   "n-th calibration image, see --holdout)")
    p.add_argument("--validation-bag", default="")
    p.add_argument("--validation-topic", default="")
    p.add_argument("--labels", default="", help="COCO json or YOLO txt directory for the "
                   "validation images: adds true mAP")
    p.add_argument("--holdout", type=number(float, 0, 1, False, False), default=0.34,
                   help="fraction held out when there is no validation set")
    p.add_argument("--augment", type=number(int, 0, 1000), default=0, help="augmented copies per image "
                   "(flip, crop, colour jitter)")
    p.add_argument("--limit", type=number(int, 0), default=0, help="read at most this many images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", choices=METHODS, default="entropy")
    p.add_argument("--percentile", type=number(float, 50, 100), default=99.99,
                   help="percentile of |activation| for --method percentile (50..100)")
    p.add_argument("--reference-threshold", type=number(float, 0, 1, False), default=0.3,
                   help="FP32 detections at or above this score are the reference boxes")
    p.add_argument("--metric", choices=METRICS, default="map50_95")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="trt_infer_ros_int8", description=__doc__.split("\n")[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True)
    p = sub.add_parser("calibrate", help="activation ranges -> TensorRT calibration cache")
    add_common(p)
    p.add_argument("--cache", required=True, help="calibration cache to write")
    p.add_argument("--compare", action="store_true",
                   help="also measure full INT8 agreement for every method")
    p = sub.add_parser("sensitivity", help="per-layer SNR and agreement")
    add_common(p)
    p.add_argument("--out", default="", help="write sensitivity.json here")
    for name, what in (("search", "mixed-precision search"), ("report", "everything + plots")):
        p = sub.add_parser(name, help=what)
        add_common(p)
        p.add_argument("--target", type=number(float, 0, 1, False), required=True,
                       help="agreement with FP32 to reach (0..1], in --metric")
        p.add_argument("--mode", choices=("auto", "linear", "bisect"), default="auto")
        p.add_argument("--out", required=True, help="output directory")
    return top


def frames_for(args, adapter):
    calib = load_frames(adapter, args.images, args.bag, args.topic, args.limit, args.augment,
                        args.seed)
    copies = 0 if args.labels else args.augment
    held = optional_frames(adapter, args.validation_images, args.validation_bag,
                           args.validation_topic, args.limit, copies, args.seed + 1)
    if held is None:
        if args.labels:
            raise ImageInputError("--labels need --validation-images (the labelled images)")
        calib, held = split(calib, args.holdout)
    return calib, held


def make_adapter(args):
    from trt_infer_ros.models.model_file import check_model_file  # noqa: PLC0415
    from trt_infer_ros.models.registry import create_adapter  # noqa: PLC0415
    check_model_file(args.onnx)
    return create_adapter(args.model_type or "auto", args.onnx)


def cache_problem(cache: str, onnx_path: str) -> Optional[str]:
    if os.path.isdir(cache):
        return f"--cache {cache!r} is a directory; give the calibration cache's file path"
    if same_file(cache, onnx_path):
        return f"--cache {cache!r} is the model itself; give another file for the cache"
    return None


def output_problem(args) -> Optional[str]:
    """Why the output path cannot be written, found before any work."""
    if args.command == "calibrate":
        return cache_problem(args.cache, args.onnx)
    if args.command == "sensitivity":       # one file, sensitivity.json, into the directory
        if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
            return f"--out {args.out!r} is a file, not a directory"
        return None
    return output_directory_problem(args.out)


def make_analysis(args) -> Analysis:
    adapter = make_adapter(args)
    calib, held = frames_for(args, adapter)
    labels = load_labels(args.labels, [f.name for f in held], [f.size for f in held])
    LOG.info("%s (%s): %d calibration frames, %d held-out frames", args.onnx,
             adapter.model_type, len(calib), len(held))
    return Analysis(args.onnx, adapter, calib, held, args.method, args.percentile,
                    args.reference_threshold, labels, log=LOG.info)


def method_agreements(analysis: Analysis) -> dict:
    out = {}
    for method in METHODS:
        m = analysis.measure(analysis.all_int8(), method=method)
        out[method] = m.agreement.as_dict()
        if m.truth:
            out[method]["true_map50_95"] = m.truth.map50_95
        LOG.info("full INT8, %s calibration: %s", method, m.agreement)
    return out


def calibration_ranges(args):
    """(adapter, analysis or None, activation ranges). Only --compare measures agreement and
    needs held-out frames; otherwise every frame calibrates."""
    if args.compare:
        analysis = make_analysis(args)
        return analysis.adapter, analysis, analysis.amax(args.method)
    adapter = make_adapter(args)
    model = onnx.load(args.onnx)
    require_layers(model, args.onnx)
    frames = load_frames(adapter, args.images, args.bag, args.topic, args.limit, args.augment,
                         args.seed)
    LOG.info("%s (%s): calibrating on %d frames", args.onnx, adapter.model_type, len(frames))
    return adapter, None, collect(model, frames, log=LOG.info).ranges(args.method,
                                                                       args.percentile)


def run_calibrate(args) -> None:
    adapter, analysis, ranges = calibration_ranges(args)
    meta = cache_meta(args.onnx, args.method, args.model_type, adapter.input_spec,
                      args.percentile)
    cache = write_cache(args.cache, ranges, args.method, meta)
    LOG.info("wrote %s: %d tensors (%s), read back and checked", args.cache, len(cache.scales),
             cache.header)
    if analysis is not None:
        method_agreements(analysis)


def run_sensitivity(args) -> None:
    analysis = make_analysis(args)
    rows, full = measure_sensitivity(analysis, args.metric)
    print(f"{'layer':60s} {'op':8s} {'w SNR':>7s} {'a SNR':>7s} {'alone':>7s} {'kept':>7s}")
    for r in ranked(rows):
        print(f"{r.name[-60:]:60s} {r.op:8s} {r.weight_snr_db:7.1f} {r.activation_snr_db:7.1f} "
              f"{r.alone_int8:7.4f} {r.kept_fp16:7.4f}")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        write_atomic(os.path.join(args.out, "sensitivity.json"), json.dumps(
            {"full_int8": full, "metric": args.metric, "method": args.method,
             "layers": [r.as_dict() for r in ranked(rows)]}, indent=2).encode())


def write_search_outputs(directory: str, analysis: Analysis, result) -> None:
    stem = os.path.splitext(os.path.basename(analysis.onnx_path))[0]
    onnx.save(qdq_model(analysis, result), os.path.join(directory, f"{stem}.qdq.onnx"))
    with open(os.path.join(directory, "layer_precisions.yaml"), "w", encoding="utf-8") as f:
        f.write("# engine_builder_node parameter: keep these layers in FP16 in an INT8 build\n")
        f.write("layer_precisions:\n")
        f.writelines(f"  - {json.dumps(item)}\n" for item in result.layer_precisions())
        if not result.promoted:
            f.write("  []\n")


def run_search(args, with_report: bool) -> None:
    from trt_infer_ros.optimize import report  # noqa: PLC0415 - matplotlib only here
    from trt_infer_ros.optimize.bitwidth import weight_bit_sweep  # noqa: PLC0415
    start = time.monotonic()
    analysis = make_analysis(args)
    with report.staged_directory(args.out) as stage:
        methods = method_agreements(analysis) if with_report else {}
        rows, full = measure_sensitivity(analysis, args.metric)
        result = search(analysis, rows, args.target, args.metric, args.mode)
        write_search_outputs(stage, analysis, result)
        final = analysis.measure(result.plan)
        summary = {"onnx": analysis.onnx_path, "method": args.method, "metric": args.metric,
                   "target": args.target, "full_int8": full, "methods": methods,
                   "promoted": result.promoted, "final": final.agreement.as_dict(),
                   "layer_precisions": result.layer_precisions(), "history": result.history,
                   "search_mode": result.mode, "layers_total": len(analysis.layers),
                   "fp32_true_map": analysis.fp32_truth.as_dict() if analysis.fp32_truth else None,
                   "final_true_map": final.truth.as_dict() if final.truth else None}
        points = weight_bit_sweep(analysis, metric=args.metric) if with_report else []
        summary["bitwidth"] = [p.__dict__ for p in points]
        summary["seconds"] = round(time.monotonic() - start, 1)
        if with_report:
            report.write_report(stage, summary, rows, result, points, args.metric)
        else:
            with open(os.path.join(stage, "search.json"), "w", encoding="utf-8") as f:
                json.dump(summary, f, indent=2, default=float)
    LOG.info("full INT8 (%s): %s %.4f; FP16 layers: %d of %d (%s); final %s", args.method,
             args.metric, full, len(result.promoted), len(analysis.layers),
             ", ".join(result.promoted) or "none", final.agreement)
    LOG.info("wrote %s in %.0f s (%d model runs)", args.out, time.monotonic() - start,
             analysis.detector.runs)


def run_command(args) -> int:
    from trt_infer_ros.models.identify import ModelTypeError  # noqa: PLC0415
    problem = output_problem(args)
    if problem:
        LOG.error("error: %s", problem)
        return BAD_INPUT
    try:
        if args.command == "calibrate":
            run_calibrate(args)
        elif args.command == "sensitivity":
            run_sensitivity(args)
        else:
            run_search(args, with_report=args.command == "report")
    except TargetUnreachable as exc:
        LOG.error("error: %s", exc)
        return UNREACHABLE
    except (ImageInputError, NoQuantizableLayers, AgreementError, ModelTypeError, ValueError,
            OSError) as exc:
        LOG.error("error: %s", exc)
        return BAD_INPUT
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    from trt_infer_ros.engine.cli import run_interruptible  # noqa: PLC0415
    logging.basicConfig(level=logging.INFO, format="[int8] %(message)s", stream=sys.stderr)
    LOG.setLevel(logging.INFO)
    args = parser().parse_args(argv)
    require("trt_infer_ros_int8", "tinygrad", "pycocotools")
    return run_interruptible(lambda: run_command(args), program="trt_infer_ros_int8",
                             stopped="the analysis was stopped and nothing was written")


if __name__ == "__main__":
    sys.exit(main())
