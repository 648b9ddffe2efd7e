"""CUDA layer: errors, buffers, NVRTC cache, graph capture/replay/update, no memory growth."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

SCALE_SRC = r'''
extern "C" __global__ void scale_add(const float* x, float* y, float a, float b, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] * a + b;
}
'''


def test_error_carries_cuda_name(cuda_context):
    from trt_infer_ros.cuda.buffers import DeviceBuffer
    from trt_infer_ros.cuda.errors import CudaError

    with pytest.raises(CudaError) as info:
        DeviceBuffer(cuda_context, 1 << 50)          # 1 PiB
    assert info.value.name == "CUDA_ERROR_OUT_OF_MEMORY"
    assert "cuMemAlloc" in str(info.value)


def test_nvrtc_compile_error_is_reported(cuda_context):
    from trt_infer_ros.cuda.errors import CudaError
    from trt_infer_ros.cuda.nvrtc import Module

    with pytest.raises(CudaError) as info:
        Module(cuda_context, "extern \"C\" __global__ void k() { undefined_name(); }", "bad.cu")
    assert "NVRTC_ERROR_COMPILATION" in info.value.name
    assert "undefined_name" in str(info.value)


def test_nvrtc_cache_memory_and_disk(cuda_context, tmp_path, monkeypatch):
    from trt_infer_ros.cuda import nvrtc

    monkeypatch.setenv("TRT_INFER_ROS_CACHE", str(tmp_path))
    src = SCALE_SRC + f"\n// unique {tmp_path.name}\n"
    before = dict(nvrtc.stats)
    a = nvrtc.compile_source(src, "s.cu", cuda_context.arch)
    b = nvrtc.compile_source(src, "s.cu", cuda_context.arch)
    assert a == b
    assert nvrtc.stats["compiled"] == before["compiled"] + 1
    assert nvrtc.stats["memory_hits"] == before["memory_hits"] + 1
    assert len(list((tmp_path / "nvrtc").iterdir())) == 1
    nvrtc._memory_cache.clear()
    c = nvrtc.compile_source(src, "s.cu", cuda_context.arch)
    assert c == a and nvrtc.stats["disk_hits"] == before["disk_hits"] + 1
    # another option is another key
    nvrtc.compile_source(src, "s.cu", cuda_context.arch, ["--fmad=false"])
    assert nvrtc.stats["compiled"] == before["compiled"] + 2


def _scale_kernel(ctx):
    from trt_infer_ros.cuda.nvrtc import Module

    return Module(ctx, SCALE_SRC, "scale.cu").kernel("scale_add")


def test_graph_replay_equals_eager_and_update(cuda_context, stream, rng_seed):
    from trt_infer_ros.cuda.buffers import DeviceBuffer, PinnedBuffer, copy_async
    from trt_infer_ros.cuda.graph import capture

    rng = np.random.default_rng(rng_seed)
    n = 1 << 16
    k = _scale_kernel(cuda_context)
    h_in = PinnedBuffer(cuda_context, 4 * n)
    h_out = PinnedBuffer(cuda_context, 4 * n)
    x, y = DeviceBuffer(cuda_context, 4 * n), DeviceBuffer(cuda_context, 4 * n)

    def frame(a):
        copy_async(x.ptr, h_in.ptr, 4 * n, stream)
        k.launch(((n + 255) // 256, 1, 1), (256, 1, 1),
                 [x.ptr, y.ptr, ctypes.c_float(a), ctypes.c_float(1.0), ctypes.c_int32(n)], stream)
        copy_async(h_out.ptr, y.ptr, 4 * n, stream)

    graph = capture(stream, lambda: frame(2.0))
    exe = graph.instantiate()
    for _ in range(3):
        data = rng.standard_normal(n).astype(np.float32)
        h_in.view(np.float32)[:] = data
        h_out.view(np.float32)[:] = np.nan
        frame(2.0)                                   # eager
        stream.synchronize()
        eager = h_out.view(np.float32).copy()
        h_out.view(np.float32)[:] = np.nan
        exe.launch(stream)                           # replay
        stream.synchronize()
        np.testing.assert_array_equal(h_out.view(np.float32), eager)
        np.testing.assert_array_equal(eager, data * np.float32(2.0) + np.float32(1.0))
    # update the executable graph with new kernel parameters (same topology)
    g2 = capture(stream, lambda: frame(-3.0))
    assert exe.update(g2)
    data = rng.standard_normal(n).astype(np.float32)
    h_in.view(np.float32)[:] = data
    exe.launch(stream)
    stream.synchronize()
    # (the kernel may fuse multiply-add: compare to float32 rounding)
    np.testing.assert_allclose(h_out.view(np.float32), data * np.float32(-3.0) + np.float32(1.0),
                               rtol=1e-6, atol=1e-6)
    for obj in (exe, graph, g2, x, y, h_in, h_out):
        obj.close()


def test_chain_runs_parts_in_order(cuda_context, stream):
    from trt_infer_ros.cuda.buffers import DeviceBuffer
    from trt_infer_ros.cuda.graph import capture, chain

    n = 4096
    k = _scale_kernel(cuda_context)
    x, y = DeviceBuffer(cuda_context, 4 * n), DeviceBuffer(cuda_context, 4 * n)
    x.upload(np.arange(n, dtype=np.float32))
    launch = lambda a, b, src, dst: k.launch(((n + 255) // 256, 1, 1), (256, 1, 1), [  # noqa: E731
        src.ptr, dst.ptr, ctypes.c_float(a), ctypes.c_float(b), ctypes.c_int32(n)], stream)
    g1 = capture(stream, lambda: launch(2.0, 0.0, x, y))    # y = 2x
    g2 = capture(stream, lambda: launch(1.0, 5.0, y, x))    # x = y + 5
    whole = chain(cuda_context, [g1, g2, g1])               # y = 2(2x + 5)
    exe = whole.instantiate()
    exe.launch(stream)
    stream.synchronize()
    out = np.empty(n, np.float32)
    y.download(out)
    np.testing.assert_array_equal(out, 2 * (2 * np.arange(n, dtype=np.float32) + 5))
    assert whole.node_count() == 3
    for obj in (exe, whole, g1, g2, x, y):
        obj.close()


def test_no_memory_growth_over_10000_frames(cuda_context, stream):
    """10,000 rounds of buffer create/free and 10,000 graph replays leave device memory as it was."""
    from trt_infer_ros.cuda.buffers import DeviceBuffer, PinnedBuffer, copy_async
    from trt_infer_ros.cuda.graph import capture

    k = _scale_kernel(cuda_context)
    n = 1 << 14
    cuda_context.synchronize()
    free_before, _ = cuda_context.mem_info()
    for _ in range(10_000):
        d = DeviceBuffer(cuda_context, 4 * n)
        p = PinnedBuffer(cuda_context, 4096)
        d.close()
        p.close()
    x, y = DeviceBuffer(cuda_context, 4 * n), DeviceBuffer(cuda_context, 4 * n)
    h = PinnedBuffer(cuda_context, 4 * n)

    def frame():
        copy_async(x.ptr, h.ptr, 4 * n, stream)
        k.launch((n // 256, 1, 1), (256, 1, 1),
                 [x.ptr, y.ptr, ctypes.c_float(1.5), ctypes.c_float(0.0), ctypes.c_int32(n)], stream)
        copy_async(h.ptr, y.ptr, 4 * n, stream)

    graph = capture(stream, frame)
    exe = graph.instantiate()
    exe.launch(stream)
    stream.synchronize()
    free_warm, _ = cuda_context.mem_info()
    for _ in range(10_000):
        exe.launch(stream)
    stream.synchronize()
    free_after_replays, _ = cuda_context.mem_info()
    for obj in (exe, graph, x, y, h):
        obj.close()
    cuda_context.synchronize()
    free_end, _ = cuda_context.mem_info()
    assert free_after_replays == free_warm, "graph replays allocated device memory"
    assert free_end >= free_before - (2 << 20), f"{(free_before - free_end) / 2**20:.1f} MiB not freed"
