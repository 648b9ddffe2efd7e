"""Label-free distillation: a pruned, sparse or fake-quantized student learns to say what the FP32
teacher says on the user's unlabelled frames.

The loss compares the raw head outputs (the last weighted layers, before sigmoid and decode) and,
optionally, intermediate feature maps both models share by name and shape; each term is a mean
squared error divided by the teacher tensor's variance, so heads of different scale weigh alike.
The teacher runs in onnxruntime, the student in tinygrad (CUDA where tinygrad finds a GPU, else
the CPU). After every epoch the student is written to ONNX and its detection agreement with the
FP32 model is measured on held-out frames; the best epoch's weights are kept. A loss that turns
non-finite or an epoch whose mean loss grows far past the untrained student's stops training at the last good weights.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import onnx

from trt_infer_ros.optimize.agreement import Agreement, detection_agreement
from trt_infer_ros.optimize.calibrate import observing
from trt_infer_ros.optimize.simulate import Detector, candidate_settings, input_feed, session_for
from trt_infer_ros.optimize.trainable import TrainableModel

LOG = logging.getLogger("trt_infer_ros.optimize")
MIN_TRAIN_FRAMES = 4


class DistillError(ValueError):
    """Too few frames, or heads the teacher and the student do not share."""


@dataclass
class DistillConfig:
    epochs: int = 3
    lr: float = 1e-4
    features: Sequence[str] = ()          # extra tensors (same name and shape in both models)
    feature_weight: float = 0.5
    diverge_factor: float = 5.0           # stop when an epoch's mean loss exceeds this x the start
    seed: int = 0
    jit: bool = True                      # compile the whole training step once (tinygrad JIT)


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    agreement: Optional[dict]
    seconds: float


@dataclass
class DistillResult:
    before: Agreement
    after: Agreement
    best_epoch: int
    history: list = field(default_factory=list)
    stopped: str = ""                     # why training stopped early ("" when it ran through)
    interrupted: bool = False             # stopped by Ctrl-C (the best completed epoch is kept)

    def as_dict(self) -> dict:
        return {"before": self.before.as_dict(), "after": self.after.as_dict(),
                "best_epoch": self.best_epoch, "stopped": self.stopped,
                "interrupted": self.interrupted,
                "history": [r.__dict__ for r in self.history]}


def _io_shapes(values) -> list[tuple]:
    return [(v.name, v.type.tensor_type.elem_type,
             [d.dim_value if d.HasField("dim_value") else d.dim_param
              for d in v.type.tensor_type.shape.dim]) for v in values]


def check_student_io(teacher: onnx.ModelProto, student: onnx.ModelProto) -> None:
    """The student must be a drop-in replacement: the same inputs and outputs (names, types,
    shapes), so the teacher's adapter decodes it and the detector node takes it unchanged."""
    for what, mine, theirs in (("inputs", teacher.graph.input, student.graph.input),
                               ("outputs", teacher.graph.output, student.graph.output)):
        inits = {i.name for i in teacher.graph.initializer} | \
            {i.name for i in student.graph.initializer}
        ours, its = ([v for v in _io_shapes(values) if v[0] not in inits]
                     for values in (mine, theirs))
        if ours != its:
            raise DistillError(f"the student's {what} {its} are not the teacher's {ours}; a "
                               "student must take and give the same tensors")


class Judge:
    """Agreement of any variant of the model with the FP32 detections on held-out frames."""

    def __init__(self, adapter, teacher: onnx.ModelProto, frames: Sequence,
                 reference_threshold: float = 0.3):
        self.detector = Detector(adapter, frames, candidate_settings(reference_threshold))
        self.reference_threshold = reference_threshold
        self.reference = self.detector.detect(teacher)

    def agreement(self, model: onnx.ModelProto) -> Agreement:
        return detection_agreement(self.reference, self.detector.detect(model),
                                   self.reference_threshold)


class Teacher:
    """The FP32 model's target tensors for a frame, from onnxruntime."""

    def __init__(self, model: onnx.ModelProto, targets: Sequence[str]):
        self.targets = list(targets)
        self.session = session_for(observing(model, self.targets), ["CPUExecutionProvider"])

    def __call__(self, tensor: np.ndarray) -> list[np.ndarray]:
        """float32 whatever the model's precision: the student trains in float32."""
        return [np.asarray(t, np.float32)
                for t in self.session.run(self.targets, input_feed(self.session, tensor))]


def _loss_terms(student_out: dict, teacher_out: list, names: Sequence[str], weights: dict,
                variances: dict):
    from tinygrad import Tensor  # noqa: PLC0415
    total = None
    for name, target in zip(names, teacher_out):
        diff = student_out[name] - (target if isinstance(target, Tensor) else Tensor(np.array(target)))
        term = (diff * diff).mean() * (weights[name] / variances[name])
        total = term if total is None else total + term
    return total


def _train_epoch(step, source: Teacher, train_frames: Sequence, rng, epoch: int,
                 config: DistillConfig, progress: bool) -> tuple[float, list[float]]:
    """One pass over the frames in random order: (mean loss, each step's loss)."""
    from tinygrad import Tensor  # noqa: PLC0415
    from tinygrad.helpers import Context, tqdm  # noqa: PLC0415
    order = rng.permutation(len(train_frames))
    losses = []
    bar = tqdm(order, desc=f"epoch {epoch}/{config.epochs}", disable=not progress)
    with Context(TRAINING=1):
        for i in bar:
            frame = train_frames[int(i)]
            targets = [Tensor(np.array(t)).realize() for t in source(frame.tensor)]
            loss = float(step(Tensor(np.array(frame.tensor)).realize(), *targets).item())
            losses.append(loss)
            bar.set_description(f"epoch {epoch}/{config.epochs} loss {np.mean(losses):.4f}")
            if not math.isfinite(loss):
                break
    return float(np.mean(losses)), losses


def distill(teacher: onnx.ModelProto, student: TrainableModel, train_frames: Sequence,
            judge: Judge, config: DistillConfig = DistillConfig(),
            log: Callable[[str], None] = LOG.info, progress: bool = True,
            export: Optional[Callable[[], onnx.ModelProto]] = None) -> DistillResult:
    """Fine-tune `student` (in place) towards `teacher` on `train_frames`; measure with `judge`
    the model `export` writes (default: the student's weights in its ONNX)."""
    export = export or student.to_onnx
    from tinygrad import TinyJit  # noqa: PLC0415
    from tinygrad.nn.optim import Adam  # noqa: PLC0415

    if len(train_frames) < MIN_TRAIN_FRAMES:
        raise DistillError(f"{len(train_frames)} training frame(s) are too few to distill on "
                           f"(at least {MIN_TRAIN_FRAMES}; add images or --augment copies)")
    names = list(student.targets) + [f for f in config.features if f not in student.targets]
    teacher_names = {o for n in teacher.graph.node for o in n.output}
    missing = [n for n in names if n not in teacher_names]
    if missing:
        raise DistillError(f"the teacher has no tensor {missing[0]!r}; the student must keep the "
                           "teacher's head (and feature) tensor names")
    student.targets = names
    weights = {n: (1.0 if n not in config.features else config.feature_weight) for n in names}
    source = Teacher(teacher, names)
    sample = [source(f.tensor) for f in train_frames[:min(8, len(train_frames))]]
    variances = {n: max(float(np.mean([s[i].var() for s in sample])), 1e-8)
                 for i, n in enumerate(names)}
    for name, shape in ((n, s.shape) for n, s in zip(names, sample[0])):
        got = tuple(student(train_frames[0].tensor, [name])[name].shape)
        if got != shape:
            raise DistillError(f"{name}: the student gives {got}, the teacher {shape}; feature "
                               "tensors must keep their shape (pick ones pruning did not touch)")

    params = student.parameters()
    optimizer = Adam(params, lr=config.lr)

    def train_step(x, *targets):
        out = student(x, names)
        loss = _loss_terms(out, targets, names, weights, variances)
        grads = loss.gradient(*params)
        for p, g in zip(params, grads):
            p.grad = g
        return loss.realize(*optimizer.schedule_step())

    step = TinyJit(train_step) if config.jit else train_step
    before = judge.agreement(export())
    log(f"before fine-tuning: {before}")
    best_state, best_value, best_epoch = student.raw_state(), before.map50_95, 0
    good_state = best_state
    result = DistillResult(before, before, 0)
    first_loss: Optional[float] = None
    rng = np.random.default_rng(config.seed)
    try:
        for epoch in range(1, config.epochs + 1):
            start = time.monotonic()
            mean, losses = _train_epoch(step, source, train_frames, rng, epoch, config, progress)
            # the first step's loss is measured before any update: the untrained student's loss
            first_loss = first_loss if first_loss is not None else losses[0]
            if not math.isfinite(mean) or mean > config.diverge_factor * max(first_loss, 1e-12):
                result.stopped = (f"the loss diverged in epoch {epoch} ({mean:.4g} after "
                                  f"{first_loss:.4g}): stopped, the last good weights are kept; "
                                  "lower --lr")
                log(result.stopped)
                student.load_state(good_state)
                break
            agreement = judge.agreement(export())
            seconds = time.monotonic() - start
            result.history.append(EpochRecord(epoch, mean, agreement.as_dict(),
                                              round(seconds, 1)))
            log(f"epoch {epoch}: loss {mean:.5f}, held-out agreement {agreement} "
                f"({seconds:.0f} s)")
            good_state = student.raw_state()
            if agreement.map50_95 > best_value:
                best_state, best_value, best_epoch = good_state, agreement.map50_95, epoch
    except KeyboardInterrupt:
        # Ctrl-C ends training, not the command: the best completed epoch is still worth keeping
        done = len(result.history)
        result.interrupted = True
        result.stopped = f"interrupted after {done} completed epoch(s): " + (
            "the best of them is kept" if done else "the weights before fine-tuning are kept")
        log(result.stopped)
    student.load_state(best_state)
    result.best_epoch = best_epoch
    result.after = judge.agreement(export()) if best_epoch else before
    return result
