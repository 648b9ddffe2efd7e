#!/usr/bin/env python3
"""Convert the CenterNet-MobileNetV3 COCO detector of @vladmandic/human to ONNX.

The npm package ``@vladmandic/human@3.3.6`` (MIT licence) ships the model as a
TensorFlow.js graph model: ``package/models/centernet.json`` (topology and
weight manifest) and ``package/models/centernet.bin`` (weights). tf2onnx reads
TF.js graph models directly (``--tfjs``), but this file was written by an older
TF.js converter that left out node attributes which current TensorFlow
requires, so the topology is patched first (see ``patch_node``).

Run it in a throwaway virtual environment, for example::

    python3.11 -m venv /tmp/venv-convert
    /tmp/venv-convert/bin/pip install tensorflow-cpu==2.19.1 tf2onnx==1.17.0 \
        "numpy<2" "ml-dtypes==0.5.4" onnx onnxruntime
    cd /tmp && npm pack @vladmandic/human@3.3.6 && tar xzf vladmandic-human-3.3.6.tgz
    /tmp/venv-convert/bin/python scripts/convert_centernet.py \
        --package /tmp/package --output models/centernet_mobilenetv3_coco.onnx

``numpy<2`` is needed because tf2onnx 1.17's TF.js weight reader calls
``np.product``, which numpy 2 removed. The ``tensorflowjs`` pip package is not
needed: tf2onnx parses the TF.js files itself.

The conversion itself is the tf2onnx command line::

    python -m tf2onnx.convert --tfjs <patched>/centernet.json --opset 13 \
        --outputs tower_0/detections --output <raw.onnx>

after which the graph input is renamed from ``tower_0/images:0`` to ``images``
(the output keeps its name ``tower_0/detections``), the licence and source are
stored in the model's metadata, and the result is checked with onnxruntime.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE = "@vladmandic/human@3.3.6"
MODEL_FILES = ("models/centernet.json", "models/centernet.bin")
TF_INPUT = "tower_0/images"
RAW_ONNX_INPUT = "tower_0/images:0"  # tf2onnx keeps TensorFlow's output index
TF_OUTPUT = "tower_0/detections"
ONNX_INPUT = "images"
OPSET = 13


# --------------------------------------------------------------------------
# Topology patches
# --------------------------------------------------------------------------

def tf_op_def(op_type: str):
    """TensorFlow's registered OpDef for ``op_type``, or None if unknown.

    TF.js names the fused depthwise convolution ``FusedDepthwiseConv2dNative``;
    tf2onnx converts it as TensorFlow's internal ``_FusedDepthwiseConv2dNative``,
    so its defaults come from that op.
    """
    from tensorflow.python.framework import op_def_registry

    if op_type == "FusedDepthwiseConv2dNative":
        op_type = "_FusedDepthwiseConv2dNative"
    return op_def_registry.get(op_type)


def add_fused_conv_targs(node: dict) -> bool:
    """Give a ``_FusedConv2D`` node the ``TArgs`` attribute it lacks.

    TensorFlow's ``_FusedConv2D`` declares its extra inputs (here the bias of
    the fused BiasAdd) as ``args: TArgs``, a list(type) attribute with no
    default. The TF.js files omit it, and tf2onnx builds each node in a real
    TensorFlow graph to infer output shapes, where TensorFlow rejects the node
    ("NodeDef missing attr 'TArgs'"). The extra inputs have the convolution's
    own dtype ``T``, one per ``num_args``.
    """
    attr = node.setdefault("attr", {})
    if node["op"] != "_FusedConv2D" or "TArgs" in attr:
        return False
    num_args = int(attr.get("num_args", {}).get("i", 0))
    attr["TArgs"] = {"list": {"type": [attr["T"]["type"]] * num_args}}
    return True


def add_tf_default_attrs(node: dict) -> list[str]:
    """Fill in every attribute TensorFlow has a default for but the node lacks.

    The TF.js converter drops attributes that did not exist (or were at their
    default) when the model was converted. Current TensorFlow ops have gained
    attributes since, e.g. ``TopKV2.index_type``; tf2onnx reads them from the
    node directly to work out output dtypes and fails with a KeyError when they
    are absent. Adding TensorFlow's own default keeps the op's meaning.
    """
    from google.protobuf.json_format import MessageToDict

    op_def = tf_op_def(node["op"])
    if op_def is None:
        return []
    attr = node.setdefault("attr", {})
    added = []
    for attr_def in op_def.attr:
        if attr_def.name not in attr and attr_def.HasField("default_value"):
            # TF.js stores attributes as the JSON form of the AttrValue proto.
            attr[attr_def.name] = MessageToDict(attr_def.default_value)
            added.append(attr_def.name)
    return added


def patch_node(node: dict) -> list[str]:
    """Apply all attribute patches to one node; return the attributes added."""
    if node["op"] in ("Const", "Placeholder"):
        return []
    added = ["TArgs"] if add_fused_conv_targs(node) else []
    return added + add_tf_default_attrs(node)


def patch_model_json(model_json: dict) -> dict[str, int]:
    """Patch every node of a TF.js graph model in place; count what was added."""
    counts: dict[str, int] = {}
    for node in model_json["modelTopology"]["node"]:
        for name in patch_node(node):
            key = f"{node['op']}.{name}"
            counts[key] = counts.get(key, 0) + 1
    return counts


def write_patched_model(package_dir: Path, work_dir: Path) -> Path:
    """Copy the model to ``work_dir`` with a patched topology; return its json."""
    src_json = package_dir / MODEL_FILES[0]
    model_json = json.loads(src_json.read_text())
    counts = patch_model_json(model_json)
    for key, count in sorted(counts.items()):
        print(f"patched {key}: {count} node(s)")
    dst_json = work_dir / "centernet.json"
    dst_json.write_text(json.dumps(model_json))
    # The weight manifest names the .bin relative to the json file.
    shutil.copy(package_dir / MODEL_FILES[1], work_dir / "centernet.bin")
    return dst_json


# --------------------------------------------------------------------------
# Conversion and finishing
# --------------------------------------------------------------------------

def tf2onnx_command(model_json: Path, raw_onnx: Path) -> list[str]:
    return [sys.executable, "-m", "tf2onnx.convert", "--tfjs", str(model_json),
            "--opset", str(OPSET), "--outputs", TF_OUTPUT, "--output", str(raw_onnx)]


def run_tf2onnx(model_json: Path, raw_onnx: Path) -> None:
    cmd = tf2onnx_command(model_json, raw_onnx)
    print("running:", " ".join(cmd))
    subprocess.run(cmd, check=True)


def rename_value(graph, old: str, new: str) -> None:
    """Rename a tensor everywhere it appears in ``graph``."""
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        if value.name == old:
            value.name = new
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]


def finish_model(raw_onnx: Path, output: Path) -> None:
    """Name the input plainly, record provenance, check and save the model."""
    import onnx

    model = onnx.load(str(raw_onnx))
    input_names = [value.name for value in model.graph.input]
    output_names = [value.name for value in model.graph.output]
    if input_names != [RAW_ONNX_INPUT] or output_names != [TF_OUTPUT]:
        raise RuntimeError(f"unexpected graph I/O {input_names} -> {output_names}")
    rename_value(model.graph, RAW_ONNX_INPUT, ONNX_INPUT)
    model.graph.doc_string = ""  # tf2onnx writes the temporary json path here
    model.doc_string = (
        f"CenterNet-MobileNetV3 COCO detector from npm {PACKAGE} ({', '.join(MODEL_FILES)}), "
        "MIT licence, Copyright (c) Vladimir Mandic. Input images: [1,512,512,3] NHWC RGB "
        "float 0..255, resized to 512x512 (the human package stretches; see MODEL_CARD.md "
        "on letterboxing). Output tower_0/detections: [1,100,6] x1,y1,x2,y2 (input pixels), "
        "score, class index (0-based COCO-80), sorted by score; no NMS.")
    meta = {"source": f"npm {PACKAGE}", "license": "MIT",
            "class_index_base": "0", "converter": f"tf2onnx --tfjs --opset {OPSET}"}
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(output))


def smoke_test(onnx_path: Path) -> None:
    """Run the model once on CPU to prove it loads and has the expected shapes."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    image = np.zeros((1, 512, 512, 3), dtype=np.float32)
    (result,) = session.run(None, {inp.name: image})
    print(f"onnxruntime: {inp.name} {inp.shape} {inp.type} -> {out.name} {result.shape} {result.dtype}")
    if result.shape != (1, 100, 6) or result.dtype != np.float32:
        raise RuntimeError("unexpected output")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, required=True,
                        help="the unpacked npm package folder (the one holding models/)")
    parser.add_argument("--output", type=Path, default=Path("models/centernet_mobilenetv3_coco.onnx"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="centernet-") as tmp:
        work_dir = Path(tmp)
        model_json = write_patched_model(args.package, work_dir)
        raw_onnx = work_dir / "raw.onnx"
        run_tf2onnx(model_json, raw_onnx)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        finish_model(raw_onnx, args.output)
    smoke_test(args.output)
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
