"""Structured (channel) pruning of an ONNX CNN: a physically smaller graph with the same outputs.

Channels are tracked as *channel spaces*: a space is born at a convolution's output and every
tensor whose channel axis indexes the same channels shares it. Element-wise operators,
BatchNormalization, pooling, Resize and depthwise convolutions pass a space through; Concat lays
spaces side by side; an Add or Mul of two activations (a residual, a squeeze-excite gate) joins
their spaces into one, so they keep equal channels. A space is ranked by the L1 norm of its
producers' filters and loses its weakest channels; every producer, pass-through and consumer
(the input columns of the next convolution) is sliced to match.

A space that reaches anything that reads channels by position (Reshape to another shape,
Flatten, Transpose, Slice, Split, Softmax, Gemm, a grouped convolution, a graph output, the
decode after the heads) is locked: pruning it would change what the model outputs mean. The
plan says which spaces were locked and why; asking for more than the free spaces can give is
refused with those reasons.

With channel statistics measured on frames (channel_stats.py), channels are ranked by what their
consumers lose (the L1 norm of the consumer's input column times the channel's spread over the
frames), and each removed channel's mean is folded into its consumers' biases: a convolution
reading a channel that stays near its mean computes nearly the same without it, so downstream
activations do not shift by the dropped constant.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

PASS_THROUGH = {"Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
                "Softplus", "Mish", "Elu", "Selu", "Neg", "Abs", "Exp", "Sqrt", "Erf",
                "Identity", "Dropout", "MaxPool", "AveragePool", "GlobalAveragePool",
                "GlobalMaxPool", "Resize", "Upsample", "BatchNormalization", "Cast"}
BINARY = {"Add", "Sub", "Mul", "Div", "Max", "Min", "PRelu", "Pow"}
MIN_KEEP = 1


class PruneError(ValueError):
    """The graph cannot be pruned as asked (the reason says which pattern stops it)."""


@dataclass
class Space:
    size: int
    producers: list = field(default_factory=list)      # (node index, weight name, axis)
    locked: Optional[str] = None                       # why it must keep every channel
    keep: Optional[np.ndarray] = None                  # sorted kept indices once planned


@dataclass
class PrunePlan:
    spaces: dict[int, Space]
    layout: dict[str, list]                            # tensor -> [(space id, size), ...]
    removed: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def locked(self) -> dict[int, str]:
        return {k: s.locked for k, s in self.spaces.items() if s.locked}

    def prunable(self, scope: str = "", names: Optional[dict] = None) -> list[int]:
        out = []
        for sid, space in self.spaces.items():
            if space.locked or space.size <= MIN_KEEP:
                continue
            if scope and not all(re.search(scope, (names or {}).get(p[0], ""))
                                 for p in space.producers):
                continue
            out.append(sid)
        return out

    def channels_removed(self) -> int:
        return int(sum(len(v) for v in self.removed.values()))


def _ints(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _node_label(node: onnx.NodeProto) -> str:
    return f"{node.op_type} {node.name or node.output[0]}"


def _shapes(model: onnx.ModelProto) -> dict[str, list]:
    try:
        inferred = shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - without shapes, identity reshapes are locked
        inferred = model
    out = {}
    for v in list(inferred.graph.value_info) + list(inferred.graph.input) + \
            list(inferred.graph.output):
        dims = v.type.tensor_type.shape.dim
        out[v.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return out


class _Analyzer:
    """Walks the graph once, building spaces and locking those that cannot be pruned."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.inits = _ints(model)
        self.shapes = _shapes(model)
        self.spaces: dict[int, Space] = {}
        self.parent: dict[int, int] = {}
        self.layout: dict[str, list] = {}

    def new_space(self, size: int) -> int:
        sid = len(self.parent)
        self.parent[sid] = sid
        self.spaces[sid] = Space(size)
        return sid

    def find(self, sid: int) -> int:
        while self.parent[sid] != sid:
            self.parent[sid] = self.parent[self.parent[sid]]
            sid = self.parent[sid]
        return sid

    def union(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[b] = a
            sa, sb = self.spaces[a], self.spaces[b]
            sa.producers += sb.producers
            sa.locked = sa.locked or sb.locked

    def lock(self, tensor: str, why: str) -> None:
        for sid, _ in self.layout.get(tensor, []):
            space = self.spaces[self.find(sid)]
            space.locked = space.locked or why

    def per_channel_const(self, name: str, channels: int, rank: int) -> Optional[bool]:
        """True: a constant indexed by channel; False: broadcast over channels; None: neither."""
        value = self.inits[name]
        if value.size == 1:
            return False
        shape = (1,) * (rank - value.ndim) + value.shape
        if len(shape) == rank and rank >= 2 and shape[1] == channels and \
                all(d == 1 for i, d in enumerate(shape) if i != 1):
            return True
        return None

    def run(self) -> None:
        for index, node in enumerate(self.model.graph.node):
            self.visit(index, node)
        for out in self.model.graph.output:
            self.lock(out.name, f"it reaches the graph output {out.name}")

    def visit(self, index: int, node: onnx.NodeProto) -> None:
        op = node.op_type
        label = _node_label(node)
        acts = [i for i in node.input if i and i not in self.inits]
        laid = [i for i in acts if i in self.layout]
        if op in ("Conv", "ConvTranspose"):
            self.visit_conv(index, node, label)
        elif op in PASS_THROUGH:
            if op == "Resize" and len(node.input) > 3 and node.input[3]:
                if node.input[3] not in self.inits:
                    self.lock(node.input[0], f"{label} resizes to computed sizes")
                    return
            if laid:
                self.layout[node.output[0]] = list(self.layout[node.input[0]])
        elif op in BINARY:
            self.visit_binary(node, label, acts, laid)
        elif op == "Concat" and laid:
            rank = len(self.shapes.get(node.output[0], [])) or 4
            axis = _attr(node, "axis", 1)
            if axis % rank != 1 or len(laid) != len(acts):
                for t in laid:
                    self.lock(t, f"{label} concatenates along axis {axis}, not channels")
                return
            self.layout[node.output[0]] = [seg for t in node.input for seg in self.layout[t]]
        elif op == "Reshape" and laid:
            before, after = self.shapes.get(node.input[0]), self.shapes.get(node.output[0])
            if before and after and before == after and node.input[1] in self.inits and \
                    None not in before:
                self.layout[node.output[0]] = list(self.layout[node.input[0]])
            else:
                self.lock(node.input[0], f"{label} reshapes the channels")
        elif laid:
            for t in laid:
                self.lock(t, f"{label} reads channels by position")

    def visit_conv(self, index, node, label) -> None:
        x, w = node.input[0], node.input[1]
        if w not in self.inits:
            self.lock(x, f"{label} has a computed weight")
            return
        weight = self.inits[w]
        group = _attr(node, "group", 1)
        out_axis = 0 if node.op_type == "Conv" else 1
        channels_out = weight.shape[out_axis] * (group if node.op_type == "ConvTranspose" else 1)
        channels_in = weight.shape[1] * group if node.op_type == "Conv" else weight.shape[0]
        depthwise = node.op_type == "Conv" and group > 1 and group == channels_in == \
            channels_out and weight.shape[1] == 1
        if depthwise and x in self.layout:
            self.layout[node.output[0]] = list(self.layout[x])
            return
        if depthwise:
            sid = self.new_space(channels_out)
            self.spaces[sid].locked = f"{label} is depthwise over channels that are locked"
            self.layout[node.output[0]] = [(sid, channels_out)]
            return
        if group != 1:
            self.lock(x, f"{label} is a grouped convolution ({group} groups)")
            sid = self.new_space(channels_out)
            self.spaces[sid].locked = f"{label} is a grouped convolution ({group} groups)"
            self.layout[node.output[0]] = [(sid, channels_out)]
            return
        sid = self.new_space(channels_out)
        self.spaces[sid].producers.append((index, w, out_axis))
        self.layout[node.output[0]] = [(sid, channels_out)]

    def visit_binary(self, node, label, acts, laid) -> None:
        if not laid:
            return
        out = node.output[0]
        if len(acts) == 1:
            const = next(i for i in node.input if i in self.inits)
            channels = sum(n for _, n in self.layout[acts[0]])
            rank = len(self.shapes.get(out, [])) or 4
            if self.per_channel_const(const, channels, rank) is None:
                self.lock(acts[0], f"{label} combines the channels with a constant of shape "
                          f"{list(self.inits[const].shape)}")
                return
            self.layout[out] = list(self.layout[acts[0]])
            return
        if len(laid) != len(acts):
            for t in laid:
                self.lock(t, f"{label} combines them with a tensor of unknown channels")
            return
        first = self.layout[acts[0]]
        for other in acts[1:]:
            segs = self.layout[other]
            if [n for _, n in segs] != [n for _, n in first]:
                # a broadcast gate ([1,C,1,1] times [1,C,H,W]) has equal layouts; anything else
                # mixes channels in ways a slice cannot follow
                for t in laid:
                    self.lock(t, f"{label} combines tensors laid out differently")
                return
            for (a, _), (b, _) in zip(first, segs):
                self.union(a, b)
        self.layout[out] = list(first)

    def plan(self) -> PrunePlan:
        roots = {}
        for sid in self.spaces:
            root = self.find(sid)
            roots.setdefault(root, self.spaces[root])
        layout = {t: [(self.find(s), n) for s, n in segs] for t, segs in self.layout.items()}
        return PrunePlan(roots, layout)


def analyze(model: onnx.ModelProto) -> PrunePlan:
    """Channel spaces of `model`, each locked (with the reason) or prunable."""
    analyzer = _Analyzer(model)
    analyzer.run()
    return analyzer.plan()


def channel_importance(model: onnx.ModelProto, space: Space) -> np.ndarray:
    """L1 norm of each channel's filters, summed over the producers, each producer's norms divided
    by their mean so layers of different scale weigh alike."""
    inits = _ints(model)
    total = np.zeros(space.size, np.float64)
    for _, weight, axis in space.producers:
        w = np.moveaxis(inits[weight].astype(np.float64), axis, 0).reshape(space.size, -1)
        norms = np.abs(w).sum(axis=1)
        total += norms / max(norms.mean(), 1e-12)
    return total


def _is_depthwise(node: onnx.NodeProto, weight: np.ndarray) -> bool:
    return _attr(node, "group", 1) > 1 and weight.shape[1] == 1


def consumer_columns(model: onnx.ModelProto, plan: PrunePlan) -> dict[int, list]:
    """Space -> [(conv node, the space's input columns of that conv)] for every convolution that
    mixes channels (depthwise convs pass a space through instead)."""
    inits = _ints(model)
    out: dict[int, list] = {}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose") or node.input[1] not in inits or \
                _is_depthwise(node, inits[node.input[1]]):
            continue
        offset = 0
        for sid, size in plan.layout.get(node.input[0], []):
            out.setdefault(sid, []).append((node, np.arange(offset, offset + size)))
            offset += size
    return out


def downstream_importance(model: onnx.ModelProto, plan: PrunePlan, sid: int,
                          stats) -> np.ndarray:
    """How much each channel moves its consumers' outputs: the L1 norm of the consumer's input
    column times the channel's standard deviation on the frames, each consumer's scores divided
    by their mean so consumers of different scale weigh alike."""
    inits = _ints(model)
    total = np.zeros(plan.spaces[sid].size, np.float64)
    for node, columns in consumer_columns(model, plan).get(sid, []):
        weight = inits[node.input[1]].astype(np.float64)
        in_axis = 1 if node.op_type == "Conv" else 0
        w = np.moveaxis(weight, in_axis, 0)[columns].reshape(len(columns), -1)
        std = stats.std.get(node.input[0])
        if std is None:
            raise PruneError(f"no channel statistics for {node.input[0]}")
        score = np.abs(w).sum(axis=1) * std[columns]
        total += score / max(score.mean(), 1e-12)
    return total


def choose(model: onnx.ModelProto, plan: PrunePlan, ratio: float, scope: str = "",
           global_ranking: bool = False, round_to: int = 1, stats=None) -> PrunePlan:
    """Fill `plan.removed`: the lowest-ranked `ratio` of the channels in each prunable space
    (or of all prunable channels together with `global_ranking`)."""
    if not 0 < ratio < 1:
        raise PruneError(f"pruning ratio {ratio} must be between 0 and 1")
    names = {i: (n.name or n.output[0]) for i, n in enumerate(model.graph.node)}
    candidates = plan.prunable(scope, names)
    if not candidates:
        reasons = sorted(set(plan.locked.values()))
        raise PruneError("no channel group can be pruned" + (f" in scope {scope!r}" if scope
                         else "") + "; locked because: " + "; ".join(reasons[:6]))
    if stats is not None:
        scores = {sid: downstream_importance(model, plan, sid, stats) for sid in candidates}
    else:
        scores = {sid: channel_importance(model, plan.spaces[sid]) for sid in candidates}
    counts = {}
    if global_ranking:
        # the lowest scores over all groups, ties (dead channels all score 0) counted one by one
        owner = np.concatenate([np.full(s.size, sid) for sid, s in scores.items()])
        pooled = np.concatenate([s for s in scores.values()])
        lowest = owner[np.argsort(pooled, kind="stable")[:int(ratio * pooled.size)]]
        for sid, s in scores.items():
            counts[sid] = min(int((lowest == sid).sum()), s.size - MIN_KEEP)
    else:
        counts = {sid: int(ratio * s.size) for sid, s in scores.items()}
    for sid, count in counts.items():
        size = plan.spaces[sid].size
        keep = size - count
        if round_to > 1 and keep > round_to:
            keep = int(np.ceil(keep / round_to) * round_to)
        keep = max(min(keep, size), MIN_KEEP)
        order = np.argsort(scores[sid], kind="stable")
        plan.removed[sid] = np.sort(order[:size - keep])
        plan.spaces[sid].keep = np.sort(order[size - keep:])
    asked = int(ratio * sum(plan.spaces[s].size for s in candidates))
    done = plan.channels_removed()
    if done < 0.5 * asked:
        raise PruneError(f"only {done} of the {asked} channels asked for can be removed (each "
                         f"group keeps at least {MIN_KEEP}); lower the ratio")
    return plan


def kept_channels(plan: PrunePlan, tensor: str) -> Optional[np.ndarray]:
    """The kept channel indices of `tensor`, or None when it keeps all of them."""
    segments = plan.layout.get(tensor)
    if not segments or not any(plan.spaces[s].keep is not None for s, _ in segments):
        return None
    parts, offset = [], 0
    for sid, size in segments:
        keep = plan.spaces[sid].keep
        parts.append(offset + (np.arange(size) if keep is None else keep))
        offset += size
    return np.concatenate(parts)


class _Writer:
    def __init__(self, model: onnx.ModelProto):
        self.model = onnx.ModelProto()
        self.model.CopyFrom(model)
        self.inits = _ints(self.model)
        self.new: dict[str, np.ndarray] = {}

    def sliced(self, node: onnx.NodeProto, position: int, keep: np.ndarray, axis: int) -> None:
        name = node.input[position]
        value = np.take(self.inits[name], keep, axis=axis)
        new_name = f"{name}__pruned_{node.name or node.output[0]}_{position}"
        self.new[new_name] = value
        node.input[position] = new_name

    def value(self, name: str) -> np.ndarray:
        return self.new[name] if name in self.new else self.inits[name]

    def replaced(self, node: onnx.NodeProto, position: int, value: np.ndarray) -> None:
        """Compensated values are computed in float: stored in the graph's own dtype (fp16)."""
        old = node.input[position]
        new_name = f"{old}__pruned_{node.name or node.output[0]}_{position}"
        self.new[new_name] = value.astype(self.value(old).dtype, copy=False)
        node.input[position] = new_name

    def set_bias(self, node: onnx.NodeProto, value: np.ndarray) -> None:
        if len(node.input) > 2 and node.input[2]:
            self.replaced(node, 2, value)
            return
        name = f"{node.name or node.output[0]}__pruned_bias"
        self.new[name] = value.astype(self.value(node.input[1]).dtype, copy=False)
        while len(node.input) < 3:
            node.input.append("")
        node.input[2] = name

    def finish(self) -> onnx.ModelProto:
        graph = self.model.graph
        graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in self.new.items())
        used = {i for n in graph.node for i in n.input}
        kept = [i for i in graph.initializer if i.name in used]
        del graph.initializer[:]
        graph.initializer.extend(kept)
        del graph.value_info[:]                 # channel counts changed: shapes are re-inferred
        return self.model


def folded_bias(node: onnx.NodeProto, inits: dict, keep_in: np.ndarray,
                mean: np.ndarray) -> np.ndarray:
    """The conv's bias plus what its removed input channels contributed at their mean: exact for
    a channel that is constant (away from zero padding)."""
    weight = inits[node.input[1]].astype(np.float64)
    removed = np.setdiff1d(np.arange(len(mean)), keep_in)
    if node.op_type == "Conv":
        per_column = weight[:, removed].sum(axis=tuple(range(2, weight.ndim)))
        delta = per_column @ mean[removed]
    else:                                 # ConvTranspose: each output sees 1/stride^2 of taps
        strides = _attr(node, "strides", [1] * (weight.ndim - 2))
        per_row = weight[removed].sum(axis=tuple(range(2, weight.ndim)))
        delta = mean[removed] @ per_row / float(np.prod(strides))
    bias = inits[node.input[2]] if len(node.input) > 2 and node.input[2] else 0.0
    return (bias + delta).astype(np.float32)


RIDGE = 1e-3


def regressed_weight(node: onnx.NodeProto, inits: dict, keep_in: np.ndarray, mean: np.ndarray,
                     cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) of a Conv whose removed input channels are replaced by their least-squares
    prediction from the kept ones (x_removed ~ A x_kept + b, fitted on the frames): the removed
    columns' weights move onto the kept columns, the constant part into the bias."""
    weight = inits[node.input[1]].astype(np.float64)
    removed = np.setdiff1d(np.arange(len(mean)), keep_in)
    kk = cov[np.ix_(keep_in, keep_in)]
    ridge = RIDGE * max(np.trace(kk) / max(len(keep_in), 1), 1e-12)
    a = np.linalg.solve(kk + ridge * np.eye(len(keep_in)), cov[np.ix_(keep_in, removed)]).T
    b = mean[removed] - a @ mean[keep_in]
    w_removed = weight[:, removed]
    moved = np.einsum("or...,rk->ok...", w_removed, a)
    bias = inits[node.input[2]] if len(node.input) > 2 and node.input[2] else 0.0
    delta = w_removed.sum(axis=tuple(range(2, weight.ndim))) @ b
    full = weight.copy()
    full[:, keep_in] += moved
    return full.astype(np.float32), (bias + delta).astype(np.float32)


def apply(model: onnx.ModelProto, plan: PrunePlan, stats=None) -> onnx.ModelProto:
    """A copy of `model` with the planned channels physically removed; with `stats`, the removed
    channels' means are folded into their consumers' biases."""
    writer = _Writer(model)
    for node in writer.model.graph.node:
        op = node.op_type
        keep_in = kept_channels(plan, node.input[0]) if node.input else None
        keep_out = kept_channels(plan, node.output[0])
        if op in ("Conv", "ConvTranspose"):
            group = _attr(node, "group", 1)
            out_axis, in_axis = (0, 1) if op == "Conv" else (1, 0)
            if group > 1:                                  # depthwise: in == out
                if keep_out is not None:
                    writer.sliced(node, 1, keep_out, 0)
                    if len(node.input) > 2 and node.input[2]:
                        writer.sliced(node, 2, keep_out, 0)
                    node.attribute.remove(next(a for a in node.attribute if a.name == "group"))
                    node.attribute.append(helper.make_attribute("group", int(len(keep_out))))
                continue
            bias = None
            if keep_in is not None and stats is not None and node.input[0] in stats.mean:
                source = node.input[0]
                if op == "Conv" and source in stats.cov:
                    weight, bias = regressed_weight(node, writer.inits, keep_in,
                                                    stats.mean[source], stats.cov[source])
                    writer.replaced(node, 1, weight)      # a shared weight stays intact
                    writer.inits[node.input[1]] = writer.new[node.input[1]]
                else:
                    bias = folded_bias(node, writer.inits, keep_in, stats.mean[source])
            if keep_in is not None:
                writer.sliced(node, 1, keep_in, in_axis)
            if keep_out is not None:
                if keep_in is not None:                    # slice the already sliced weight
                    writer.inits[node.input[1]] = writer.new[node.input[1]]
                writer.sliced(node, 1, keep_out, out_axis)
                if bias is not None:
                    bias = bias[keep_out]
                elif len(node.input) > 2 and node.input[2]:
                    writer.sliced(node, 2, keep_out, 0)
            if bias is not None:
                writer.set_bias(node, bias)
        elif op == "BatchNormalization" and keep_out is not None:
            for position in range(1, 5):
                writer.sliced(node, position, keep_out, 0)
        elif op in BINARY and keep_out is not None:
            for position, name in enumerate(node.input):
                if name in writer.inits and writer.inits[name].size > 1:
                    value = writer.inits[name]
                    axis = value.ndim - 3 if value.ndim >= 3 else 0
                    writer.sliced(node, position, keep_out, axis)
        elif op == "Reshape" and keep_out is not None:
            shape = writer.inits[node.input[1]].copy()
            shape[1] = len(keep_out)
            writer.replaced(node, 1, shape)
        elif op in ("Resize", "Upsample") and keep_out is not None and len(node.input) > 3 \
                and node.input[3]:
            sizes = writer.inits[node.input[3]].copy()
            sizes[1] = len(keep_out)
            writer.replaced(node, 3, sizes)
    return writer.finish()


@dataclass
class PruneResult:
    model: onnx.ModelProto
    plan: PrunePlan
    channels_before: int
    channels_after: int

    def summary(self) -> str:
        locked = len(self.plan.locked)
        return (f"{self.plan.channels_removed()} channels removed in "
                f"{len(self.plan.removed)} groups ({self.channels_before} -> "
                f"{self.channels_after} in the pruned groups); {locked} groups locked")


def prune_channels(model: onnx.ModelProto, ratio: float, scope: str = "",
                   global_ranking: bool = False, round_to: int = 1,
                   stats=None) -> PruneResult:
    """`model` with the least important `ratio` of the prunable channels removed: by the L1 norm
    of their filters, or with `stats` (channel_stats.measure_channels) by what their consumers
    lose, with the removed channels' means folded into the consumers' biases."""
    plan = choose(model, analyze(model), ratio, scope, global_ranking, round_to, stats)
    before = sum(plan.spaces[s].size for s in plan.removed)
    pruned = apply(model, plan, stats)
    try:
        onnx.checker.check_model(pruned)
        shape_inference.infer_shapes(pruned, strict_mode=True)
    except Exception as exc:  # noqa: BLE001 - a pattern this module does not follow
        raise PruneError(f"the pruned graph is inconsistent ({exc}); this graph has a "
                         "pattern channel pruning cannot follow") from exc
    return PruneResult(pruned, plan, before, before - plan.channels_removed())


def locked_reasons(plan: PrunePlan, limit: int = 8) -> list[str]:
    counts: dict[str, int] = {}
    for why in plan.locked.values():
        counts[why] = counts.get(why, 0) + 1
    return [f"{n} group(s): {why}" for why, n in sorted(counts.items(), key=lambda x: -x[1])
            ][:limit]
