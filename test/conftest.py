"""Shared fixtures: small real ONNX graphs written with onnx.helper."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "models" / "centernet_mobilenetv3_coco.onnx"
IMAGES = REPO / "data" / "images"

_ELEM = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float16): TensorProto.FLOAT16,
         np.dtype(np.int32): TensorProto.INT32, np.dtype(np.int64): TensorProto.INT64}


def save_graph(path, nodes, inputs, outputs, initializers=(), opset=13) -> str:
    """inputs/outputs: lists of (name, shape, numpy dtype); initializers: {name: array}."""
    def info(name, shape, dtype):
        return helper.make_tensor_value_info(name, _ELEM[np.dtype(dtype)], shape)
    graph = helper.make_graph(
        nodes, "test_graph", [info(*i) for i in inputs], [info(*o) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(initializers).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8                   # readable by every onnxruntime/tinygrad we use
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


@pytest.fixture
def constant_model(tmp_path):
    """Factory: a model with one image input whose outputs are the given constant arrays.

    The image input is added in scaled by 0 so the graph really depends on it.
    """
    def make(outputs: dict, input_shape=(1, 3, 64, 64), input_dtype=np.float32,
             name="model.onnx", input_name="images") -> str:
        nodes, inits = [], {"zero": np.zeros((), input_dtype)}
        nodes.append(helper.make_node("ReduceMax", [input_name], ["imax"], keepdims=0))
        nodes.append(helper.make_node("Mul", ["imax", "zero"], ["izero"]))
        out_infos = []
        for i, (out_name, value) in enumerate(outputs.items()):
            value = np.asarray(value)
            inits[f"c{i}"] = value
            if np.issubdtype(value.dtype, np.floating):
                cast = f"z{i}"
                nodes.append(helper.make_node("Cast", ["izero"], [cast], to=_ELEM[value.dtype]))
                nodes.append(helper.make_node("Add", [f"c{i}", cast], [out_name]))
            else:
                nodes.append(helper.make_node("Identity", [f"c{i}"], [out_name]))
            out_infos.append((out_name, list(value.shape), value.dtype))
        return save_graph(tmp_path / name, nodes, [(input_name, list(input_shape), input_dtype)],
                          out_infos, inits)
    return make
