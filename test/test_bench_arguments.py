"""The benchmark commands refuse bad arguments in one line (argparse's exit status 2) before any
node starts, and pass good ones on normalised."""
import pytest

pytest.importorskip("matplotlib", reason="matplotlib not installed (rosdep: python3-matplotlib)")

from trt_infer_ros.bench import cli, transport  # noqa: E402
from trt_infer_ros.resources import default_model_path  # noqa: E402


def refused(capsys, parse, argv) -> str:
    with pytest.raises(SystemExit) as ended:
        parse(argv)
    assert ended.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    return err[-1]


@pytest.mark.parametrize("argv, says", [
    (["--rate", "-1"], "--rate: -1 is out of range: must be > 0"),
    (["--rate", "nan"], "--rate: nan is out of range"),
    (["--frames", "0"], "--frames: 0 is out of range: must be >= 1"),
    (["--frames", "2.5"], "--frames: '2.5' is not an integer"),
    (["--drop-limit", "2"], "must be >= 0 and <= 1"),
    (["--size", "12x"], "size must be WIDTHxHEIGHT or native"),
    (["--param", "foo"], "'foo' is not NAME=VALUE"),
    (["--images", "/no/such/dir"], "not found: '/no/such/dir'"),
    (["--model", "/no/such/model.onnx"], "not found: '/no/such/model.onnx'"),
])
def test_the_graph_benchmark_refuses_bad_arguments(capsys, argv, says):
    assert says in refused(capsys, cli.graph_parser().parse_args, argv)


def test_a_file_that_is_not_onnx_is_refused_as_a_model(capsys, tmp_path):
    fake = tmp_path / "model.onnx"
    fake.write_text("not a model")
    line = refused(capsys, cli.compare_parser().parse_args, ["--model", str(fake)])
    assert "is not an ONNX model" in line


def test_an_image_directory_without_images_ends_the_command_in_one_line(tmp_path):
    with pytest.raises(SystemExit) as ended:
        cli.main(["compare", "--images", str(tmp_path)])
    assert str(ended.value) == f"trt_infer_ros_bench: no readable images in {tmp_path}"


def test_good_graph_arguments_pass(tmp_path):
    args = cli.graph_parser().parse_args(
        ["--rate", "15", "--size", "640X480", "--param", "backend=onnxruntime",
         "--images", str(tmp_path)])
    assert (args.rate, args.size, args.param) == (15.0, "640x480", ["backend=onnxruntime"])
    assert args.model == str(default_model_path())


@pytest.mark.parametrize("argv, says", [
    (["--sizes", "640x"], "size '640x' is not WIDTHxHEIGHT"),
    (["--sizes", "native"], "size 'native' is not WIDTHxHEIGHT"),
    (["--encodings", "bgr8,rgb9"], "unknown encoding: rgb9; choose from bgr8, rgb8, mono8"),
    (["--transports", "LARGE_DATA,FOO"], "unknown transport: FOO; choose from DEFAULT"),
    (["--reliability", "sometimes"], "unknown reliability: sometimes"),
    (["--burst-s", "0"], "--burst-s: 0 is out of range: must be > 0"),
    (["--gap-ms", "-5"], "--gap-ms: -5 is out of range: must be >= 0"),
])
def test_the_transport_benchmark_refuses_bad_arguments(capsys, argv, says):
    assert says in refused(capsys, transport.parser().parse_args, argv)


def test_good_transport_arguments_are_normalised():
    args = transport.parser().parse_args(
        ["--sizes", " 640X480 ,1280x720", "--encodings", "rgb8, png", "--transports",
         "SHM,CAMERA_FRAMES"])
    assert (args.sizes, args.encodings, args.transports) == (
        "640x480,1280x720", "rgb8,png", "SHM,CAMERA_FRAMES")


def test_an_unknown_transport_name_gets_no_environment():
    from trt_infer_ros.bench.dds_environment import dds_environment
    with pytest.raises(ValueError, match="unknown DDS transport 'FOO'"):
        dds_environment("FOO")


@pytest.mark.parametrize("content, says", [
    ("{", "is not readable JSON"),
    ("[]", "holds no timeline"),
    ('{"timeline": {"samples": 3}}', "holds no timeline"),
])
def test_the_plot_command_refuses_a_json_that_is_no_benchmark_result(capsys, tmp_path, content,
                                                                     says):
    from trt_infer_ros.bench import plot_cli
    path = tmp_path / "result.json"
    path.write_text(content)
    assert plot_cli.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and not (tmp_path / "result_timeline.png").exists()


def test_the_plot_command_says_what_a_directory_is(capsys, tmp_path):
    from trt_infer_ros.bench import plot_cli
    assert plot_cli.main([str(tmp_path)]) == 2
    assert "is a directory, not a result.json or a tegrastats log" in capsys.readouterr().err
