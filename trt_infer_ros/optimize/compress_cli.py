"""`trt_infer_ros_compress`: make a detector smaller without labels.

    trt_infer_ros_compress prune    MODEL.onnx --ratio 0.3 --out small.onnx [--images DIR --epochs 3]
    trt_infer_ros_compress sparsify MODEL.onnx --pattern 2:4 --out sparse.onnx [--images DIR ...]
    trt_infer_ros_compress distill  MODEL.onnx --student small.onnx --out tuned.onnx --images DIR
    trt_infer_ros_compress qat      MODEL.onnx --out model.qdq.onnx --images DIR [--learn-scales]

The FP32 MODEL is the teacher; frames come from a directory or a rosbag (--bag, --topic), go
through the model adapter's own preprocessing, and every n-th one (--holdout) is held out to
measure detection agreement with the FP32 model. Each command prints parameters, MACs, file
size, onnxruntime CPU latency (and, on a CUDA GPU, the whole-frame time on each GPU runner) and
agreement before and after, and writes them next to the output
(`<out>.json`). The output is written only when the command succeeds; the input is never
overwritten. Exit status: 0 done, 2 bad input (model, frames, a graph that cannot be pruned or
trained), 3 the loss diverged (the last good weights are written, and the report says so),
130 interrupted (Ctrl-C during fine-tuning writes the best completed epoch; before or after
it, nothing is written).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import tempfile
from typing import Optional

import onnx

from trt_infer_ros.cli_arguments import number
from trt_infer_ros.file_io import same_file, write_atomic
from trt_infer_ros.optimize.frames import ImageInputError, load_frames, optional_frames, split
from trt_infer_ros.optimize.requirements import require

LOG = logging.getLogger("trt_infer_ros.optimize")
BAD_INPUT, DIVERGED, INTERRUPTED = 2, 3, 130


def _regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a regular expression ({exc})") from None
    return text


COUNT, POSITIVE = number(int, 0), number(int, 1)
RATE = number(float, 0, low_inclusive=False)
FRACTION = number(float, 0, 1, low_inclusive=False, high_inclusive=False)


def add_frames(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--images", default="", help="directory of unlabelled frames")
    p.add_argument("--bag", default="", help="rosbag2 with camera frames")
    p.add_argument("--topic", default="", help="image topic in --bag (default: the only one)")
    p.add_argument("--validation-images", default="", help="held-out frames (default: every "
                   "n-th frame, see --holdout)")
    p.add_argument("--holdout", type=FRACTION, default=0.25)
    p.add_argument("--augment", type=COUNT, default=4, help="augmented copies per frame "
                   "(flip, crop, colour jitter)")
    p.add_argument("--limit", type=COUNT, default=0, help="read at most this many frames")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=COUNT, default=3 if required else 0,
                   help="distillation epochs (0: no fine-tuning)")
    p.add_argument("--lr", type=RATE, default=1e-4)
    p.add_argument("--features", default="", help="comma-separated tensor names (same in "
                   "teacher and student) added to the head loss")
    p.add_argument("--reference-threshold", type=FRACTION, default=0.3,
                   help="FP32 detections at or above this score are the reference boxes")
    p.add_argument("--latency-runs", type=COUNT, default=50, help="timed CPU runs per model, "
                   "before and after alternating in rounds (0: skip)")
    p.add_argument("--model-type", default="", help="adapter (default: detected from the ONNX)")
    p.add_argument("--no-gpu-latency", dest="gpu_latency", action="store_false",
                   help="skip timing whole frames on each GPU runner installed (done by "
                        "default where there is a CUDA GPU)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="trt_infer_ros_compress",
                                  description=__doc__.split("\n")[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prune", help="remove the weakest conv channels (structured)")
    p.add_argument("onnx")
    p.add_argument("--out", required=True)
    p.add_argument("--ratio", type=FRACTION, required=True, help="fraction of channels to remove")
    p.add_argument("--scope", type=_regex, default="", help="regex: prune only groups whose producing convs "
                   "match it (node or output name), e.g. MobilenetV3 for the backbone")
    p.add_argument("--global", dest="global_ranking", action="store_true",
                   help="rank channels across layers instead of per layer")
    p.add_argument("--round-to", type=POSITIVE, default=8, help="keep channel counts multiples of "
                   "this (default 8: it suits tensor cores and onnxruntime's blocked CPU "
                   "kernels; odd counts can run slower than the unpruned model; 1: exact ratio)")
    p.add_argument("--ranking", choices=("auto", "l1", "activation"), default="auto",
                   help="activation: rank by what the consumers lose on the frames and predict "
                   "removed channels from the kept ones; l1: filter norms only, no frames "
                   "needed (auto: activation when frames are given)")
    add_frames(p, False)
    p = sub.add_parser("sparsify", help="zero weights by magnitude or in the 2:4 pattern")
    p.add_argument("onnx")
    p.add_argument("--out", required=True)
    p.add_argument("--pattern", choices=("unstructured", "2:4"), default="2:4")
    p.add_argument("--ratio", type=FRACTION, default=0.5, help="unstructured: fraction zeroed")
    p.add_argument("--global", dest="global_ranking", action="store_true")
    add_frames(p, False)
    p = sub.add_parser("distill", help="fine-tune a smaller student on the FP32 model's outputs")
    p.add_argument("onnx", help="the FP32 teacher")
    p.add_argument("--student", required=True)
    p.add_argument("--out", required=True)
    add_frames(p, True)
    p = sub.add_parser("qat", help="quantization-aware training -> Q/DQ ONNX")
    p.add_argument("onnx")
    p.add_argument("--out", required=True)
    p.add_argument("--method", choices=("minmax", "percentile", "entropy"), default="entropy",
                   help="activation calibration (the INT8 tools' methods)")
    p.add_argument("--percentile", type=float, default=99.99)
    p.add_argument("--learn-scales", action="store_true", help="train the activation scales")
    add_frames(p, True)
    return top


def load_onnx(path: str) -> onnx.ModelProto:
    """The ONNX model at `path`, or one sentence on why it cannot be read."""
    from trt_infer_ros.models.model_file import check_model_file, unreadable_onnx  # noqa
    check_model_file(path)
    try:
        return onnx.load(path)
    except Exception as exc:  # noqa: BLE001 - protobuf and onnx raise many kinds
        raise unreadable_onnx(path, exc) from exc


def check_output(out: str, inputs: list[str]) -> None:
    """Refuse, before any work, an output that is an input or cannot be written."""
    for path in inputs:
        if same_file(out, path):
            raise ValueError(f"--out {out} is the input model {path}; choose another file")
    if os.path.isdir(out):
        raise ValueError(f"--out {out} is a directory; give a file name such as "
                         f"{os.path.join(out, 'model.onnx')}")
    folder = os.path.dirname(os.path.abspath(out))
    while not os.path.exists(folder):           # the folders _write will create
        folder = os.path.dirname(folder)
    try:                                        # a real file: permission bits do not bind root
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ValueError(f"--out {out} cannot be written: {folder} is not a writable folder "
                         f"({exc.strerror})") from None


class Session:
    """Teacher, adapter and frames shared by the commands."""

    def __init__(self, args, need_frames: bool):
        from trt_infer_ros.models.registry import create_adapter  # noqa: PLC0415
        check_output(args.out, [args.onnx] + ([args.student] if "student" in args else []))
        self.args = args
        self.teacher = load_onnx(args.onnx)
        self.adapter = create_adapter(args.model_type or "auto", args.onnx)
        self.train, self.held, self.judge = [], [], None
        if args.epochs > 0:                     # refused before frames are read and measured
            from trt_infer_ros.optimize.trainable import trainable_nodes  # noqa: PLC0415
            trainable_nodes(self.teacher)
        has_frames = bool(args.images or args.bag)
        if need_frames and not has_frames:
            raise ImageInputError(f"{args.command} needs frames: give --images DIR or --bag")
        if has_frames:
            frames = load_frames(self.adapter, args.images, args.bag, args.topic, args.limit,
                                 args.augment, args.seed)
            held = optional_frames(self.adapter, args.validation_images, "", "", args.limit,
                                   args.augment, args.seed + 1)
            self.train, self.held = (frames, held) if held else split(frames, args.holdout)
            from trt_infer_ros.optimize.distill import Judge  # noqa: PLC0415
            self.judge = Judge(self.adapter, self.teacher, self.held, args.reference_threshold)
            LOG.info("%d training frames, %d held-out frames", len(self.train), len(self.held))
            from trt_infer_ros.optimize.distill import MIN_TRAIN_FRAMES  # noqa: PLC0415
            if args.epochs > 0 and len(self.train) < MIN_TRAIN_FRAMES:   # refused before work
                raise ImageInputError(f"{len(self.train)} training frame(s) are too few to "
                                      f"fine-tune on (at least {MIN_TRAIN_FRAMES}; add images "
                                      "or --augment copies)")
        self.sample = self.train[0].tensor if self.train else self._zeros()

    def _zeros(self):
        import numpy as np  # noqa: PLC0415
        return np.zeros(self.adapter.input_spec.tensor_shape()
                        if hasattr(self.adapter.input_spec, "tensor_shape") else
                        [d.dim_value for d in self.teacher.graph.input[0].type.tensor_type
                         .shape.dim], np.float32)

    def facts(self, model: onnx.ModelProto, label: str):
        """Everything but the latency, which _finish times for before and after together."""
        from trt_infer_ros.optimize.model_facts import measure  # noqa: PLC0415
        agreement = self.judge.agreement(model) if self.judge else None
        facts = measure(model, None, 0, agreement)
        LOG.info("%s: agreement %s", label, agreement if agreement else "not measured (no frames)")
        return facts

    def fine_tune(self, student, export=None):
        from trt_infer_ros.optimize.distill import DistillConfig, distill  # noqa: PLC0415
        if self.args.epochs <= 0 or self.judge is None:
            return None
        config = DistillConfig(epochs=self.args.epochs, lr=self.args.lr, seed=self.args.seed,
                               features=[f for f in self.args.features.split(",") if f])
        return distill(self.teacher, student, self.train, self.judge, config, LOG.info,
                       export=export)


def _write(path: str, model: onnx.ModelProto, report: dict) -> None:
    write_atomic(path, model.SerializeToString())
    _write_report(path, report)


def _write_report(path: str, report: dict) -> None:
    with open(path + ".json", "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, default=float)


def _finish(session: Session, before, before_model: onnx.ModelProto, model: onnx.ModelProto,
            extra: dict, tuned) -> int:
    from trt_infer_ros.optimize.model_facts import change, paired_latency_ms  # noqa: PLC0415
    after = session.facts(model, "after")
    if session.args.latency_runs > 0:
        before.latency_ms, after.latency_ms = paired_latency_ms(
            [before_model, model], session.sample, session.args.latency_runs)
    report = {"command": session.args.command, "input": session.args.onnx,
              "output": session.args.out, "before": before.as_dict(), "after": after.as_dict(),
              **extra}
    if tuned is not None:
        report["distillation"] = tuned.as_dict()
    _write(session.args.out, model, report)
    print(change(before, after))
    if session.args.gpu_latency:
        from trt_infer_ros.optimize.gpu_latency import describe, gpu_frame_latency_ms  # noqa
        report["gpu_frame_latency_ms"] = gpu_frame_latency_ms([session.args.onnx,
                                                               session.args.out])
        if report["gpu_frame_latency_ms"]:
            _write_report(session.args.out, report)
        for line in describe(report["gpu_frame_latency_ms"]):
            print(line)
    for label, facts in (("before", before), ("after", after)):
        if facts.agreement:
            print(f"agreement with FP32 {label}: mAP@0.5 {facts.agreement['map50']:.4f}, "
                  f"mAP@0.5:0.95 {facts.agreement['map50_95']:.4f}")
    for key, value in extra.items():
        if key.endswith("agreement") and isinstance(value, dict):
            print(f"{key.replace('_', ' ')}: mAP@0.5 {value['map50']:.4f}, "
                  f"mAP@0.5:0.95 {value['map50_95']:.4f}")
    print(f"wrote {session.args.out} and {session.args.out}.json")
    if tuned is not None and tuned.stopped:
        LOG.warning("%s", tuned.stopped)
        return INTERRUPTED if tuned.interrupted else DIVERGED
    return 0


def run_prune(args) -> int:
    from trt_infer_ros.optimize.prune_structured import locked_reasons, prune_channels  # noqa
    from trt_infer_ros.optimize.trainable import TrainableModel  # noqa: PLC0415
    session = Session(args, need_frames=args.ranking == "activation")
    before = session.facts(session.teacher, "FP32 model")
    stats = None
    if args.ranking != "l1" and session.train:
        from trt_infer_ros.optimize.channel_stats import measure_channels  # noqa: PLC0415
        stats = measure_channels(session.teacher, [f.tensor for f in session.train],
                                 covariance=True)
        LOG.info("channel statistics from %d frames: ranking by activation, removed channels "
                 "predicted from the kept ones", stats.frames)
    result = prune_channels(session.teacher, args.ratio, args.scope, args.global_ranking,
                            args.round_to, stats)
    LOG.info("%s", result.summary())
    for line in locked_reasons(result.plan):
        LOG.info("kept whole: %s", line)
    extra = {"ranking": "activation" if stats else "l1",
             "pruned_groups": len(result.plan.removed),
             "channels_removed": result.plan.channels_removed(),
             "locked": locked_reasons(result.plan, 100)}
    model, tuned = result.model, None
    if args.epochs > 0 and session.judge:
        extra["pruned_agreement"] = session.judge.agreement(model).as_dict()
        student = TrainableModel(model)
        tuned = session.fine_tune(student)
        model = student.to_onnx()
    return _finish(session, before, session.teacher, model, extra, tuned)


def run_sparsify(args) -> int:
    from trt_infer_ros.optimize.prune_magnitude import apply_masks, install, make_masks  # noqa
    from trt_infer_ros.optimize.trainable import TrainableModel  # noqa: PLC0415
    session = Session(args, need_frames=False)
    before = session.facts(session.teacher, "FP32 model")
    masks = make_masks(session.teacher, args.pattern, args.ratio, args.global_ranking)
    LOG.info("%s: %d layers masked, %.1f %% of their weights zero; dense: %s", args.pattern,
             len(masks.masks), 100 * masks.sparsity(),
             "; ".join(f"{k} ({v})" for k, v in masks.skipped.items()) or "none")
    model, tuned = apply_masks(session.teacher, masks), None
    extra = {"pattern": args.pattern, "sparsity": masks.sparsity(), "dense": masks.skipped,
             "engine_builder": {"sparse_weights": args.pattern == "2:4"}}
    if args.epochs > 0 and session.judge:
        extra["masked_agreement"] = session.judge.agreement(model).as_dict()
        student = TrainableModel(session.teacher)
        install(student, masks)
        tuned = session.fine_tune(student)
        model = student.to_onnx()
    return _finish(session, before, session.teacher, model, extra, tuned)


def run_distill(args) -> int:
    from trt_infer_ros.optimize.distill import check_student_io  # noqa: PLC0415
    from trt_infer_ros.optimize.trainable import TrainableModel  # noqa: PLC0415
    original = load_onnx(args.student)
    session = Session(args, need_frames=True)
    check_student_io(session.teacher, original)
    before = session.facts(original, "student")
    student = TrainableModel(original)
    tuned = session.fine_tune(student)
    return _finish(session, before, original, student.to_onnx(), {"teacher": args.onnx}, tuned)


def run_qat(args) -> int:
    from trt_infer_ros.optimize.calibrate import collect  # noqa: PLC0415
    from trt_infer_ros.optimize.layers import require_layers  # noqa: PLC0415
    from trt_infer_ros.optimize.qat import QatModel, ptq_model, require_float32  # noqa: PLC0415
    session = Session(args, need_frames=True)
    require_float32(session.teacher, args.onnx)
    layers = require_layers(session.teacher, args.onnx)
    before = session.facts(session.teacher, "FP32 model")
    stats = collect(session.teacher, session.train, [l.activation for l in layers], LOG.info)
    amax = stats.ranges(args.method, args.percentile)
    ptq = ptq_model(session.teacher, amax, layers)
    ptq_agreement = session.judge.agreement(ptq)
    LOG.info("simulated PTQ (%s calibration): %s", args.method, ptq_agreement)
    qat = QatModel(session.teacher, amax, args.learn_scales)
    tuned = session.fine_tune(qat.trainable, export=qat.export)
    extra = {"method": args.method, "learn_scales": args.learn_scales,
             "ptq_agreement": ptq_agreement.as_dict(),
             "qat_agreement": tuned.after.as_dict() if tuned else None}
    return _finish(session, before, session.teacher, qat.export(), extra, tuned)


COMMANDS = {"prune": run_prune, "sparsify": run_sparsify, "distill": run_distill,
            "qat": run_qat}


def main(argv: Optional[list[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[compress] %(message)s", stream=sys.stderr)
    LOG.setLevel(logging.INFO)
    args = parser().parse_args(argv)
    require("trt_infer_ros_compress", "tinygrad", "pycocotools")
    from trt_infer_ros.models.identify import ModelTypeError  # noqa: PLC0415
    from trt_infer_ros.optimize.distill import DistillError  # noqa: PLC0415
    from trt_infer_ros.optimize.layers import NoQuantizableLayers  # noqa: PLC0415
    from trt_infer_ros.optimize.prune_magnitude import SparsityError  # noqa: PLC0415
    from trt_infer_ros.optimize.prune_structured import PruneError  # noqa: PLC0415
    from trt_infer_ros.optimize.trainable import UnsupportedGraph  # noqa: PLC0415
    try:
        return COMMANDS[args.command](args)
    except (ImageInputError, PruneError, SparsityError, UnsupportedGraph, DistillError,
            NoQuantizableLayers, ModelTypeError, ValueError, KeyError, OSError) as exc:
        LOG.error("error: %s", exc)
        return BAD_INPUT
    except KeyboardInterrupt:
        LOG.error("interrupted: nothing was written")
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
