"""fp16 copies of ONNX models for onnxruntime's CUDA provider.

Weights and arithmetic become half precision; the graph's inputs and outputs stay float32, so the
pipeline's buffers, preprocessing and decode do not change. The conversion is onnxruntime's own
(`onnxruntime.transformers.float16`), which keeps the ops that need float32 (TopK, NMS, Range,
Min/Max...) in float32 behind casts. The copy is written once to the user cache, named by the
source model's content, so later starts reuse it.
"""
from __future__ import annotations

from pathlib import Path

from trt_infer_ros.backends.runner import BackendUnavailable
from trt_infer_ros.engine.model_facts import file_sha256
from trt_infer_ros.file_io import write_atomic
from trt_infer_ros.resources import user_cache_dir

PRECISIONS = ("auto", "fp32", "fp16")


def float16_model_path(model_path: str) -> str:
    """Path of the fp16 copy of `model_path` (made now if the cache lacks it). Raises
    BackendUnavailable with the reason when the model cannot be converted."""
    target = user_cache_dir() / "fp16" / f"{file_sha256(model_path)}.onnx"
    if target.is_file():
        return str(target)
    try:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as exc:
        raise BackendUnavailable(f"fp16 needs onnx and onnxruntime's converter: {exc}") from exc
    model = onnx.load(model_path)
    if any(i.type.tensor_type.elem_type != onnx.TensorProto.FLOAT for i in model.graph.input
           if i.name not in {t.name for t in model.graph.initializer}):
        raise BackendUnavailable(f"{Path(model_path).name} has inputs that are not float32; "
                                 "fp16 converts float32 models only")
    try:
        converted = convert_float_to_float16(model, keep_io_types=True)
    except Exception as exc:
        raise BackendUnavailable(f"onnxruntime's fp16 converter refused "
                                 f"{Path(model_path).name}: {type(exc).__name__}: {exc}") from exc
    try:
        write_atomic(str(target), converted.SerializeToString())
    except OSError as exc:
        raise BackendUnavailable(f"cannot write the fp16 copy to {target}: {exc}") from exc
    return str(target)
