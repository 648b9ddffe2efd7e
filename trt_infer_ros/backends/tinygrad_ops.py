"""ONNX operators tinygrad runs too slowly for our models, replaced by equivalent ones."""
from __future__ import annotations


def packed_key_topk(X, K, axis: int = -1, largest: int = 1, sorted: int = 1):  # noqa: A002
    """ONNX TopK for tinygrad without its O(n^2) index recovery.

    tinygrad's Tensor.topk sorts the values (bitonic) and then finds each value's index with an
    n x n comparison, which for CenterNet's 1.3M-element heatmap is two 250 ms kernels on an
    H200. Here value and index travel in one uint64 key (order-preserving bits of the float32
    value, then the complement of the index so equal values keep the lower index first, as
    onnxruntime does); one bitonic sort of the keys gives both. Values are gathered from X.
    """
    from tinygrad import Tensor, dtypes

    if isinstance(K, Tensor):
        K = K.numpy().reshape(-1).tolist()
    k = int(K[0] if isinstance(K, (list, tuple)) else K)
    axis = axis % X.ndim
    x = X if axis == X.ndim - 1 else X.transpose(axis, -1)
    n = x.shape[-1]
    xf = x.cast(dtypes.float32)
    xf = (xf == 0).where(0.0, xf)          # -0.0 -> +0.0: the two zeros tie, as comparisons have it
    bits = xf.bitcast(dtypes.uint32).cast(dtypes.uint64)
    negative = (bits >> 31) == 1
    ordered = negative.where(bits ^ 0xFFFFFFFF, bits | 0x80000000)      # ascending with value
    if not largest:
        ordered = ordered ^ 0xFFFFFFFF                                   # ascending = smallest first
    index = Tensor.arange(n).to(X.device).cast(dtypes.uint64)
    keys = (ordered << 32) | (0xFFFFFFFF - index)
    top = keys.sort(dim=-1, descending=True)[0][..., :k].contiguous()
    idx = (0xFFFFFFFF - (top & 0xFFFFFFFF)).cast(dtypes.int64).contiguous()
    values = x.gather(-1, idx)
    if axis != X.ndim - 1:
        values, idx = values.transpose(axis, -1), idx.transpose(axis, -1)
    return values, idx


def patch_onnx_ops(model) -> None:
    """Swap in the replacements on one tinygrad OnnxRunner (its own op table, nothing global)."""
    model.onnx_ops = dict(model.onnx_ops)
    model.onnx_ops["TopK"] = packed_key_topk
