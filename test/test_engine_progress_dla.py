"""Build progress (TensorRT >= 10 monitor, older heartbeat) and the DLA report parsers."""
from __future__ import annotations

import threading
import time

import pytest
from fakes.fake_tensorrt import FakeTensorRT

from trt_infer_ros.engine import dla_report
from trt_infer_ros.engine.progress import Heartbeat, ProgressState, make_progress_monitor


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_progress_state_logs_phase_paths_and_throttled_percent():
    lines, clock = [], Clock()
    state = ProgressState(lines.append, min_percent_step=25.0, clock=clock)
    state.phase_start("Building", None, 2)
    state.phase_start("Tactics", "Building", 100)
    clock.t += 65
    for step in range(100):
        assert state.step_complete("Tactics", step) is True
    state.phase_finish("Tactics")
    state.phase_finish("Building")
    percents = [line for line in lines if "Building > Tactics: " in line and "%" in line]
    assert [p.split(": ")[1].split("%")[0] for p in percents] == ["25", "50", "75", "100"]
    assert percents[0].startswith("[01:05]")
    assert lines[0] == "[00:00] Building: started (2 steps)"
    assert lines[-1].endswith("Building: done")


def test_progress_cancel_returns_false_to_tensorrt():
    state = ProgressState(lambda _: None)
    state.phase_start("p", None, 3)
    state.cancelled.set()
    assert state.step_complete("p", 0) is False


def test_progress_monitor_is_thread_safe():
    lines = []
    state = ProgressState(lines.append, min_percent_step=1.0)
    for i in range(4):
        state.phase_start(f"phase{i}", None, 200)

    def work(i):
        for s in range(200):
            state.step_complete(f"phase{i}", s)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum("100%" in line for line in lines) == 4


@pytest.mark.parametrize("version,has_monitor", [("8.5.3", False), ("8.6.1", False),
                                                 ("10.3.0", True), ("11.0.0", True)])
def test_monitor_exists_from_tensorrt_10(version, has_monitor):
    fake = FakeTensorRT(version)
    monitor = make_progress_monitor(fake, lambda _: None)
    assert (monitor is not None) == has_monitor
    if has_monitor:
        assert isinstance(monitor, fake.IProgressMonitor)
        monitor.phase_start("x", None, 1)
        assert monitor.step_complete("x", 0) is True


def test_heartbeat_logs_elapsed_time_until_stopped():
    lines = []
    with Heartbeat(lines.append, interval_s=0.02) as beat:
        time.sleep(0.15)
    n = beat.beats
    time.sleep(0.05)
    assert n >= 2 and beat.beats == n                      # stopped with the block
    assert all("elapsed" in line for line in lines[:-1])
    assert lines[-1].startswith("building engine: finished after 00:00")


# --- DLA report ------------------------------------------------------------------------------

TRT8_LOG = """[I] [TRT] ---------- Layers Running on DLA ----------
[I] [TRT] [DlaLayer] {ForeignNode[/model.0/conv/Conv.../model.9/cv2/act/Mul]}
[I] [TRT] [DlaLayer] {ForeignNode[/model.12/Concat.../model.21/m.0/cv2/act/Mul]}
[I] [TRT] ---------- Layers Running on GPU ----------
[I] [TRT] [GpuLayer] RESIZE: /model.10/Resize
[I] [TRT] [GpuLayer] SHUFFLE: /model.22/Reshape
[I] [TRT] [GpuLayer] SOFTMAX: /model.22/dfl/Softmax
[I] [TRT] [MemUsageChange] Init cuDNN: CPU +0, GPU +0, now: CPU 900, GPU 4000 (MiB)
"""

OLD_LOG = """--------------- Layers running on DLA:
{conv1,relu1,conv2}, {conv3,relu3},
--------------- Layers running on GPU:
reshape, transpose,
[TensorRT] INFO: Detected 1 inputs and 1 output network tensors.
"""


def test_placement_from_the_tensorrt_8_log():
    placement = dla_report.placement_from_log(TRT8_LOG.splitlines())
    assert (placement.dla_subgraphs, placement.gpu_layers) == (2, 3)
    placement.dla_network_layers = 27
    assert placement.gpu_fraction == pytest.approx(3 / 30)


def test_placement_from_the_older_log_format():
    placement = dla_report.placement_from_log(OLD_LOG.splitlines())
    assert (placement.dla_layers, placement.dla_subgraphs, placement.gpu_layers) == (5, 2, 2)


def test_no_placement_sections_means_none():
    assert dla_report.placement_from_log(["[I] [TRT] nothing about DLA"]) is None


def test_placement_from_the_engine_inspector():
    info = ('{"Layers": [{"Name": "images to nvm", "LayerType": "Reformat"},'
            '{"Name": "{ForeignNode[Conv_0...Relu_9]}", "LayerType": "DLA"},'
            '{"Name": "output from nvm", "LayerType": "Reformat"},'
            '{"Name": "Reshape_10", "LayerType": "Shuffle"}]}')
    placement = dla_report.placement_from_inspector(info)
    assert (placement.dla_layers, placement.gpu_layers) == (1, 1)


def test_fallback_warning_threshold():
    assert dla_report.fallback_warning(0.2, 0.25, "x") is None
    assert "30% of the layers run on the GPU" in dla_report.fallback_warning(0.3, 0.25, "x")


def test_plan_lists_layers_dla_cannot_take(tmp_path):
    from test_engine_builder import conv_graph
    fake = FakeTensorRT("10.3.0", dla_cores=1)
    network = fake.Builder(None).create_network(0)
    fake.OnnxParser(network, None).parse_from_file(conv_graph(tmp_path / "m.onnx"))
    plan = dla_report.plan_dla(network, fake.IBuilderConfig())
    assert plan.total_layers == 5 and len(plan.gpu_only) == 2
    assert plan.lines()[0].startswith("DLA cannot take 2 of 5 layers (40%)")
