"""Cut one ONNX model into a backbone and a head at named tensors.

The backbone takes the model's inputs and outputs the cut tensors; the head takes the cut
tensors and outputs the model's outputs. On Jetson the backbone becomes a DLA engine and the
head a GPU engine (backbone_node / head_node), so the DLA runs one clean convolutional block
instead of hopping back and forth to the GPU.

`suggest_cut(model)` proposes cut tensors for YOLO-family and CenterNet graphs: the largest
prefix of the graph made of convolution-style operators (what DLA runs), cut where it hands
4-D feature maps to the decoding part (reshape/transpose/top-k/...).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional, Sequence

import onnx
from onnx import helper, shape_inference

# Operators of the convolutional trunk: what DLA can run (with fp16/int8), plus the
# elementwise ops that activations like SiLU/HardSwish are written with.
TRUNK_OPS = frozenset({
    "Conv", "ConvTranspose", "BatchNormalization", "Relu", "LeakyRelu", "PRelu", "Sigmoid",
    "HardSigmoid", "HardSwish", "Tanh", "Clip", "Mul", "Add", "Sub", "Div", "Max", "Min",
    "MaxPool", "AveragePool", "GlobalAveragePool", "Concat", "Resize", "Upsample", "Pad",
    "Identity", "Dropout", "Elu", "Selu", "Softplus", "Mish", "Neg", "Abs", "Sqrt", "Pow",
    "InstanceNormalization", "LRN", "ReduceMean", "ReduceMax", "GlobalMaxPool",
})
# Layout ops allowed only right at the input (an NHWC model transposes its input first).
INPUT_ADAPTER_OPS = frozenset({"Transpose", "Cast", "Reshape", "Unsqueeze"})
# Layout ops allowed anywhere in the trunk while they keep feature maps 4-D (tf2onnx reshapes
# squeeze-excite vectors between [1,C,1,1] layouts); flattening for decoding ends the trunk.
LAYOUT_OPS = frozenset({"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten"})


class SplitError(ValueError):
    pass


@dataclass
class CutSuggestion:
    tensors: list[str]
    backbone_nodes: int
    head_nodes: int
    reason: str
    shapes: dict = field(default_factory=dict)


def _load(model_or_path) -> onnx.ModelProto:
    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    return onnx.load(str(model_or_path))


def _infer(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - shapes only improve the suggestion's report
        return model


def _shapes(model: onnx.ModelProto) -> dict[str, list]:
    out = {}
    for v in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input):
        dims = v.type.tensor_type.shape.dim
        out[v.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                       for d in dims]
    return out


def suggest_cut(model_or_path, max_tensors: int = 6) -> CutSuggestion:
    """Cut tensors between the convolutional trunk and the decoding head.

    Walks the nodes in the graph's (topological) order and grows the trunk with every node whose
    operator is convolution-style and whose inputs all come from the trunk, the model inputs or
    constants. The cut is every trunk tensor that a non-trunk node or a model output uses.
    """
    model = _infer(_load(model_or_path))
    graph = model.graph
    shapes = _shapes(model)
    constants = {i.name for i in graph.initializer}
    # constant-like: Constant nodes and whatever is computed from constants alone (tf2onnx
    # writes resize sizes and reshape targets that way); such nodes belong to neither part
    folded = set()
    for node in graph.node:
        if all(i in constants for i in node.input if i):
            constants.update(o for o in node.output if o)
            folded.add(id(node))
    available = {i.name for i in graph.input} | constants
    graph_inputs = {i.name for i in graph.input} - constants
    trunk_outputs: set[str] = set()
    trunk: list = []
    for node in graph.node:
        if id(node) in folded:
            continue
        inputs = [i for i in node.input if i]
        feeds_from_input_only = all(i in graph_inputs or i in constants for i in inputs)
        keeps_4d = all(len(shapes.get(o, [])) == 4 for o in node.output)
        allowed = (node.op_type in TRUNK_OPS
                   or (node.op_type in INPUT_ADAPTER_OPS and feeds_from_input_only)
                   or (node.op_type in LAYOUT_OPS and keeps_4d))
        if allowed and all(i in available for i in inputs):
            trunk.append(node)
            trunk_outputs.update(node.output)
            available.update(node.output)
    if not trunk:
        raise SplitError("no convolutional trunk found at the start of the graph; "
                         "give the cut tensors explicitly")
    trunk_ids = {id(n) for n in trunk}
    head = [n for n in graph.node if id(n) not in trunk_ids and id(n) not in folded]
    if not head:
        raise SplitError("the whole graph is convolution-style: there is no head to split off")
    used_by_head = {i for n in head for i in n.input}
    outputs = {o.name for o in graph.output}
    cut = [t for n in trunk for t in n.output if t in used_by_head or t in outputs]
    cut = list(dict.fromkeys(cut))
    if len(cut) > max_tensors:
        raise SplitError(f"the trunk hands {len(cut)} tensors to the head (more than "
                         f"{max_tensors}); give the cut tensors explicitly")
    ops = sorted({n.op_type for n in head})
    return CutSuggestion(cut, len(trunk), len(head),
                         f"convolutional trunk of {len(trunk)} nodes; head starts with "
                         f"{', '.join(ops[:6])}", {t: shapes.get(t) for t in cut})


def _needed_nodes(graph, outputs: Sequence[str], stop: set[str]) -> list:
    """Nodes needed to compute `outputs` from the `stop` tensors (graph order kept)."""
    producer = {o: n for n in graph.node for o in n.output}
    needed, stack, seen = set(), list(outputs), set()
    while stack:
        t = stack.pop()
        if t in seen or t in stop:
            continue
        seen.add(t)
        node = producer.get(t)
        if node is None:
            continue
        if id(node) not in needed:
            needed.add(id(node))
            stack.extend(i for i in node.input if i)
    return [n for n in graph.node if id(n) in needed]


def _value_info(model: onnx.ModelProto, name: str):
    for v in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input):
        if v.name == name:
            return v
    raise SplitError(f"no type/shape known for tensor {name!r}; run shape inference on the model")


def _sub_model(model: onnx.ModelProto, inputs: Sequence[str], outputs: Sequence[str],
               name: str) -> onnx.ModelProto:
    graph = model.graph
    nodes = _needed_nodes(graph, outputs, set(inputs))
    init_names = {i.name for i in graph.initializer}
    used = {i for n in nodes for i in n.input if i} | set(outputs)
    produced = {o for n in nodes for o in n.output} | set(inputs)
    missing = sorted(t for t in used - produced - init_names)
    if missing:
        raise SplitError(f"{name}: the cut is not clean -- it still needs {missing}, which are "
                         "neither cut tensors nor computed inside; add them to the cut")
    new_graph = helper.make_graph(
        nodes, f"{graph.name}_{name}", [_value_info(model, t) for t in inputs],
        [_value_info(model, t) for t in outputs],
        [i for i in graph.initializer if i.name in used],
        value_info=[v for v in graph.value_info if v.name in used | produced
                    and v.name not in set(inputs) | set(outputs)])
    sub = helper.make_model(new_graph, opset_imports=model.opset_import,
                            producer_name="trt_infer_ros.onnx_split")
    sub.ir_version = model.ir_version
    return sub


@dataclass
class SplitResult:
    backbone: onnx.ModelProto
    head: onnx.ModelProto
    cut_tensors: list[str]
    backbone_path: Optional[str] = None
    head_path: Optional[str] = None


def split_model(model_or_path, cut_tensors: Optional[Sequence[str]] = None,
                backbone_path: Optional[str] = None, head_path: Optional[str] = None,
                check: bool = True) -> SplitResult:
    """Split at `cut_tensors` (default: `suggest_cut`). Writes the two files when paths are
    given. The head's inputs are the cut tensors, in the order given."""
    model = _infer(_load(model_or_path))
    graph = model.graph
    if not cut_tensors:
        cut_tensors = suggest_cut(model).tensors
    cut_tensors = list(cut_tensors)
    known = {o for n in graph.node for o in n.output}
    unknown = [t for t in cut_tensors if t not in known]
    if unknown:
        sample = ", ".join(list(known)[:8])
        raise SplitError(f"cut tensors {unknown} are not produced by any node; names look like: "
                         f"{sample}")
    model_inputs = [i.name for i in graph.input if i.name not in {x.name for x in graph.initializer}]
    model_outputs = [o.name for o in graph.output]
    backbone = _sub_model(model, model_inputs, cut_tensors, "backbone")
    head = _sub_model(model, cut_tensors, model_outputs, "head")
    if check:
        onnx.checker.check_model(backbone)
        onnx.checker.check_model(head)
    result = SplitResult(backbone, head, cut_tensors)
    for sub, path, attr in ((backbone, backbone_path, "backbone_path"),
                            (head, head_path, "head_path")):
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            onnx.save(sub, path)
            setattr(result, attr, path)
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    """python -m trt_infer_ros.engine.onnx_split model.onnx [--cut t1,t2] [--out-dir d]"""
    import argparse  # noqa: PLC0415
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("onnx")
    parser.add_argument("--cut", default="", help="comma-separated cut tensors (default: suggest)")
    parser.add_argument("--out-dir", default="", help="where to write <model>.backbone/.head.onnx")
    parser.add_argument("--suggest-only", action="store_true")
    args = parser.parse_args(argv)
    if args.suggest_only or not args.cut:
        s = suggest_cut(args.onnx)
        print(f"suggested cut: {','.join(s.tensors)}  ({s.reason})")
        for t in s.tensors:
            print(f"  {t}: {s.shapes.get(t)}")
        if args.suggest_only:
            return 0
    cut = [t for t in args.cut.split(",") if t] or None
    stem = os.path.splitext(os.path.basename(args.onnx))[0]
    out = args.out_dir or os.path.dirname(os.path.abspath(args.onnx))
    r = split_model(args.onnx, cut, os.path.join(out, f"{stem}.backbone.onnx"),
                    os.path.join(out, f"{stem}.head.onnx"))
    print(f"backbone: {r.backbone_path}\nhead:     {r.head_path}\ncut: {','.join(r.cut_tensors)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
