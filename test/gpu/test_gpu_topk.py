"""The TopK the tinygrad runners give tinygrad's ONNX runner, against a stable numpy sort.

Runs on tinygrad's CPU device (needs clang) and, where there is one, on CUDA.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

tinygrad = pytest.importorskip("tinygrad", reason="tinygrad is not installed")


def _devices():
    found = []
    if shutil.which("clang"):
        found.append("CPU")
    try:
        from trt_infer_ros.cuda.context import cuda_unavailable_reason
        if cuda_unavailable_reason() is None:
            found.append("CUDA")
    except Exception:
        pass
    return found


@pytest.mark.parametrize("device", _devices() or [pytest.param("none", marks=pytest.mark.skip(
    reason="tinygrad has no device here (CPU needs clang)"))])
def test_packed_key_topk_matches_stable_sort(device, rng_seed):
    from tinygrad import Tensor

    from trt_infer_ros.backends.tinygrad_ops import packed_key_topk

    rng = np.random.default_rng(rng_seed)
    for shape, axis, k, largest in [((1, 5000), -1, 100, 1), ((3, 7, 40), 1, 5, 1),
                                    ((2, 300), -1, 17, 0)]:
        a = rng.standard_normal(shape).astype(np.float32)
        a.flat[::7] = 0.5                                 # ties keep the lower index first
        a.flat[1::11] = -0.0                              # and -0.0 ties with 0.0
        a.flat[2::13] = 0.0
        v, i = packed_key_topk(Tensor(a, device=device), [k], axis, largest)
        order = np.argsort(-a if largest else a, axis=axis, kind="stable")
        want_i = np.take(order, np.arange(k), axis=axis)
        np.testing.assert_array_equal(i.numpy(), want_i)
        np.testing.assert_array_equal(v.numpy(), np.take_along_axis(a, want_i, axis=axis))
