"""The nodes as users run them: their own processes, real DDS, signals, --help, parameter fuzz."""
from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/test.sh)")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built (run scripts/setup_env.sh)")

from rcl_interfaces.msg import Parameter as ParameterMsg  # noqa: E402
from rcl_interfaces.msg import ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import GetParameters, SetParameters  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

from ros_harness import domain_id, isolated_context, spin_until  # noqa: E402
from trt_infer_ros.ros.image_conversion import array_to_image  # noqa: E402

NODES = ("detector_node", "image_source_node")


def console(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed as a console command (run scripts/setup_env.sh)")
    return path


def start_node(name: str, *ros_args: str) -> subprocess.Popen:
    """The console command in its own process; ROS logs go to stdout so stderr holds only what
    escaped the logger (tracebacks, C++ aborts)."""
    env = dict(os.environ, RCUTILS_LOGGING_USE_STDOUT="1", RCUTILS_LOGGING_BUFFERED_STREAM="0",
               PYTHONUNBUFFERED="1", ROS_DOMAIN_ID=str(domain_id()))
    args = [console(name), "--ros-args", "-r", "image:=/hardening/image",
            "-p", "backend:=onnxruntime", *ros_args] if name == "detector_node" else \
        [console(name), "--ros-args", "-r", "image:=/hardening/source", "-p", "rate:=50", *ros_args]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def wait_ready(proc: subprocess.Popen, word: str, timeout_s: float = 60.0) -> list[str]:
    """Read the node's stdout until a line holds `word`; fail with its output otherwise."""
    lines: list[str] = []
    found = threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if word in line:
                found.set()
        found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(timeout_s) or not any(word in line for line in lines):
        proc.kill()
        raise AssertionError(f"no {word!r} from the node; stdout:\n{''.join(lines)}\n"
                             f"stderr:\n{proc.stderr.read()}")
    return lines


@pytest.fixture
def ros():
    context = isolated_context()
    executor = SingleThreadedExecutor(context=context)
    node = rclpy.create_node("hardening_probe", context=context)
    executor.add_node(node)
    yield node, executor
    executor.remove_node(node)
    node.destroy_node()
    executor.shutdown()
    rclpy.shutdown(context=context)


class Flood:
    """Publishes 640x480 frames at about `rate_hz` from a thread of this process."""

    def __init__(self, node, rate_hz: float = 200.0):
        self._pub = node.create_publisher(
            Image, "/hardening/image", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        pixels = np.random.default_rng(0).integers(0, 255, (480, 640, 3), np.uint8)
        self._msg = array_to_image(pixels, "bgr8")
        self._period = 1.0 / rate_hz
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self._pub.publish(self._msg)
            time.sleep(self._period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# -- --help ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NODES + ("engine_builder_node",))
@pytest.mark.parametrize("form", [["--help"], ["-h"], ["--help", "--ros-args", "-p", "x:=1"]])
def test_help_lists_the_parameters_and_exits(name, form):
    done = subprocess.run([console(name), *form], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    expected = {"detector_node": "score_threshold", "image_source_node": "rate",
                "engine_builder_node": "precision"}[name]
    assert expected in done.stdout
    assert "Traceback" not in done.stderr


# -- stopping ---------------------------------------------------------------------------------
def wait_until_catching(proc: subprocess.Popen, sig: int, timeout_s: float = 30.0) -> None:
    """Until the process has its own handler for `sig` (SigCgt in /proc): before that, a
    signal lands in Python's start-up, which no program can make quiet."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with open(f"/proc/{proc.pid}/status") as status:
            caught = next(int(line.split()[1], 16) for line in status
                          if line.startswith("SigCgt:"))
        if caught & (1 << (sig - 1)):
            return
        time.sleep(0.005)
    raise AssertionError(f"the node never caught signal {sig}")


@pytest.mark.parametrize("moment", ["loading", "warming up", "ready:"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_detector_stops_quietly_while_starting(moment, sig):
    """A stop that lands before spinning begins (model loading, warm-up, the first instant)."""
    proc = start_node("detector_node")
    if moment == "loading":             # our handlers are in, imports or model load go on
        wait_until_catching(proc, signal.SIGTERM)
    else:
        wait_ready(proc, moment)
    proc.send_signal(sig)
    rc = proc.wait(timeout=30)
    stderr = proc.stderr.read()
    assert rc == 0 and stderr == "", stderr


STOPS = {"SIGINT": [signal.SIGINT], "SIGTERM": [signal.SIGTERM],
         "SIGINT twice": [signal.SIGINT, signal.SIGINT],
         "SIGTERM then SIGINT": [signal.SIGTERM, signal.SIGINT]}


@pytest.mark.parametrize("stop", list(STOPS))
def test_detector_stops_quietly_during_a_flood(ros, stop):
    node, executor = ros
    proc = start_node("detector_node")
    wait_ready(proc, "ready:")
    spinner = threading.Thread(target=spin_until, args=(executor, lambda: False, 2.5),
                               daemon=True)
    with Flood(node):
        spinner.start()
        time.sleep(1.5)                 # frames are in flight, results being published
        for sig in STOPS[stop]:
            proc.send_signal(sig)
            time.sleep(0.05)
        rc = proc.wait(timeout=30)
    spinner.join()
    stderr = proc.stderr.read()
    assert rc == 0, stderr
    assert stderr == "", stderr


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM", "SIGINT twice"])
def test_image_source_stops_quietly(stop):
    proc = start_node("image_source_node")
    wait_ready(proc, "publishing")
    time.sleep(0.5)
    for sig in STOPS[stop]:
        proc.send_signal(sig)
        time.sleep(0.05)
    rc = proc.wait(timeout=30)
    stderr = proc.stderr.read()
    assert rc == 0 and stderr == "", stderr


def test_integer_for_a_double_at_start_up():
    """`ros2 launch ... rate:=5` passes an INTEGER; a double parameter takes it."""
    proc = start_node("image_source_node", "-p", "rate:=5")
    lines = wait_ready(proc, "publishing")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    assert any("at 5 Hz" in line for line in lines), lines


# -- parameter fuzz through the set_parameters service (what `ros2 param set` calls) ---------
def _value(v) -> ParameterValue:
    if isinstance(v, bool):
        return ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=v)
    if isinstance(v, int):
        return ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=v)
    if isinstance(v, float):
        return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=v)
    if isinstance(v, str):
        return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=v)
    return ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=v)


FUZZ = [  # (parameter, value, accepted)
    ("score_threshold", 1, True), ("score_threshold", 0, True), ("score_threshold", 0.5, True),
    ("score_threshold", 1.0000001, False), ("score_threshold", -1e-9, False),
    ("score_threshold", math.nan, False), ("score_threshold", math.inf, False),
    ("score_threshold", "0.5", False), ("score_threshold", True, False),
    ("nms_iou_threshold", 1.0000001, False), ("nms_iou_threshold", 1, True),
    ("max_detections", 0, False), ("max_detections", 2 ** 62, False),
    ("max_detections", 5.0, False), ("max_detections", 1000, True),
    ("class_filter", "0", True), ("class_filter", "person,car", True), ("class_filter", 2, True),
    ("class_filter", 80, False), ("class_filter", -1, False), ("class_filter", 1.5, False),
    ("class_filter", "²", False), ("class_filter", "①", False), ("class_filter", "٣", False),
    ("class_filter", "𝟑", False), ("class_filter", "1" * 5000, False),
    ("class_filter", "0" * 4301, False), ("class_filter", ",,,,", False),
    ("class_filter", "   ", False),
    ("class_filter", ["person"], False), ("class_filter", "", True),
    ("enable", 1, False), ("enable", True, True),
    ("model_path", "/tmp/x.onnx", False), ("backend", "tinygrad", False),
]


def test_parameter_fuzz_leaves_the_node_alive_and_strict(ros):
    node, executor = ros
    proc = start_node("detector_node")
    try:
        wait_ready(proc, "ready:")
        setter = node.create_client(SetParameters, "/detector_node/set_parameters")
        getter = node.create_client(GetParameters, "/detector_node/get_parameters")
        assert spin_until(executor, setter.service_is_ready, 20.0), "no set_parameters service"

        def call(client, request):
            future = client.call_async(request)
            assert spin_until(executor, future.done, 20.0), "the node stopped answering"
            return future.result()

        def get(name):
            value = call(getter, GetParameters.Request(names=[name])).values[0]
            return {ParameterType.PARAMETER_DOUBLE: value.double_value,
                    ParameterType.PARAMETER_INTEGER: value.integer_value,
                    ParameterType.PARAMETER_STRING: value.string_value,
                    ParameterType.PARAMETER_BOOL: value.bool_value}[value.type]

        wrong = []
        for name, value, accepted in FUZZ:
            before = get(name)
            result = call(setter, SetParameters.Request(
                parameters=[ParameterMsg(name=name, value=_value(value))])).results[0]
            after = get(name)
            if result.successful != accepted:
                wrong.append((name, repr(value)[:30], result.reason))
            if not accepted:
                assert after == before, (name, value)
                assert result.reason, (name, value)
            assert proc.poll() is None, f"the node died on {name}={value!r}"
        assert not wrong, wrong
        assert get("score_threshold") == 0.5 and isinstance(get("score_threshold"), float)

        # Still detecting after all that.
        got = []
        node.create_subscription(Detection2DArray, "/detector_node/detections", got.append, 10)
        pub = node.create_publisher(Image, "/hardening/image", 1)
        frame = array_to_image(np.zeros((240, 320, 3), np.uint8), "bgr8")
        assert spin_until(executor, lambda: pub.get_subscription_count() > 0, 10.0)
        deadline = time.monotonic() + 20.0
        while not got and time.monotonic() < deadline:
            pub.publish(frame)
            spin_until(executor, lambda: bool(got), 0.3)
        assert got, "no detections after the fuzz"
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=30)
    stderr = proc.stderr.read()
    assert rc == 0 and "Traceback" not in stderr, stderr


# -- installed share/ ---------------------------------------------------------------------------
def test_share_holds_real_directories_that_launch_lookups_find():
    """ros2launch walks share/<pkg> with os.walk, which does not enter a symlinked directory."""
    if not os.environ.get("AMENT_PREFIX_PATH"):
        pytest.skip("AMENT_PREFIX_PATH unset (source scripts/env.sh)")
    from ament_index_python.packages import get_package_share_directory

    share = get_package_share_directory("trt_infer_ros")
    for folder in ("launch", "config", "models"):
        path = os.path.join(share, folder)
        assert os.path.isdir(path) and not os.path.islink(path), path
    found = {f for _, _, files in os.walk(share) for f in files}
    assert {"detect.launch.py", "build_engine.launch.py", "detector.yaml",
            "centernet_mobilenetv3_coco.onnx"} <= found


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


# -- frames lost in transport -------------------------------------------------------------------
_UDP_PUBLISHER = """
import sys, time
import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from trt_infer_ros.ros.image_conversion import array_to_image
rclpy.init()
node = rclpy.create_node("udp_flood")
pub = node.create_publisher(Image, "/hardening/lossy", qos_profile_sensor_data)
msg = array_to_image(np.random.default_rng(1).integers(0, 255, (1080, 1920, 3), np.uint8), "bgr8")
deadline = time.monotonic() + 10
while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(0.5)
for _ in range(int(sys.argv[1])):
    pub.publish(msg)
    time.sleep(1 / 60)
time.sleep(1.0)
"""


def test_frames_lost_in_transport_are_counted(ros):
    """1080p frames over plain fragmented UDP, best effort: most never arrive whole, and the
    message-lost event says how many (the count detector_node reports apart from skipped)."""
    from trt_infer_ros.ros.lost_messages import LostMessageCounter

    node, executor = ros
    counter = LostMessageCounter()
    received = []
    from rclpy.qos import qos_profile_sensor_data
    node.create_subscription(Image, "/hardening/lossy", received.append, qos_profile_sensor_data,
                             **counter.subscription_kwargs())
    sent = 60
    env = dict(os.environ, FASTDDS_BUILTIN_TRANSPORTS="UDPv4", ROS_DOMAIN_ID=str(domain_id()))
    proc = subprocess.Popen([sys.executable, "-c", _UDP_PUBLISHER, str(sent)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    spin_until(executor, lambda: proc.poll() is not None, 60.0)
    spin_until(executor, lambda: False, 1.0)
    assert proc.wait(timeout=10) == 0, proc.stdout.read()
    lost = counter.take()
    assert len(received) < sent, "nothing was lost: this transport should not keep up"
    assert lost > 0, f"{sent - len(received)} frames missing but none reported lost"
    assert len(received) + lost <= sent
    assert counter.take() == 0
