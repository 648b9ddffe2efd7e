"""engine_builder_node as a user runs it: the installed console command in real processes, in its
command-line form and its ROS form (--ros-args -p ...). Each bad input must end with exit status 2
naming the parameter and saying what is wrong, never with a traceback; Ctrl-C / SIGTERM end it
quietly with 130 / 143. Bags are real rosbag2 bags written with rosbags (and broken ones); plugins
are a real compiled shared library and real files that are not one."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_engine_builder import compile_shared_library, conv_graph

REPO = Path(__file__).resolve().parents[1]
COMMAND = shutil.which("engine_builder_node", path=os.path.dirname(sys.executable))

pytestmark = pytest.mark.skipif(COMMAND is None, reason="engine_builder_node is not installed in "
                                "this Python's bin directory (run scripts/setup_env.sh)")


def tensorrt_missing() -> bool:
    from trt_infer_ros.engine.trt_compat import tensorrt_unavailable_reason
    return tensorrt_unavailable_reason() is not None


def run_command(*args, timeout=120):
    proc = subprocess.run([COMMAND, *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return proc


def ros_args(*params):
    return ["--ros-args"] + [x for p in params for x in ("-p", p)]


def both_forms(**params):
    """The same parameters as CLI options and as ROS parameters."""
    cli = [x for name, value in params.items() for x in (f"--{name}", str(value))]
    ros = ros_args(*(f"{name}:={value}" for name, value in params.items()))
    return [cli, ros]


@pytest.fixture
def onnx(tmp_path):
    return conv_graph(tmp_path / "m.onnx")


# --- what a bad path actually is -------------------------------------------------------------

@pytest.mark.parametrize("form", [0, 1])
def test_a_directory_given_as_onnx_is_called_a_directory(tmp_path, form):
    proc = run_command(*both_forms(onnx=tmp_path)[form])
    assert proc.returncode == 2
    assert f"onnx: '{tmp_path}' is a directory, not an ONNX model file" in proc.stderr
    assert "not found" not in proc.stderr


def test_empty_fifo_and_non_onnx_files_are_each_named(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    text = tmp_path / "notes.onnx"
    text.write_text("not a model")
    expected = {empty: "is empty (0 bytes)", fifo: "is not a regular file",
                text: "is not an ONNX model"}
    for path, message in expected.items():
        proc = run_command("--onnx", str(path))
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr


# --- ranges, shapes, names and values --------------------------------------------------------

@pytest.mark.parametrize("name,value", [("dla_core", 16), ("workspace_mib", (1 << 20) + 1),
                                        ("calibration_count", 100001),
                                        ("calibration_batch", 257)])
def test_cli_has_the_ros_parameters_upper_limits(onnx, name, value):
    proc = run_command("--onnx", onnx, f"--{name}", str(value))
    assert proc.returncode == 2, proc.stderr
    assert f"{name}: {value} is outside the allowed range" in proc.stderr


@pytest.mark.parametrize("form", [0, 1])
def test_huge_shape_dimensions_are_refused(onnx, form):
    proc = run_command(*both_forms(onnx=onnx, input_shape="1x3x99999999999999999999999x1")[form])
    assert proc.returncode == 2, proc.stderr
    assert "input_shape:" in proc.stderr and "larger than TensorRT's limit" in proc.stderr


def test_a_misspelled_ros_parameter_is_named_with_the_real_one(onnx):
    proc = run_command(*ros_args(f"onnx:={onnx}", "precison:=fp16"))
    assert proc.returncode == 2
    assert "precison: unknown parameter; did you mean 'precision'?" in proc.stderr


def test_a_misspelled_cli_option_is_named_with_the_real_one(onnx):
    proc = run_command("--onnx", onnx, "--precison", "fp16")
    assert proc.returncode == 2
    assert "precison: unknown parameter; did you mean 'precision'?" in proc.stderr


def test_a_ros_value_rcl_cannot_parse_is_named_without_a_traceback():
    proc = run_command(*ros_args("onnx:=`"))
    assert proc.returncode == 2
    assert "onnx: the value '`' is not valid YAML" in proc.stderr


@pytest.mark.parametrize("args", [["--help"], ["--help", "--ros-args", "-p", "onnx:=x"],
                                  ["--ros-args", "-p", "onnx:=x", "--", "-h"]])
def test_help_lists_the_parameters_in_both_forms(args):
    proc = run_command(*args)
    assert proc.returncode == 0, proc.stderr
    assert "--calibration_bag" in proc.stdout and "--ros-args -p onnx:=" in proc.stdout
    assert "130  interrupted by SIGINT" in proc.stdout


# --- calibration bags ------------------------------------------------------------------------

def write_image_bag(path, storage="sqlite3", topic="/camera/image_raw", msgtype="image"):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    store = get_typestore(Stores.ROS2_HUMBLE)
    t = store.types
    header = t["std_msgs/msg/Header"](t["builtin_interfaces/msg/Time"](1, 0), "camera")
    if msgtype == "image":
        pixels = np.full(8 * 8 * 3, 100, np.uint8)
        msg, name = t["sensor_msgs/msg/Image"](header, 8, 8, "bgr8", 0, 24, pixels), \
            "sensor_msgs/msg/Image"
    else:
        msg, name = t["std_msgs/msg/String"]("hello"), "std_msgs/msg/String"
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conn = writer.add_connection(topic, name, typestore=store)
        writer.write(conn, 1, bytes(store.serialize_cdr(msg, name)))
    return path


def int8_bag_args(onnx, bag, *extra):
    return ros_args(f"onnx:={onnx}", "precision:=int8", f"calibration_bag:={bag}", *extra)


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_a_good_bag_passes_the_preflight(tmp_path, onnx, storage):
    bag = write_image_bag(tmp_path / "bag", storage)
    proc = run_command(*int8_bag_args(onnx, bag))
    assert "calibration_bag:" not in proc.stderr
    if tensorrt_missing():
        assert proc.returncode == 3, proc.stderr


def corrupt_bags(tmp_path):
    """Broken bags as users meet them: a disk-damaged database, a cut-off MCAP, a bag without
    images, a directory without storage files."""
    db3 = write_image_bag(tmp_path / "db3_bag")
    (storage,) = db3.glob("*.db3")
    data = bytearray(storage.read_bytes())
    data[100:4096] = os.urandom(4096 - 100)
    storage.write_bytes(bytes(data))
    mcap = write_image_bag(tmp_path / "mcap_bag", "mcap")
    (storage,) = mcap.glob("*.mcap")
    storage.write_bytes(storage.read_bytes()[:200])
    strings = write_image_bag(tmp_path / "string_bag", msgtype="string")
    empty = tmp_path / "empty_bag"
    empty.mkdir()
    return [db3, mcap, strings, empty]


def test_corrupt_bags_give_status_2_naming_the_bag(tmp_path, onnx):
    for bag in corrupt_bags(tmp_path):
        proc = run_command(*int8_bag_args(onnx, bag))
        assert proc.returncode == 2, (bag, proc.stderr)
        assert "calibration_bag:" in proc.stderr and bag.name in proc.stderr, proc.stderr


def test_a_bag_path_that_is_a_pipe_is_called_one(tmp_path, onnx):
    fifo = tmp_path / "bag.mcap"
    os.mkfifo(fifo)
    proc = run_command(*int8_bag_args(onnx, fifo))
    assert proc.returncode == 2
    assert "calibration_bag:" in proc.stderr and "is not a regular file" in proc.stderr


def test_a_topic_the_bag_does_not_have_is_reported(tmp_path, onnx):
    bag = write_image_bag(tmp_path / "bag")
    proc = run_command(*int8_bag_args(onnx, bag, "calibration_topic:=/front/image"))
    assert proc.returncode == 2 and "/front/image" in proc.stderr, proc.stderr


# --- plugins ---------------------------------------------------------------------------------

def test_a_plugin_that_is_not_a_shared_library_gives_status_2(tmp_path, onnx):
    script = tmp_path / "libplugin.so"
    script.write_text("#!/bin/sh\n")
    proc = run_command("--onnx", onnx, "--plugins", str(script))
    assert proc.returncode == 2
    assert "plugins:" in proc.stderr and "is not a shared library (no ELF header)" in proc.stderr


def test_a_real_shared_library_passes_the_plugin_check(tmp_path, onnx):
    plugin = compile_shared_library(tmp_path / "libplugin.so")
    proc = run_command("--onnx", onnx, "--plugins", plugin)
    assert "plugins:" not in proc.stderr
    if tensorrt_missing():
        assert proc.returncode == 3, proc.stderr


# --- with TensorRT (the recording fake) injected into the real node process ------------------

def fake_node_code(args, fake="FakeTensorRT('8.6.1')", setup=""):
    return ("import sys, time; sys.path.insert(0, 'test')\n"
            "from fakes.fake_tensorrt import FakeTensorRT\n"
            "from trt_infer_ros.engine import cli\n"
            "from trt_infer_ros.ros.engine_builder_node import run_node\n"
            f"{setup}\n"
            f"sys.exit(cli.run_interruptible(lambda: run_node(['engine_builder_node'] + {args!r}, "
            f"trt={fake})))\n")


def test_int8_calibration_without_cuda_python_is_a_parameter_problem(tmp_path, onnx):
    from trt_infer_ros.engine.builder import cuda_unavailable
    if cuda_unavailable() is None:
        pytest.skip("CUDA works here; this checks the message where it does not")
    import cv2
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.jpg"), np.full((32, 32, 3), 90, np.uint8))
    args = ros_args(f"onnx:={onnx}", "precision:=int8", f"calibration_images:={images}",
                    f"engine:={tmp_path / 'm.engine'}")
    proc = subprocess.run([sys.executable, "-c", fake_node_code(args)], capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "calibration_images: INT8 calibration" in proc.stderr and "cuda-python" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "m.engine").exists()


SLOW_FAKE = """
class SlowFake(FakeTensorRT):
    def _define(self):
        super()._define()
        builder, fake = self.Builder, self
        class SlowBuilder(builder):
            def __init__(self, logger):
                if fake.slow_preflight:
                    print('preflight waiting', file=sys.stderr, flush=True)
                    time.sleep(60)
                super().__init__(logger)
            def build_serialized_network(self, network, config):
                time.sleep(60)
        self.Builder = SlowBuilder
"""


@pytest.mark.parametrize("signum,phase", [(signal.SIGINT, "build"), (signal.SIGTERM, "build"),
                                          (signal.SIGINT, "preflight")])
def test_interrupting_a_build_exits_quietly_with_128_plus_the_signal(tmp_path, onnx, signum,
                                                                     phase):
    args = ros_args(f"onnx:={onnx}", f"engine:={tmp_path / 'm.engine'}")
    setup = SLOW_FAKE + f"f = SlowFake('10.3.0'); f.slow_preflight = {phase == 'preflight'}"
    proc = subprocess.Popen([sys.executable, "-c", fake_node_code(args, "f", setup)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            cwd=REPO)
    marker = "preflight waiting" if phase == "preflight" else "building "
    seen = []
    deadline = time.monotonic() + 60
    for line in proc.stderr:
        seen.append(line)
        if marker in line or time.monotonic() > deadline:
            break
    proc.send_signal(signum)
    rest = proc.communicate(timeout=30)[1]
    stderr = "".join(seen) + rest
    assert proc.returncode == 128 + signum, stderr
    assert f"interrupted by {signal.Signals(signum).name}" in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "m.engine").exists()
