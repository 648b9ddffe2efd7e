"""TensorRTRunner's CUDA-graph logic against a recording fake of TensorRT's execution API.

`RecordingTrtExecutionFake` is NOT TensorRT: its "engine" copies the input tensor to the output
tensor with a real cuMemcpyDtoDAsync on the stream it is given, and records every call (and
whether the stream was being captured), so the runner's binding, enqueue-then-capture, graph per
input shape and eager fallback run for real on the GPU. Loading (sidecar checks, DLA core on the
runtime) belongs to build.engine_loader and is tested there.
"""
from __future__ import annotations

import logging

import numpy as np


class RecordingTrtExecutionFake:
    def __init__(self, fail_capture=False):
        self.calls = []
        self.fail_capture = fail_capture

    def engine(self):
        fake = self

        class Context:
            def __init__(self):
                self.shapes, self.addresses = {}, {}

            def set_input_shape(self, name, shape):
                fake.calls.append(("set_input_shape", name, tuple(shape)))
                self.shapes[name] = tuple(shape)
                return True

            def get_tensor_shape(self, name):
                return self.shapes["images"]          # output = copy of the input

            def set_tensor_address(self, name, ptr):
                fake.calls.append(("set_tensor_address", name, int(ptr)))
                self.addresses[name] = int(ptr)
                return True

            def execute_async_v3(self, stream_ptr):
                from cuda.bindings import driver
                from trt_infer_ros.cuda.errors import check

                stream = driver.CUstream(stream_ptr)
                status = check(driver.cuStreamIsCapturing(stream))
                capturing = int(status) != 0
                fake.calls.append(("execute_async_v3", capturing, dict(self.addresses)))
                if capturing and fake.fail_capture:
                    return False                      # what TensorRT does when it cannot be captured
                nbytes = 4 * int(np.prod(self.shapes["images"]))
                check(driver.cuMemcpyDtoDAsync(self.addresses["out"], self.addresses["images"],
                                               nbytes, stream))
                return True

        class Engine:
            def create_execution_context(self):
                fake.calls.append(("create_execution_context",))
                return Context()

        return Engine()

    def executes(self):
        return [c for c in self.calls if c[0] == "execute_async_v3"]


def make_runner(fake, use_graph=True):
    from trt_infer_ros.backends.tensorrt_runner import TensorRTRunner
    from trt_infer_ros.engine.engine_loader import LoadedEngine
    from trt_infer_ros.engine.sidecar import TensorSpec

    loaded = LoadedEngine(
        engine=fake.engine(), runtime=None, sidecar=None, path="fake.engine",
        inputs=[TensorSpec("images", "input", [-1, 3, 16, 16], "float32",
                           {"min": [1, 3, 16, 16], "opt": [1, 3, 16, 16], "max": [4, 3, 16, 16]})],
        outputs=[TensorSpec("out", "output", [-1, 3, 16, 16], "float32")])
    return TensorRTRunner("fake.engine", trt=object(), loaded=loaded, use_cuda_graph=use_graph)


def test_binds_by_name_enqueues_once_then_captures(cuda_context, rng_seed):
    fake = RecordingTrtExecutionFake()
    runner = make_runner(fake)
    try:
        names = [c[1] for c in fake.calls if c[0] == "set_tensor_address"]
        assert sorted(names) == ["images", "out"]
        ex = fake.executes()
        assert [c[1] for c in ex] == [False, True], "one eager enqueue, then the capture"
        assert ex[0][2] == {"images": runner.input_ptr, "out": runner.output_ptrs[0]}
        assert runner.uses_graph() and runner.input_shape == (1, 3, 16, 16)
        rng = np.random.default_rng(rng_seed)
        for _ in range(3):                            # replays: fresh inputs, no new capture
            x = rng.standard_normal((1, 3, 16, 16)).astype(np.float32)
            np.testing.assert_array_equal(runner.run(x)[0], x)
        assert len(fake.executes()) == 2, "replays must not call TensorRT again"
    finally:
        runner.close()


def test_one_graph_per_input_shape(cuda_context, rng_seed):
    fake = RecordingTrtExecutionFake()
    runner = make_runner(fake)
    rng = np.random.default_rng(rng_seed)
    try:
        for batch in (2, 1, 2, 3, 1):
            x = rng.standard_normal((batch, 3, 16, 16)).astype(np.float32)
            np.testing.assert_array_equal(runner.run(x)[0], x)
            assert runner.input_shape == x.shape
        captures = [c for c in fake.executes() if c[1]]
        assert len(captures) == 3                    # shapes 1, 2, 3: one graph each
        shapes = [c[2][0] for c in fake.calls if c[0] == "set_input_shape"]
        switches = [b for i, b in enumerate(shapes) if i == 0 or shapes[i - 1] != b]
        assert switches == [1, 2, 1, 2, 3, 1]         # rebinds on every shape change
    finally:
        runner.close()


def test_eager_fallback_logged_once(cuda_context, rng_seed, caplog):
    fake = RecordingTrtExecutionFake(fail_capture=True)
    rng = np.random.default_rng(rng_seed)
    with caplog.at_level(logging.WARNING, logger="trt_infer_ros.backends.tensorrt_runner"):
        runner = make_runner(fake)
        try:
            assert not runner.uses_graph()
            for batch in (1, 2, 1):
                x = rng.standard_normal((batch, 3, 16, 16)).astype(np.float32)
                np.testing.assert_array_equal(runner.run(x)[0], x)
        finally:
            runner.close()
    warnings = [r for r in caplog.records if "capture failed" in r.getMessage()]
    assert len(warnings) == 1


def test_whole_frame_is_one_graph_with_a_stream_capturable_runner(cuda_context, rng_seed):
    """FrameGraph records upload, preprocess, the runner's enqueue and the download in ONE graph."""
    from trt_infer_ros.cuda.frame_graph import FrameGraph
    from trt_infer_ros.cuda.preprocess_kernel import GpuPreprocessor, SourceLayout
    from trt_infer_ros.cuda.stream import Stream
    from trt_infer_ros.models.spec import InputSpec
    from trt_infer_ros.pipeline.preprocess import preprocess

    fake = RecordingTrtExecutionFake()
    runner = make_runner(fake)
    runner.output_shapes  # noqa: B018 - bound for shape (1,3,16,16)
    spec = InputSpec(width=16, height=16, layout="NCHW", resize="stretch")
    stream = Stream(cuda_context)
    pre = GpuPreprocessor(cuda_context, spec, SourceLayout(16, 16, 48, "bgr8"), (16, 16), (0, 0))
    frame = FrameGraph(runner, pre, None, stream)
    rng = np.random.default_rng(rng_seed)
    try:
        assert frame.mode == "one_graph"
        captured_before = len(fake.executes())
        for _ in range(3):
            image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            frame.stage_image(image)
            frame.launch()
            frame.synchronize()
            want, _ = preprocess(image, "bgr8", spec)
            np.testing.assert_array_equal(frame.host_outputs()[0], want)
        assert len(fake.executes()) == captured_before
    finally:
        frame.close()
        stream.close()
        runner.close()
