"""Test data shared by test modules: repository paths and real ONNX graphs built with onnx.helper.

Imported by name (`from onnx_graphs import save_graph`); conftest.py only holds fixtures,
since several conftest.py files exist and `import conftest` would pick whichever came first.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
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
