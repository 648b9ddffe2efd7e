"""Running a built engine once, for the conformance tests (real TensorRT, real CUDA)."""
from __future__ import annotations

import numpy as np


def run_engine(loaded, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run a LoadedEngine once on `x` with the name-based API (set_input_shape,
    set_tensor_address, execute_async_v3) and plain cuda-python device memory."""
    from cuda.bindings import runtime as cudart

    def ok(result):
        err = result[0] if isinstance(result, tuple) else result
        assert int(err) == 0, f"CUDA error {err}"
        return result[1] if isinstance(result, tuple) and len(result) > 1 else None

    engine = loaded.engine
    context = engine.create_execution_context()
    assert context is not None
    (input_spec,) = loaded.inputs
    x = np.ascontiguousarray(x, dtype=np.dtype(input_spec.dtype))
    assert context.set_input_shape(input_spec.name, x.shape)
    stream = ok(cudart.cudaStreamCreate())
    pointers, outputs = [], {}
    try:
        in_ptr = ok(cudart.cudaMalloc(x.nbytes))
        pointers.append(in_ptr)
        context.set_tensor_address(input_spec.name, int(in_ptr))
        ok(cudart.cudaMemcpy(in_ptr, x.ctypes.data, x.nbytes,
                             cudart.cudaMemcpyKind.cudaMemcpyHostToDevice))
        for spec in loaded.outputs:
            shape = tuple(context.get_tensor_shape(spec.name))
            host = np.empty(shape, np.dtype(spec.dtype))
            ptr = ok(cudart.cudaMalloc(max(host.nbytes, 1)))
            pointers.append(ptr)
            context.set_tensor_address(spec.name, int(ptr))
            outputs[spec.name] = (ptr, host)
        assert context.execute_async_v3(int(stream))
        ok(cudart.cudaStreamSynchronize(stream))
        for name, (ptr, host) in outputs.items():
            ok(cudart.cudaMemcpy(host.ctypes.data, ptr, host.nbytes,
                                 cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost))
        return {name: host for name, (_, host) in outputs.items()}
    finally:
        for ptr in pointers:
            cudart.cudaFree(ptr)
        cudart.cudaStreamDestroy(stream)
