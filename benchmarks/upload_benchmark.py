"""A camera frame's trip from host memory to the GPU, each way the frame pipeline could take it,
side by side in one run.

  python benchmarks/upload_benchmark.py [--size 1280x720] [--rounds 3] [--frames 300]

Rows (host wall time per frame, until the pixels are on the device; medians with p10/p90):
  copy into pinned only      np.copyto of the frame into a pinned buffer
  transfer from pinned only  cuMemcpyHtoDAsync from that pinned buffer + synchronize
  pinned staging             the two in sequence (the frame pipeline before 2026-12-01)
  straight from the frame    cuMemcpyHtoDAsync from the frame's own (pageable) memory: the driver
                             copies it through its own pinned buffers, overlapping the transfer
  in N row bands             copy band k into pinned while band k-1 transfers
Eight different frames rotate so that no copy is served from a warm cache.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(fn, frames: int) -> tuple[float, float, float]:
    for i in range(20):
        fn(i)
    samples = []
    for i in range(frames):
        start = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - start) * 1e3)
    return (statistics.median(samples), float(np.percentile(samples, 10)),
            float(np.percentile(samples, 90)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=300)
    args = ap.parse_args()
    from cuda.bindings import driver

    from trt_infer_ros.cuda.buffers import DeviceBuffer, PinnedBuffer, copy_async
    from trt_infer_ros.cuda.context import CudaContext
    from trt_infer_ros.cuda.errors import check
    from trt_infer_ros.cuda.stream import Stream

    width, height = (int(v) for v in args.size.lower().split("x"))
    ctx = CudaContext.primary()
    stream = Stream(ctx)
    nbytes = width * height * 3
    pinned, device = PinnedBuffer(ctx, nbytes), DeviceBuffer(ctx, nbytes)
    frames = [np.random.default_rng(i).integers(0, 256, (height, width, 3), dtype=np.uint8)
              for i in range(8)]
    flat = pinned.view(np.uint8)

    def copy_only(i):
        np.copyto(flat, frames[i % 8].reshape(-1))

    def transfer_only(i):
        copy_async(device.ptr, pinned.ptr, nbytes, stream)
        stream.synchronize()

    def staged(i):
        copy_only(i)
        transfer_only(i)

    def straight(i):
        check(driver.cuMemcpyHtoDAsync(device.ptr, frames[i % 8].ctypes.data, nbytes,
                                       stream.handle), "cuMemcpyHtoDAsync")
        stream.synchronize()

    def banded(bands):
        def run(i):
            src, step = frames[i % 8].reshape(-1), nbytes // bands
            for b in range(bands):
                lo, hi = b * step, (nbytes if b == bands - 1 else (b + 1) * step)
                np.copyto(flat[lo:hi], src[lo:hi])
                copy_async(device.ptr + lo, pinned.ptr + lo, hi - lo, stream)
            stream.synchronize()
        return run

    rows = [("copy into pinned only", copy_only), ("transfer from pinned only", transfer_only),
            ("pinned staging", staged), ("straight from the frame", straight),
            ("in 2 row bands", banded(2)), ("in 4 row bands", banded(4))]
    print(f"{ctx.name}: {width}x{height} bgr8 ({nbytes / 1e6:.2f} MB)")
    for label, fn in rows:
        for r in range(args.rounds):
            median, p10, p90 = timed(fn, args.frames)
            print(f"{label:26s} round {r + 1}: {median:.3f} ms [p10 {p10:.3f}, p90 {p90:.3f}]",
                  flush=True)
    pinned.close()
    device.close()
    stream.close()


if __name__ == "__main__":
    main()
