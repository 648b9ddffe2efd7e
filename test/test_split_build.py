"""engine_builder's split build: two engines from one ONNX, against the TensorRT fake."""
from fakes.fake_tensorrt import FakeTensorRT
from test_engine_builder import ORIN, conv_graph

from trt_infer_ros.engine import cli
from trt_infer_ros.engine.options import BuildOptions
from trt_infer_ros.engine.split_build import build_split


def test_backbone_on_dla_and_head_on_gpu_from_one_onnx(tmp_path):
    onnx_path = conv_graph(tmp_path / "model.onnx")
    fake = FakeTensorRT("8.6.1", dla_cores=2)
    logs = []
    result = build_split(BuildOptions(onnx=onnx_path, precision="fp16", dla_core=1,
                                      engine=str(tmp_path / "yolo.engine")),
                         trt=fake, device=ORIN, log=logs.append, heartbeat_s=0.01)
    assert result.cut_tensors == ("c2",)              # suggested: where the reshape starts
    assert result.backbone.engine_path == str(tmp_path / "yolo.backbone.engine")
    assert result.head.engine_path == str(tmp_path / "yolo.head.engine")
    assert result.backbone.sidecar.dla_core == 1
    assert result.backbone.sidecar.build_settings["gpu_fallback"] is True
    assert result.head.sidecar.dla_core == -1
    assert [o.name for o in result.backbone.sidecar.outputs] == ["c2"]
    assert [i.name for i in result.head.sidecar.inputs] == ["c2"]
    assert len(fake.called("builder.build_serialized_network")) == 2


def test_given_cuts_are_used_and_a_bad_cut_is_a_parameter_error(tmp_path):
    onnx_path = conv_graph(tmp_path / "model.onnx")
    fake = FakeTensorRT("10.3.0")
    logs = []
    options = BuildOptions(onnx=onnx_path, precision="fp16", split=True, cut_tensors=["r1"])
    result = build_split(options, trt=fake, device=ORIN, log=logs.append, heartbeat_s=0.01)
    assert result.cut_tensors == ("r1",)
    assert result.head.sidecar.build_settings["precision"] == "fp16"
    bad = BuildOptions(onnx=onnx_path, split=True, cut_tensors=["no_such_tensor"])
    errors = []
    assert cli.run(bad, log=logs.append, error=errors.append, trt=fake) == \
        cli.EXIT_BAD_PARAMETERS
    assert "cut_tensors" in errors[0] and "no_such_tensor" in errors[0]
