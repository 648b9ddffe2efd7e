"""MACs counted from ONNX graphs against counts worked out by hand."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from trt_infer_ros.measure.ops_count import OpsCountError, achieved_tops, count_macs, tops_per_watt


def _model(nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs,
                              [numpy_helper.from_array(np.zeros(s, np.float32), n)
                               for n, s in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_conv_with_groups_stride_and_padding():
    # x [1,8,32,32], 4 groups, 16 output channels, 3x3, stride 2, pad 1 -> y [1,16,16,16]
    # each output: (8/4 input channels) * 9 taps = 18 MACs; 16*16*16 outputs -> 73728
    node = helper.make_node("Conv", ["x", "w"], ["y"], group=4, strides=[2, 2],
                            pads=[1, 1, 1, 1], kernel_shape=[3, 3])
    ops = count_macs(_model([node], [_vi("x", [1, 8, 32, 32])], [_vi("y", None)],
                            [("w", [16, 2, 3, 3])]))
    assert ops.macs == 16 * 16 * 16 * 2 * 9 == 73728
    assert ops.layers[0].output_shape == (1, 16, 16, 16)
    assert ops.gops == pytest.approx(2 * 73728 / 1e9)


def test_depthwise_conv_and_dilation_without_padding():
    # depthwise 5x5, dilation 2 on [1,32,20,20]: span 9 -> 12x12 out; 32*12*12 outputs * 25
    node = helper.make_node("Conv", ["x", "w"], ["y"], group=32, dilations=[2, 2])
    ops = count_macs(_model([node], [_vi("x", [1, 32, 20, 20])], [_vi("y", None)],
                            [("w", [32, 1, 5, 5])]))
    assert ops.macs == 32 * 12 * 12 * 25 == 115200


def test_conv_same_padding_and_batch_from_input_shapes():
    node = helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", strides=[2, 2])
    model = _model([node], [_vi("x", ["batch", 3, 15, 15])], [_vi("y", None)],
                   [("w", [8, 3, 3, 3])])
    # SAME: ceil(15/2) = 8 -> 8x8; batch 4 -> 4*8*8*8 outputs * 27
    assert count_macs(model, {"x": [4, 3, 15, 15]}).macs == 4 * 8 * 8 * 8 * 27 == 55296
    assert count_macs(model).macs == 8 * 8 * 8 * 27          # unknown batch taken as 1


def test_gemm_with_transposed_weight_and_matmul_with_batch_broadcast():
    gemm = helper.make_node("Gemm", ["a", "w"], ["h"], transB=1)         # [2,64] x [128,64]^T
    matmul = helper.make_node("MatMul", ["h3", "m"], ["z"])              # [5,1,2,128] x [3,128,10]
    reshape = helper.make_node("Reshape", ["h", "shape"], ["h3"])
    model = _model([gemm, reshape, matmul], [_vi("a", [2, 64])], [_vi("z", None)],
                   [("w", [128, 64]), ("m", [3, 128, 10])])
    model.graph.initializer.append(numpy_helper.from_array(np.array([5, 1, 2, 128], np.int64),
                                                           "shape"))
    ops = count_macs(model)
    by = {l.op_type: l for l in ops.layers}
    assert by["Gemm"].macs == 2 * 128 * 64 == 16384
    assert by["MatMul"].macs == (5 * 3) * 2 * 10 * 128 == 38400      # batch 5x3 broadcast
    assert by["MatMul"].output_shape == (5, 3, 2, 10)
    assert ops.uncounted == {"Reshape": 1}


def test_matmul_vector_and_conv_transpose():
    mv = helper.make_node("MatMul", ["v", "m"], ["o"])                   # [7] x [7,9] -> [9]
    ct = helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2])
    model = _model([mv, ct], [_vi("v", [7]), _vi("x", [1, 4, 6, 6])],
                   [_vi("o", None), _vi("y", None)], [("m", [7, 9]), ("w", [4, 3, 2, 2])])
    by = {l.op_type: l.macs for l in count_macs(model).layers}
    assert by["MatMul"] == 7 * 9
    assert by["ConvTranspose"] == 4 * 6 * 6 * 3 * 2 * 2 == 1728   # every input pixel: 3*2*2


def test_whole_model_matches_its_own_arithmetic(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from synthetic_yolo import gflops, make_yolov8_shaped

    path = make_yolov8_shaped(str(tmp_path / "y.onnx"), 96, 80)
    assert count_macs(path).gops == pytest.approx(gflops(96), rel=1e-9)


def test_unknown_shapes_are_reported_not_guessed():
    node = helper.make_node("MatMul", ["a", "b"], ["c"])
    model = _model([node], [_vi("a", [2, 3]), _vi("b", None)], [_vi("c", None)])
    with pytest.raises(OpsCountError, match="input shapes unknown"):
        count_macs(model)


def test_tops_and_tops_per_watt():
    assert achieved_tops(1_000_000_000, 50.0) == pytest.approx(0.1)
    assert tops_per_watt(0.1, 20.0) == pytest.approx(0.005)
    assert tops_per_watt(0.1, None) is None
