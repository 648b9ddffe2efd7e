"""The tensor-bundle wire format: one frame's feature tensors and what the head needs with them.

Layout, version 1 (every fixed-size field little-endian):

  offset  size  field
  0       4     magic b"TIRB"
  4       2     version (1)
  6       2     flags (0; reserved)
  8       4     meta_len: length of the metadata that follows
  12      4     payload_offset: where inline tensor bytes start (a multiple of 64; 0 = none)
  16      ...   metadata, UTF-8 JSON:
                  seq        frame sequence number of the producer (int)
                  stamp      [sec, nanosec] of the source image's header
                  frame_id   the source image's frame_id
                  transform  letterbox: [scale_x, scale_y, pad_x, pad_y, source_width,
                             source_height] (input = source * scale + pad)
                  tensors    [{name, dtype, shape, offset, nbytes}, ...]; dtype is a numpy
                             type string with an explicit byte order ("<f4", ">i8", "|u1");
                             offset is relative to the payload start, 64-byte aligned
                  location   where the bytes are: {"kind": "inline"}, or a handle:
                             {"kind": "shm", ...} / {"kind": "cuda_ipc", ...} (see shm_ring.py
                             and cuda_ring.py)
  payload_offset  the tensor bytes, for kind "inline"

Byte order: producers write little-endian tensors. A reader takes any explicit byte order: a
big-endian tensor is converted to native order on reading (one copy of that tensor); other
type strings (objects, strings, complex, unknown kinds) refuse the bundle.
A bundle of another version, a short or inconsistent one raises BundleError: never a crash.
"""
from __future__ import annotations

import array
import functools
import json
import struct
from dataclasses import dataclass, field
from typing import Mapping, NamedTuple, Optional, Sequence

import numpy as np

from trt_infer_ros.models.spec import ImageTransform

MAGIC = b"TIRB"
VERSION = 1
PREFIX = struct.Struct("<4sHHII")
ALIGN = 64
# Element types a bundle may carry: bool, signed/unsigned integers and floats.
KINDS = frozenset("biuf")
MAX_TENSORS = 256
MAX_META = 1 << 20


class BundleError(ValueError):
    """A bundle that cannot be read; the message says why."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: np.dtype
    shape: tuple
    offset: int
    nbytes: int


@dataclass
class Bundle:
    seq: int
    stamp: tuple                  # (sec, nanosec)
    frame_id: str
    transform: ImageTransform
    tensors: list
    location: dict = field(default_factory=lambda: {"kind": "inline"})
    payload: Optional[memoryview] = None     # inline tensor bytes

    @property
    def kind(self) -> str:
        return self.location.get("kind", "")


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


class TensorSpec(NamedTuple):
    """A tensor's shape and dtype, before it exists (what a slot is laid out for)."""
    shape: tuple
    dtype: np.dtype


def plan_layout(arrays: Mapping) -> tuple[list, int]:
    """Where each tensor goes in a payload (64-byte aligned), and the payload's size.
    `arrays`: name -> anything with `shape` and `dtype` (arrays, TensorSpec)."""
    infos, offset = [], 0
    for name, a in arrays.items():
        dtype = np.dtype(a.dtype)
        dtype = dtype.newbyteorder("<") if dtype.byteorder == ">" else dtype
        shape = tuple(int(d) for d in a.shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        infos.append(TensorInfo(name, dtype, shape, offset, nbytes))
        offset = _aligned(offset + nbytes)
    return infos, offset


def write_tensors(arrays: Mapping[str, np.ndarray], infos: Sequence[TensorInfo],
                  buffer) -> None:
    """Copy each array into its place in `buffer` (a writable buffer), little-endian."""
    dest = np.frombuffer(buffer, np.uint8)
    for info in infos:
        a = arrays[info.name]
        view = dest[info.offset:info.offset + info.nbytes].view(_le(info.dtype)).reshape(info.shape)
        view[...] = a            # converts a big-endian source on the way


def _le(dtype: np.dtype) -> np.dtype:
    return dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype


def _meta(seq: int, stamp, frame_id: str, transform: ImageTransform, infos, location) -> bytes:
    t = transform
    head = json.dumps({
        "seq": int(seq), "stamp": [int(stamp[0]), int(stamp[1])], "frame_id": str(frame_id),
        "transform": [float(t.scale_x), float(t.scale_y), float(t.pad_x), float(t.pad_y),
                      int(t.source_width), int(t.source_height)],
        "location": location,
    }, separators=(",", ":"))
    return (head[:-1] + ',"tensors":' + _tensors_json(tuple(infos)) + "}").encode("utf-8")


@functools.lru_cache(maxsize=16)
def _tensors_json(infos: tuple) -> str:
    """The tensor table; the same every frame, so written once."""
    return json.dumps([{"name": i.name, "dtype": _le(i.dtype).str, "shape": list(i.shape),
                        "offset": i.offset, "nbytes": i.nbytes} for i in infos],
                      separators=(",", ":"))


def encode_inline(seq: int, stamp, frame_id: str, transform: ImageTransform,
                  arrays: Mapping[str, np.ndarray]) -> array.array:
    """The whole bundle with the tensor bytes inside, as the array.array a uint8[] field takes."""
    infos, size = plan_layout(arrays)
    meta = _meta(seq, stamp, frame_id, transform, infos, {"kind": "inline"})
    payload_offset = _aligned(PREFIX.size + len(meta))
    out = array.array("B", bytes(payload_offset + size))
    PREFIX.pack_into(out, 0, MAGIC, VERSION, 0, len(meta), payload_offset)
    out[PREFIX.size:PREFIX.size + len(meta)] = array.array("B", meta)
    write_tensors(arrays, infos, memoryview(out)[payload_offset:])
    return out


def encode_handle(seq: int, stamp, frame_id: str, transform: ImageTransform, infos,
                  location: dict) -> array.array:
    """A bundle that only says where the tensor bytes are (shared memory, CUDA IPC)."""
    meta = _meta(seq, stamp, frame_id, transform, infos, location)
    out = array.array("B", PREFIX.pack(MAGIC, VERSION, 0, len(meta), 0))
    out.frombytes(meta)
    return out


def decode(buffer) -> Bundle:
    """Read a bundle's prefix and metadata (tensor bytes are not copied). BundleError if bad."""
    view = memoryview(buffer).cast("B")
    if len(view) < PREFIX.size:
        raise BundleError(f"truncated bundle: {len(view)} bytes, the prefix alone is "
                          f"{PREFIX.size}")
    magic, version, _flags, meta_len, payload_offset = PREFIX.unpack_from(view, 0)
    if magic != MAGIC:
        raise BundleError(f"not a tensor bundle (magic {bytes(magic)!r})")
    if version != VERSION:
        raise BundleError(f"tensor bundle version {version}; this node reads version {VERSION}")
    if meta_len > MAX_META or PREFIX.size + meta_len > len(view):
        raise BundleError(f"truncated bundle: metadata of {meta_len} bytes, "
                          f"{len(view) - PREFIX.size} present")
    try:
        meta = json.loads(bytes(view[PREFIX.size:PREFIX.size + meta_len]).decode("utf-8"))
        bundle = _from_meta(meta)
    except BundleError:
        raise
    except (ValueError, TypeError, KeyError, IndexError) as err:
        raise BundleError(f"bad bundle metadata: {err}") from None
    if bundle.kind == "inline":
        if payload_offset < PREFIX.size + meta_len or payload_offset > len(view):
            raise BundleError(f"bad payload offset {payload_offset}")
        bundle.payload = view[payload_offset:]
        check_fits(bundle.tensors, len(bundle.payload))
    return bundle


def _from_meta(meta: dict) -> Bundle:
    t = meta["transform"]
    if len(t) != 6:
        raise BundleError("transform must hold 6 numbers")
    transform = ImageTransform(float(t[0]), float(t[1]), float(t[2]), float(t[3]), int(t[4]),
                               int(t[5]))
    if not (transform.scale_x > 0 and transform.scale_y > 0):
        raise BundleError(f"transform scale must be positive, got {t[:2]}")
    tensors = meta["tensors"]
    if not isinstance(tensors, list) or not 0 < len(tensors) <= MAX_TENSORS:
        raise BundleError(f"a bundle holds 1..{MAX_TENSORS} tensors")
    infos = [_tensor_info(x) for x in tensors]
    location = meta["location"]
    if not isinstance(location, dict) or not isinstance(location.get("kind"), str):
        raise BundleError("location must name its kind")
    stamp = meta["stamp"]
    return Bundle(int(meta["seq"]), (int(stamp[0]), int(stamp[1])), str(meta["frame_id"]),
                  transform, infos, location)


def _tensor_info(x: dict) -> TensorInfo:
    try:
        key = (x["name"], x["dtype"], tuple(x["shape"]), x["offset"], x["nbytes"])
        hash(key)
    except TypeError:
        raise BundleError(f"tensor {x.get('name')!r}: malformed entry") from None
    return _checked_tensor_info(*key)


@functools.lru_cache(maxsize=256)
def _checked_tensor_info(name, dtype, shape, offset, nbytes) -> TensorInfo:
    """Checked once per distinct entry: a producer sends the same table every frame."""
    return _new_tensor_info({"name": name, "dtype": dtype, "shape": shape, "offset": offset,
                             "nbytes": nbytes})


def _new_tensor_info(x: dict) -> TensorInfo:
    try:
        dtype = np.dtype(str(x["dtype"]))
    except TypeError:
        raise BundleError(f"tensor {x.get('name')!r}: unknown dtype {x['dtype']!r}") from None
    if dtype.kind not in KINDS or dtype.subdtype is not None or dtype.fields is not None:
        raise BundleError(f"tensor {x.get('name')!r}: dtype {dtype.str} is not a number type")
    shape = tuple(int(d) for d in x["shape"])
    if any(d < 0 for d in shape) or len(shape) > 8:
        raise BundleError(f"tensor {x.get('name')!r}: bad shape {list(shape)}")
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes != int(x["nbytes"]):
        raise BundleError(f"tensor {x['name']!r}: {x['nbytes']} bytes declared, shape "
                          f"{list(shape)} of {dtype.str} needs {nbytes}")
    offset = int(x["offset"])
    if offset < 0:
        raise BundleError(f"tensor {x['name']!r}: negative offset")
    return TensorInfo(str(x["name"]), dtype, shape, offset, nbytes)


def check_fits(infos: Sequence[TensorInfo], size: int) -> None:
    for info in infos:
        if info.offset + info.nbytes > size:
            raise BundleError(f"truncated bundle: tensor {info.name!r} ends at byte "
                              f"{info.offset + info.nbytes}, only {size} present")


def tensor_views(infos: Sequence[TensorInfo], buffer, copy_foreign: bool = True) -> dict:
    """The tensors as numpy arrays on `buffer` (no copy), in native byte order: a big-endian
    tensor is converted (one copy)."""
    data = np.frombuffer(buffer, np.uint8)
    check_fits(infos, data.size)
    out = {}
    for info in infos:
        a = data[info.offset:info.offset + info.nbytes].view(info.dtype).reshape(info.shape)
        if not info.dtype.isnative:
            a = a.astype(info.dtype.newbyteorder("="))
        out[info.name] = a
    return out
