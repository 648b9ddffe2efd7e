"""An ONNX detector as a trainable tinygrad model, and its weights written back into the ONNX.

The graph is run node by node from the input to the requested tensors (by default the *heads*:
the outputs of the last weighted layers, before any decode), with each operator's semantics
taken from tinygrad's ONNX operator table, so the forward pass is what tinygrad's OnnxRunner
computes and matches onnxruntime. OnnxRunner itself is not used: it keeps every value in one
dict it rewrites on each call and runs the whole graph including the decode (TopK, Gather), while
training needs its own choice of which initializers are trainable tensors, a stop at the heads,
hooks that fake-quantize or mask weights and activations on the way, and a clear refusal of
operators outside the differentiable set.

Trainable: the float initializers that are weights or biases of Conv, ConvTranspose, Gemm,
MatMul and the scale and bias of BatchNormalization (running statistics stay fixed, as in
inference). Everything else is a constant.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
# operators whose gradients tinygrad computes correctly for training
TRAINABLE_OPS = frozenset({
    "Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization", "Relu", "LeakyRelu",
    "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Softplus", "Mish", "Elu", "Selu",
    "PRelu", "Exp", "Log", "Sqrt", "Neg", "Abs", "Pow", "Add", "Sub", "Mul", "Div", "Concat",
    "Resize", "Upsample", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Slice",
    "Split", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean",
    "ReduceSum", "ReduceMax", "Softmax", "Identity", "Dropout", "Pad", "Constant", "Shape",
    "Gather", "Cast", "Expand", "Tile", "Erf", "Min", "Max",
})
# input positions of each weighted operator that hold trainable parameters
PARAMETER_INPUTS = {"Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "MatMul": (0, 1),
                    "BatchNormalization": (1, 2)}


class UnsupportedGraph(ValueError):
    """The graph holds operators training cannot run, or the requested tensors do not exist."""


WeightHook = Callable[[str, "object"], "object"]           # (initializer name, tensor) -> tensor
InputHook = Callable[[onnx.NodeProto, str, "object"], "object"]


def is_weighted(node: onnx.NodeProto, inits: set) -> bool:
    return node.op_type in WEIGHTED_OPS and any(i in inits for i in node.input[:2])


def head_tensors(model: onnx.ModelProto) -> list[str]:
    """Outputs of the weighted layers that feed no other weighted layer: the raw head outputs
    (before sigmoid, decode, top-k), where a distillation loss sees everything the model says."""
    inits = {i.name for i in model.graph.initializer}
    feeds_weighted: dict[str, bool] = {}
    for node in reversed(model.graph.node):
        reaches = is_weighted(node, inits) or any(feeds_weighted.get(o, False)
                                                  for o in node.output)
        for name in node.input:
            feeds_weighted[name] = feeds_weighted.get(name, False) or reaches
    heads = []
    for node in model.graph.node:
        if is_weighted(node, inits) and not any(feeds_weighted.get(o, False)
                                                for o in node.output):
            heads.append(node.output[0])
    if not heads:
        raise UnsupportedGraph("the model has no weighted layers (Conv, Gemm, MatMul with "
                               "constant weights): there is nothing to train")
    return heads


def needed_nodes(model: onnx.ModelProto, targets: Sequence[str]) -> list[onnx.NodeProto]:
    """The nodes, in graph order, on which `targets` depend."""
    producer = {o: n for n in model.graph.node for o in n.output}
    wanted, stack = set(), list(targets)
    while stack:
        name = stack.pop()
        node = producer.get(name)
        if node is None or id(node) in wanted:
            continue
        wanted.add(id(node))
        stack.extend(i for i in node.input if i)
    return [n for n in model.graph.node if id(n) in wanted]


def trainable_nodes(model: onnx.ModelProto,
                    targets: Optional[Sequence[str]] = None) -> list[onnx.NodeProto]:
    """The nodes from the input to `targets` (default: the heads), refused with the operators
    that training cannot run."""
    targets = list(targets) if targets else head_tensors(model)
    nodes = needed_nodes(model, targets)
    unsupported = sorted({n.op_type for n in nodes if n.op_type not in TRAINABLE_OPS})
    if unsupported:
        where = [n.name or n.output[0] for n in nodes if n.op_type in unsupported][:3]
        raise UnsupportedGraph(
            f"operators {', '.join(unsupported)} (e.g. {', '.join(where)}) lie between the "
            f"input and the heads and cannot be trained here; the heads are {', '.join(targets)}")
    return nodes


def _attributes(node: onnx.NodeProto) -> dict:
    out = {}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, onnx.TensorProto):
            value = numpy_helper.to_array(value)
        out[attr.name] = value
    return out


def parameter_names(model: onnx.ModelProto) -> list[str]:
    """The float initializers that training updates, in graph order."""
    floats = {i.name for i in model.graph.initializer
              if i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)}
    names = []
    for node in model.graph.node:
        for position in PARAMETER_INPUTS.get(node.op_type, ()):
            if position < len(node.input) and node.input[position] in floats:
                names.append(node.input[position])
    return list(dict.fromkeys(names))


@dataclass
class _Step:
    node: onnx.NodeProto
    run: Callable
    attrs: dict
    consts: tuple          # input positions tinygrad wants as python values


class TrainableModel:
    """Forward pass of an ONNX graph in tinygrad, to the `targets` tensors (default: heads)."""

    def __init__(self, model: onnx.ModelProto, targets: Optional[Sequence[str]] = None,
                 trainable: bool = True):
        from tinygrad import Tensor  # noqa: PLC0415
        from tinygrad.nn.onnx import Domain, get_onnx_ops  # noqa: PLC0415
        from tinygrad.nn.onnx import required_input_python_consts  # noqa: PLC0415
        self.model = model
        self.targets = list(targets) if targets else head_tensors(model)
        produced = {o for n in model.graph.node for o in n.output}
        inits = {i.name: i for i in model.graph.initializer}
        self.input_name = next(i.name for i in model.graph.input if i.name not in inits)
        missing = [t for t in self.targets if t not in produced and t != self.input_name]
        if missing:
            raise UnsupportedGraph(f"tensor(s) {', '.join(missing)} are not in the graph")
        nodes = trainable_nodes(model, self.targets)
        table = get_onnx_ops()
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        self.steps = []
        for node in nodes:
            impl = table[node.op_type]
            if isinstance(impl, dict):
                eligible = {k.version: f for k, f in impl.items()
                            if k.domain == Domain.ONNX and k.version <= opset}
                impl = eligible[max(eligible)]
            self.steps.append(_Step(node, impl, _attributes(node),
                                    required_input_python_consts.get(node.op_type, ())))
        used = {i for n in nodes for i in n.input}
        names = set(parameter_names(model)) & used if trainable else set()
        self.params: dict[str, Tensor] = {}
        self.consts: dict[str, object] = {}
        for name, init in inits.items():
            if name not in used:
                continue
            # a writable copy: tinygrad's device copy refuses read-only numpy buffers
            value = np.array(numpy_helper.to_array(init))
            if value.dtype == np.float16:
                value = value.astype(np.float32)
            if name in names:
                self.params[name] = Tensor(value.astype(np.float32))
            else:
                self.consts[name] = Tensor(value)
        self.python_consts: dict[str, object] = {
            name: np.array(numpy_helper.to_array(init)).tolist()
            for name, init in inits.items() if name in used and name not in names}
        self.weight_hook: Optional[WeightHook] = None
        self.input_hook: Optional[InputHook] = None

    # --- forward -----------------------------------------------------------------------------

    def _python(self, name: str, value):
        if name not in self.python_consts:
            self.python_consts[name] = value.tolist()
        return self.python_consts[name]

    def value_of(self, name: str, values: dict):
        if name in values:
            return values[name]
        if name in self.params:
            weight = self.params[name]
            return self.weight_hook(name, weight) if self.weight_hook else weight
        return self.consts.get(name)

    def __call__(self, x, targets: Optional[Sequence[str]] = None) -> dict:
        """Tensors named in `targets` (default: this model's targets) for input `x` (numpy or a
        tinygrad Tensor of the model's input shape)."""
        from tinygrad import Tensor  # noqa: PLC0415
        values = {self.input_name: x if isinstance(x, Tensor) else Tensor(np.array(x))}
        wanted = list(targets or self.targets)
        last = {}
        for index, step in enumerate(self.steps):
            for name in step.node.input:
                last[name] = index
        for index, step in enumerate(self.steps):
            node = step.node
            inputs = []
            for position, name in enumerate(node.input):
                if not name:
                    inputs.append(None)
                    continue
                value = self.value_of(name, values)
                if position in step.consts and isinstance(value, Tensor):
                    value = self._python(name, value) if name not in values else value.tolist()
                elif self.input_hook and position == 0 and node.op_type in WEIGHTED_OPS:
                    value = self.input_hook(node, name, value)
                inputs.append(value)
            if node.op_type == "Split" and "num_outputs" not in step.attrs:
                step.attrs["num_outputs"] = len(node.output)
            out = step.run(*inputs, **step.attrs)
            out = out if isinstance(out, tuple) else (out,)
            values.update(zip(node.output, out[:len(node.output)]))
            # drop what no later node reads, so long graphs do not hold every activation
            for name in node.input:
                if last.get(name) == index and name not in wanted:
                    values.pop(name, None)
        return {name: values[name] for name in wanted}

    # --- weights -------------------------------------------------------------------------------

    def parameters(self) -> list:
        return list(self.params.values())

    def state(self) -> dict[str, np.ndarray]:
        """The current weights as numpy arrays (after the weight hook, as they would be exported)."""
        out = {}
        for name, tensor in self.params.items():
            value = self.weight_hook(name, tensor) if self.weight_hook else tensor
            out[name] = value.detach().numpy().astype(np.float32)
        return out

    def raw_state(self) -> dict[str, np.ndarray]:
        return {name: t.detach().numpy().copy() for name, t in self.params.items()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        for name, value in state.items():
            self.params[name].assign(np.ascontiguousarray(value, np.float32)).realize()

    def to_onnx(self, state: Optional[dict] = None) -> onnx.ModelProto:
        return with_weights(self.model, state if state is not None else self.state())


def with_weights(model: onnx.ModelProto, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of `model` with the named initializers replaced, each in its original dtype (float16
    weights stay float16), so the file keeps its inputs, outputs and metadata."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for init in out.graph.initializer:
        if init.name in weights:
            dtype = numpy_helper.to_array(init).dtype
            value = np.asarray(weights[init.name]).astype(dtype)
            if value.shape != tuple(init.dims):
                raise ValueError(f"weight {init.name}: shape {value.shape} is not the graph's "
                                 f"{tuple(init.dims)}")
            init.CopyFrom(numpy_helper.from_array(value, init.name))
    return out


def numpy_outputs(outputs: dict) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in outputs.items()}


def gather_parameters(models: Iterable[TrainableModel]) -> list:
    return [p for m in models for p in m.parameters()]
