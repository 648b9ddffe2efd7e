"""Which of tinygrad's CUDA kernels dominate a model's time (tinygrad's own DEBUG=2 timings).

  DEV=CUDA python benchmarks/tinygrad_kernel_profile.py models/centernet_mobilenetv3_coco.onnx

Runs the model once un-jitted with DEBUG=2 (tinygrad then synchronizes and times every kernel)
and prints the slowest kernels and the total.
"""
from __future__ import annotations

import contextlib
import io
import re
import sys

import numpy as np


def main(path: str, top: int = 15) -> None:
    from tinygrad import Tensor
    from tinygrad.helpers import Context
    from tinygrad.nn.onnx import OnnxRunner

    model = OnnxRunner(path).to("CUDA")
    (name, spec), = model.graph_inputs.items()
    shape = tuple(int(d) for d in spec.shape)
    x = Tensor(np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32), device="CUDA")
    for _ in range(2):          # the first run compiles; time the second
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), Context(DEBUG=2):
            outs = model({name: x})
            for o in outs.values():
                o.realize()
    rows = []
    for line in buf.getvalue().splitlines():
        m = re.search(r"\*\*\* CUDA\s+\d+\s+(\S+).*?tm\s+([\d.]+)(us|ms|s)", re.sub(r"\x1b\[[0-9;]*m", "", line))
        if m:
            scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(3)]
            rows.append((float(m.group(2)) * scale, m.group(1), line.strip()[:160]))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    print(f"{len(rows)} kernels, {total:.2f} ms in kernels")
    for ms, kname, line in rows[:top]:
        print(f"{ms:9.3f} ms  {kname}")


if __name__ == "__main__":
    main(sys.argv[1])
