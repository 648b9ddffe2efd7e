"""Running a model before the first camera frame, with the time it took."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

WARMUP_FRAMES = 3      # TinyJit compiles on the 1st call and captures on the 2nd


def blank_frame(input_spec) -> np.ndarray:
    """A black bgr8 frame of the model's input size."""
    return np.zeros((input_spec.height, input_spec.width, 3), np.uint8)


def warm_up(node, run_once: Callable[[], object]) -> None:
    """Pay for compilation and allocation before the first camera frame, not on it."""
    node.get_logger().info("warming up the model (a first run may compile it)...")
    start = time.perf_counter()
    for _ in range(WARMUP_FRAMES):
        run_once()
    node.get_logger().info(f"warm-up done in {time.perf_counter() - start:.1f} s")
