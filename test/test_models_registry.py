"""Model-family detection from ONNX graphs and adapter construction."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from onnx_graphs import save_export
from trt_infer_ros.models.registry import create_adapter, detect_model_type, normalize_model_type
from trt_infer_ros.models.yolo import grid_size

G = grid_size(320, 320)                       # 2100 anchor points at 320x320


def declared_graph(tmp_path, out_shape, in_shape=(1, 3, 320, 320), in_type=TensorProto.FLOAT,
                   name="declared.onnx"):
    """A graph with the given declared input/output shapes (dims may be symbolic strings).

    Its output is a constant: the registry only reads the graph, it never runs it.
    """
    const = helper.make_tensor("v", TensorProto.FLOAT, [1], [0.0])
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["output0"], value=const)], "g",
        [helper.make_tensor_value_info("images", in_type, list(in_shape))],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(out_shape))])
    path = tmp_path / name
    onnx.save(helper.make_model(graph), str(path))
    return str(path)


@pytest.mark.parametrize("out_shape, family", [
    ((1, 84, G), "yolov8"),
    ((1, 6, G), "yolov8"),                                 # 2 classes
    ((1, 3 * G, 85), "yolov5"),
    ((1, 3 * G, 6), "yolov5"),                             # 1 class: still 3 anchors per cell
    ((1, 3 * grid_size(320, 320, (8, 16, 32, 64)), 85), "yolov5"),   # P6 head
    ((1, G, 85), "yolox"),
    ((1, 100, 6), "yolo_end2end"),             # NCHW float input: Ultralytics end-to-end
])
def test_detect_model_type_by_output_shape(tmp_path, out_shape, family):
    assert detect_model_type(declared_graph(tmp_path, out_shape)) == family


def test_dynamic_exports(tmp_path):
    # Ultralytics' dynamic export: [batch, 84, anchors] from [batch, 3, height, width].
    path = save_export(tmp_path / "dyn.onnx", {"output0": np.zeros((1, 84, 2100), np.float32)},
                       input_shape=("batch", 3, "h", "w"),
                       declared={"output0": ("batch", 84, "anchors")})
    # 3 classes, anchors declared dynamic; the graph really outputs [1, 7, 2100].
    three = save_export(tmp_path / "b.onnx", {"output0": np.zeros((1, 7, 2100), np.float32)},
                        input_shape=(1, 3, 320, 320), declared={"output0": (1, 7, "n")})
    assert create_adapter("auto", three).class_names == ["0", "1", "2"]
    assert detect_model_type(path) == "yolov8"
    adapter = create_adapter("auto", path, input_size=416)
    assert adapter.input_spec.shape == (1, 3, 416, 416) and len(adapter.class_names) == 80


def test_a_classifier_is_refused_as_such(tmp_path):
    path = declared_graph(tmp_path, (1, 1000))
    with pytest.raises(ValueError, match=r"output \[1,1000\] is a classifier, not a detector"):
        detect_model_type(path)
    # Naming a family does not help: the refusal says why instead of advising model_type.
    with pytest.raises(ValueError, match="classifier, not a detector") as err:
        create_adapter("yolov8", path)
    assert "set model_type" not in str(err.value).lower()


def test_ambiguous_graph_names_the_candidates(tmp_path):
    # Dynamic input size: 8400 rows of 85 could be YOLOv5 or YOLOX.
    path = declared_graph(tmp_path, (1, 8400, 85), in_shape=(1, 3, "h", "w"))
    with pytest.raises(ValueError, match=r"yolov5 or yolox.*model_type"):
        detect_model_type(path)
    # Naming the family resolves it, and input_size fills the dynamic dimensions.
    adapter = create_adapter("yolov5", path, input_size=(640, 480))
    assert (adapter.input_spec.width, adapter.input_spec.height) == (640, 480)


def test_input_size_layout_and_dtype_come_from_the_graph(tmp_path):
    path = declared_graph(tmp_path, (1, 100, 6), in_shape=(1, 320, 416, 3),
                          in_type=TensorProto.FLOAT16)
    spec = create_adapter("auto", path).input_spec
    assert (spec.width, spec.height, spec.layout, spec.dtype) == (416, 320, "NHWC", "float16")


def test_static_input_shape_wins_and_conflicts_are_errors(tmp_path):
    path = declared_graph(tmp_path, (1, 84, grid_size(96, 64)), in_shape=(1, 3, 64, 96))
    spec = create_adapter("auto", path).input_spec
    assert (spec.width, spec.height, spec.layout, spec.dtype) == (96, 64, "NCHW", "float32")
    assert create_adapter("yolov8", path, input_size=(96, 64)).input_spec.width == 96
    with pytest.raises(ValueError, match="input_size"):
        create_adapter("yolov8", path, input_size=640)


def test_defaults_without_a_model_file():
    assert create_adapter("centernet").input_spec.shape == (1, 512, 512, 3)
    assert create_adapter("yolov8").input_spec.shape == (1, 3, 640, 640)
    assert create_adapter("yolov5", input_size=320).input_spec.shape == (1, 3, 320, 320)
    assert create_adapter("end2end").nms_inside
    assert create_adapter("yolov8", input_spec_overrides={"color": "BGR"}).input_spec.color == "BGR"


def test_model_type_names():
    assert normalize_model_type("YOLO11") == "yolov8"
    assert normalize_model_type("yolo-x") == "yolox"
    with pytest.raises(ValueError, match="choose one of"):
        normalize_model_type("ssd")
    with pytest.raises(ValueError, match="needs a model file"):
        create_adapter("auto")


def test_models_are_read_without_the_onnx_package(tmp_path):
    """onnx is optional at run time: onnxruntime reports the same I/O, so auto-detection and
    the pipeline work the same (detections included) on an install without it."""
    import subprocess
    import sys

    import cv2

    from trt_infer_ros.pipeline.detector import build_pipeline
    from trt_infer_ros.resources import default_model_path, sample_images_dir

    # A YOLOv8-shaped graph onnxruntime can load: its output really is [1, 84, G].
    zeros = helper.make_tensor("z", TensorProto.FLOAT, [1, 84, G], np.zeros(84 * G, np.float32))
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["output0"], value=zeros)], "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 320, 320])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 84, G])])
    yolo = str(tmp_path / "yolo.onnx")
    onnx.save(helper.make_model(graph, ir_version=9, opset_imports=[helper.make_opsetid("", 17)]),
              yolo)
    model, photo = str(default_model_path()), str(sample_images_dir() / "astronaut.jpg")
    script = (
        "import sys\n"
        "sys.modules['onnx'] = None   # import onnx raises ImportError, as on a bare install\n"
        "import cv2\n"
        "from trt_infer_ros.models.registry import detect_model_type\n"
        "from trt_infer_ros.pipeline.detector import build_pipeline\n"
        "print(detect_model_type(sys.argv[1]), detect_model_type(sys.argv[2]))\n"
        "dets = build_pipeline(sys.argv[2], backend='onnxruntime')(cv2.imread(sys.argv[3]), 'bgr8')\n"
        "print(sorted(int(c) for c in dets.class_ids))\n")
    done = subprocess.run([sys.executable, "-c", script, yolo, model, photo],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    families, classes = done.stdout.splitlines()
    assert families == "yolov8 centernet"
    with_onnx = build_pipeline(model, backend="onnxruntime")(cv2.imread(photo), "bgr8")
    assert classes == str(sorted(int(c) for c in with_onnx.class_ids))
