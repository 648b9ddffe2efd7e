"""GPU test fixtures: every test here needs a CUDA GPU and skips with the reason when none."""
from __future__ import annotations

import pytest


def _reason():
    try:
        from trt_infer_ros.cuda.context import cuda_unavailable_reason
    except Exception as exc:  # cuda-python not installed
        return f"cuda-python is not importable ({exc})"
    return cuda_unavailable_reason()


@pytest.fixture(scope="session")
def cuda_context():
    reason = _reason()
    if reason:
        pytest.skip(f"needs a CUDA GPU: {reason}")
    from trt_infer_ros.cuda.context import CudaContext

    return CudaContext.primary()


@pytest.fixture
def stream(cuda_context):
    from trt_infer_ros.cuda.stream import Stream

    s = Stream(cuda_context)
    yield s
    s.close()


@pytest.fixture(scope="session")
def rng_seed():
    import os
    import random

    # fresh inputs on every run; the seed is printed so a failure can be replayed
    seed = int(os.environ.get("GPU_TEST_SEED", random.SystemRandom().randrange(2**31)))
    print(f"GPU_TEST_SEED={seed}")
    return seed
