"""Shared fixtures: small real ONNX graphs written with onnx.helper."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from onnx_graphs import _ELEM, save_graph


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
