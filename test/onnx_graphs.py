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
         np.dtype(np.int32): TensorProto.INT32, np.dtype(np.int64): TensorProto.INT64,
         np.dtype(np.float64): TensorProto.DOUBLE}


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


def save_export(path, outputs: dict, input_shape=(1, 3, 64, 64), metadata=None,
                declared=None, input_name="images", extra_nodes=(), extra_inputs=(),
                extra_inits=None, opset=17) -> str:
    """A model with an exporter's I/O contract: constant outputs (the image input feeds them,
    scaled by 0, so the graph depends on it), `declared` output shapes (dims may be names, as
    in dynamic exports), and `metadata` written to metadata_props as exporters write it.

    `extra_nodes`/`extra_inputs`/`extra_inits` add graph pieces; an output named in `outputs`
    with value None is produced by those nodes instead of a constant.
    """
    nodes = [helper.make_node("ReduceMax", [input_name], ["imax"], keepdims=0),
             helper.make_node("Mul", ["imax", "zero"], ["izero"])]
    inits = {"zero": np.zeros((), np.float32)}
    inits.update(extra_inits or {})
    out_infos = []
    for i, (name, value) in enumerate(outputs.items()):
        if value is None:
            out_infos.append((name, list((declared or {})[name][0]), (declared or {})[name][1]))
            continue
        value = np.asarray(value)
        inits[f"c{i}"] = value
        if np.issubdtype(value.dtype, np.floating):
            nodes.append(helper.make_node("Cast", ["izero"], [f"z{i}"], to=_ELEM[value.dtype]))
            nodes.append(helper.make_node("Add", [f"c{i}", f"z{i}"], [name]))
        else:
            nodes.append(helper.make_node("Identity", [f"c{i}"], [name]))
        shape = (declared or {}).get(name, list(value.shape))
        out_infos.append((name, list(shape), value.dtype))
    nodes.extend(extra_nodes)

    def info(name, shape, dtype):
        return helper.make_tensor_value_info(name, _ELEM[np.dtype(dtype)], list(shape))
    graph = helper.make_graph(
        nodes, "export", [info(input_name, input_shape, np.float32)] +
        [info(*i) for i in extra_inputs], [info(*o) for o in out_infos],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, str(value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def ultralytics_metadata(task="detect", names=("person", "bicycle", "car"), imgsz=(64, 64),
                         end2end=False, **more) -> dict:
    """metadata_props as Ultralytics' exporter writes them (values are str() of Python objects)."""
    meta = {"description": "Ultralytics YOLO11n model", "author": "Ultralytics",
            "version": "8.4.190", "license": "AGPL-3.0 License", "stride": 32, "task": task,
            "batch": 1, "imgsz": list(imgsz), "names": dict(enumerate(names)),
            "args": {"batch": 1, "half": False, "dynamic": False, "nms": False},
            "end2end": end2end, "channels": 3}
    meta.update(more)
    return meta


def save_rtdetr_deploy(path, width=64, height=64) -> str:
    """images + orig_target_sizes -> labels, boxes (normalised boxes times the target size),
    scores: one detection, class 2, score 0.9, box 0.25,0.25 - 0.5,0.75 of the target size."""
    norm = np.zeros((1, 300, 4), np.float32)
    norm[0, 0] = [0.25, 0.25, 0.5, 0.75]
    labels = np.zeros((1, 300), np.int64)
    labels[0, 0] = 2
    scores = np.zeros((1, 300), np.float32)
    scores[0, 0] = 0.9
    nodes = [helper.make_node("Cast", ["orig_target_sizes"], ["wh"], to=TensorProto.FLOAT),
             helper.make_node("Concat", ["wh", "wh"], ["whwh"], axis=1),
             helper.make_node("Unsqueeze", ["whwh", "axis1"], ["scale"]),
             helper.make_node("Mul", ["norm", "scale"], ["boxes"])]
    return save_export(path, {"labels": labels, "boxes": None, "scores": scores},
                       input_shape=(1, 3, height, width),
                       declared={"boxes": ((1, 300, 4), np.float32)}, extra_nodes=nodes,
                       extra_inputs=[("orig_target_sizes", (1, 2), np.int64)],
                       extra_inits={"norm": norm, "axis1": np.array([1], np.int64)})
