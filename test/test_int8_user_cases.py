"""`trt_infer_ros_int8` as a new user meets it: outputs that would replace the user's files,
arguments out of range, a single image, a low reference threshold and Ctrl-C. Each bad input is
refused with one sentence, a non-zero status and nothing written."""
import os
import signal
import subprocess
import sys

import cv2
import numpy as np
import onnx
import pytest

pytest.importorskip("tinygrad", reason="the optimize tools need tinygrad (Python 3.11 or later)")
pytest.importorskip("pycocotools", reason="the agreement measure needs pycocotools")

from test_optimize_search import make_detector
from trt_infer_ros.optimize.cli import BAD_INPUT, main

HERE = os.path.dirname(os.path.abspath(__file__))


def write_images(directory, count, size=64):
    rng = np.random.default_rng(0)
    directory.mkdir()
    for i in range(count):
        image = (rng.uniform(0, 255, (size, size, 3)) * rng.uniform(0.2, 1.0, 3)).astype(np.uint8)
        cv2.imwrite(str(directory / f"im{i}.png"), image)
    return str(directory)


@pytest.fixture
def images(tmp_path):
    return write_images(tmp_path / "images", 9)


def search_args(model, images, out):
    return ["search", model, "--images", images, "--model-type", "centernet",
            "--method", "minmax", "--target", "0.9", "--out", str(out)]


def test_out_holding_other_files_is_refused_and_left_alone(tmp_path, images, caplog):
    model = make_detector(tmp_path / "det.onnx")
    assert main(search_args(model, images, tmp_path)) == BAD_INPUT
    assert "already holds other files" in caplog.text
    assert os.path.isfile(model) and len(os.listdir(images)) == 9
    assert main(search_args(model, images, model)) == BAD_INPUT
    assert "is a file, not a directory" in caplog.text
    assert sorted(os.listdir(tmp_path)) == ["det.onnx", "images"]


def test_a_previous_run_is_replaced(tmp_path, images):
    model = make_detector(tmp_path / "det.onnx")
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("{}")        # a previous report's file
    assert main(search_args(model, images, out)) == 0
    assert sorted(os.listdir(out)) == ["det.qdq.onnx", "layer_precisions.yaml", "search.json"]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".int8")]


def test_cache_that_is_the_model_or_a_directory_is_refused(tmp_path, images, caplog):
    model = make_detector(tmp_path / "det.onnx")
    before = open(model, "rb").read()
    common = ["--images", images, "--model-type", "centernet"]
    assert main(["calibrate", model, "--cache", model] + common) == BAD_INPUT
    assert "is the model itself" in caplog.text
    assert main(["calibrate", model, "--cache", images] + common) == BAD_INPUT
    assert "is a directory" in caplog.text
    assert open(model, "rb").read() == before
    assert sorted(os.listdir(tmp_path)) == ["det.onnx", "images"]


@pytest.mark.parametrize("option, value", [
    ("--percentile", "300"), ("--holdout", "1"), ("--augment", "-1"), ("--limit", "-2"),
    ("--reference-threshold", "0"), ("--target", "nan")])
def test_arguments_out_of_range_are_refused_before_any_work(tmp_path, images, option, value,
                                                            capsys):
    model = make_detector(tmp_path / "det.onnx")
    with pytest.raises(SystemExit) as exc:
        main(search_args(model, images, tmp_path / "out") + [option, value])
    assert exc.value.code == 2
    assert f"argument {option}:" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_calibrate_uses_every_image_even_one(tmp_path, caplog):
    model = make_detector(tmp_path / "det.onnx")
    one = write_images(tmp_path / "one", 1)
    cache = tmp_path / "calib.cache"
    assert main(["calibrate", model, "--images", one, "--cache", str(cache),
                 "--model-type", "centernet"]) == 0
    assert "calibrating on 1 frames" in caplog.text
    assert cache.is_file() and not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_reference_boxes_below_the_candidate_threshold_count(tmp_path, images, caplog):
    """A model whose FP32 scores are all about 0.01 (as random weights give): a reference
    threshold of 0.005 must find its boxes, and a threshold of 0.5 says so before calibrating."""
    model = make_detector(tmp_path / "det.onnx")
    low = tmp_path / "low.onnx"
    proto = onnx.load(model)
    for init in proto.graph.initializer:
        if init.name == "b4":              # score logits around -4.6: sigmoid about 0.01
            count = onnx.numpy_helper.to_array(init).size // 2
            values = np.tile(np.array([0.0, -4.6], np.float32), count)
            init.CopyFrom(onnx.numpy_helper.from_array(values, "b4"))
        if init.name == "w4":
            init.CopyFrom(onnx.numpy_helper.from_array(
                np.zeros_like(onnx.numpy_helper.to_array(init)), "w4"))
    onnx.save(proto, str(low))
    args = search_args(str(low), images, tmp_path / "out")
    assert main(args + ["--reference-threshold", "0.5"]) == BAD_INPUT
    assert "detects nothing scoring >= 0.5" in caplog.text
    assert "calibrating" not in caplog.text
    assert main(args + ["--reference-threshold", "0.005"]) == 0
    assert "FP32 reference: 12 boxes >= 0.005" in caplog.text


def test_ctrl_c_stops_with_one_line_and_writes_nothing(tmp_path, images):
    model = make_detector(tmp_path / "det.onnx")
    out = tmp_path / "out"
    code = ("import sys; from trt_infer_ros.optimize.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen(
        [sys.executable, "-c", code] + search_args(model, images, out) + ["--augment", "200"],
        stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(
            [HERE, os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")])))
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "held-out frames" in line:       # the analysis has started
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, "".join(lines) + rest
    assert "Traceback" not in rest
    assert "interrupted by SIGINT; the analysis was stopped and nothing was written" in rest
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".int8")]


# --- engine_builder_node (TensorRT through the named recording fake) ---------------------------

def run_builder(tmp_path, model, errors, **settings):
    from fakes.fake_tensorrt import FakeTensorRT  # noqa: PLC0415
    from trt_infer_ros.engine.cli import run  # noqa: PLC0415
    from trt_infer_ros.engine.options import BuildOptions  # noqa: PLC0415
    values = dict(onnx=model, precision="fp16", engine=str(tmp_path / "det.engine"))
    values.update(settings)
    return run(BuildOptions(**values), log=lambda line: None, error=errors.append,
               trt=FakeTensorRT("10.3.0"))


@pytest.mark.parametrize("output", ["engine", "timing_cache", "calibration_cache"])
def test_builder_outputs_that_are_the_model_are_refused(tmp_path, output):
    model = make_detector(tmp_path / "det.onnx")
    before = open(model, "rb").read()
    errors = []
    assert run_builder(tmp_path, model, errors, **{output: model}) == 2
    assert f"{output}: {model!r} is the ONNX model; the build would overwrite it" in errors[0]
    assert open(model, "rb").read() == before


def test_builder_engine_and_timing_cache_on_one_path_are_refused(tmp_path):
    model = make_detector(tmp_path / "det.onnx")
    errors = []
    same = str(tmp_path / "det.engine")
    assert run_builder(tmp_path, model, errors, timing_cache=same) == 2
    assert "is the engine file" in errors[0] and not os.path.exists(same)


def test_builder_output_that_is_a_hard_link_to_the_model_is_refused(tmp_path):
    model = make_detector(tmp_path / "det.onnx")
    link = str(tmp_path / "det.engine")
    os.link(model, link)
    before = open(model, "rb").read()
    errors = []
    assert run_builder(tmp_path, model, errors, engine=link) == 2
    assert "is the ONNX model" in errors[0] and open(model, "rb").read() == before


def test_gate_without_usable_validation_images_ends_in_one_message(tmp_path, images):
    model = make_detector(tmp_path / "det.onnx")
    cache = str(tmp_path / "calib.cache")
    assert main(["calibrate", model, "--images", images, "--cache", cache,
                 "--method", "minmax", "--model-type", "centernet"]) == 0
    gate = dict(precision="int8", calibration_algorithm="minmax", calibration_cache=cache,
                model_type="centernet", accuracy_target=0.5)
    empty = tmp_path / "empty"
    empty.mkdir()
    errors = []
    assert run_builder(tmp_path, model, errors, validation_images=str(empty), **gate) == 2
    assert "validation_images: no .jpg/.png/.bmp images" in errors[0]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"not a jpeg")
    assert run_builder(tmp_path, model, errors, validation_images=str(broken), **gate) == 1
    assert "accuracy gate cannot measure the engine" in errors[1] and "a.jpg" in errors[1]
    assert not os.path.exists(tmp_path / "det.engine")


def test_bags_without_one_image_topic_are_named_for_what_they_hold(tmp_path, caplog):
    from test_engine_bag_reader import png_cdr, string_cdr, write_bag  # noqa: PLC0415
    model = make_detector(tmp_path / "det.onnx")
    image = png_cdr(np.zeros((32, 48, 3), np.uint8), 1)
    two = write_bag(str(tmp_path / "two"), [("/a", "sensor_msgs/msg/CompressedImage", 1, image),
                                            ("/b", "sensor_msgs/msg/CompressedImage", 2, image)])
    text = write_bag(str(tmp_path / "text"), [("/s", "std_msgs/msg/String", 1, string_cdr("x"))])
    common = ["--cache", str(tmp_path / "c.cache"), "--model-type", "centernet"]
    assert main(["calibrate", model, "--bag", two] + common) == BAD_INPUT
    assert "several image topics ['/a', '/b']" in caplog.text
    assert main(["calibrate", model, "--bag", text] + common) == BAD_INPUT
    assert "no sensor_msgs Image or CompressedImage topic (it has /s (std_msgs/msg/String))" \
        in caplog.text
    assert main(["calibrate", model, "--bag", two, "--topic", "/b"] + common) == 0
