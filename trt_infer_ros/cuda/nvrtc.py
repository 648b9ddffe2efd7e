"""Run-time compilation of our CUDA C kernels with NVRTC, cached in memory and on disk.

The cache key is a hash of the source, the options, the target architecture and the NVRTC
version, so a changed kernel, flag, GPU or toolkit compiles anew. The disk cache lives in
`$TRT_INFER_ROS_CACHE/nvrtc` (default `~/.cache/trt_infer_ros/nvrtc`); set the variable to an
empty string to keep the cache in memory only.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import threading
from importlib import resources
from pathlib import Path
from typing import Optional, Sequence

from cuda.bindings import driver, nvrtc

from trt_infer_ros.cuda.context import CudaContext
from trt_infer_ros.cuda.errors import CudaError, check
from trt_infer_ros.cuda.owned import OwnedHandle

_memory_cache: dict[str, bytes] = {}
_lock = threading.Lock()
stats = {"compiled": 0, "memory_hits": 0, "disk_hits": 0}


def kernel_source(filename: str) -> str:
    """The text of a .cu file shipped in trt_infer_ros/cuda/kernels/."""
    return resources.files("trt_infer_ros.cuda").joinpath("kernels", filename).read_text()


def nvrtc_version() -> tuple[int, int]:
    major, minor = check(nvrtc.nvrtcVersion(), "nvrtcVersion")
    return int(major), int(minor)


def cache_dir() -> Optional[Path]:
    root = os.environ.get("TRT_INFER_ROS_CACHE")
    if root is None:
        root = str(Path.home() / ".cache" / "trt_infer_ros")
    return Path(root) / "nvrtc" if root else None


def _supported_archs() -> list[int]:
    try:
        count = check(nvrtc.nvrtcGetNumSupportedArchs())
        return [int(a) for a in check(nvrtc.nvrtcGetSupportedArchs())][:count]
    except Exception:
        return []


def _pick_target(arch: str) -> tuple[str, bool]:
    """(option value, is_cubin): real SASS when NVRTC knows the GPU, else PTX of the newest
    architecture it knows (the driver JIT-compiles it)."""
    want = int(arch.removeprefix("sm_"))
    archs = _supported_archs()
    if not archs or want in archs:
        return f"sm_{want}", True
    best = max(a for a in archs if a <= want) if any(a <= want for a in archs) else min(archs)
    return f"compute_{best}", False


def compile_source(source: str, name: str, arch: str, options: Sequence[str] = ()) -> bytes:
    """Compile CUDA C `source` to a cubin (or PTX) image for `arch` (e.g. "sm_90"), cached."""
    target, is_cubin = _pick_target(arch)
    opts = [f"--gpu-architecture={target}", "--std=c++17", *options]
    key_text = "\0".join([source, *opts, str(nvrtc_version())])
    key = hashlib.sha256(key_text.encode()).hexdigest()
    with _lock:
        image = _memory_cache.get(key)
        if image is not None:
            stats["memory_hits"] += 1
            return image
    directory = cache_dir()
    path = directory / f"{key}.{'cubin' if is_cubin else 'ptx'}" if directory else None
    if path is not None and path.is_file():
        image = path.read_bytes()
        stats["disk_hits"] += 1
    else:
        image = _compile(source, name, opts, is_cubin)
        stats["compiled"] += 1
        if path is not None:
            try:
                directory.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".tmp{os.getpid()}")
                tmp.write_bytes(image)
                tmp.replace(path)
            except OSError:
                pass  # a read-only home must not stop inference
    with _lock:
        _memory_cache[key] = image
    return image


def _compile(source: str, name: str, opts: list[str], is_cubin: bool) -> bytes:
    prog = check(nvrtc.nvrtcCreateProgram(source.encode(), name.encode(), 0, [], []),
                 "nvrtcCreateProgram")
    try:
        status = nvrtc.nvrtcCompileProgram(prog, len(opts), [o.encode() for o in opts])[0]
        if int(status) != 0:
            size = check(nvrtc.nvrtcGetProgramLogSize(prog))
            log = b" " * size
            check(nvrtc.nvrtcGetProgramLog(prog, log))
            raise CudaError(status.name, f"compiling {name} failed:\n{log.decode(errors='replace')}",
                            "nvrtcCompileProgram")
        if is_cubin:
            size = check(nvrtc.nvrtcGetCUBINSize(prog))
            image = b" " * size
            check(nvrtc.nvrtcGetCUBIN(prog, image), "nvrtcGetCUBIN")
        else:
            size = check(nvrtc.nvrtcGetPTXSize(prog))
            image = b" " * size
            check(nvrtc.nvrtcGetPTX(prog, image), "nvrtcGetPTX")
        return image
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


class Kernel:
    """One `extern "C"` function of a loaded module."""

    def __init__(self, module: "Module", function, name: str) -> None:
        self.module = module
        self.function = function
        self.name = name

    def set_max_dynamic_shared(self, nbytes: int) -> None:
        check(driver.cuFuncSetAttribute(
            self.function,
            driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, nbytes),
            "cuFuncSetAttribute")

    def launch(self, grid: tuple[int, int, int], block: tuple[int, int, int], args: Sequence,
               stream, shared_bytes: int = 0) -> None:
        """Launch on `stream` (a Stream). `args` are ctypes scalars in the kernel's order."""
        holders = [a if isinstance(a, (ctypes._SimpleCData, ctypes.Structure)) else ctypes.c_uint64(int(a))
                   for a in args]
        pointers = (ctypes.c_void_p * max(1, len(holders)))(
            *[ctypes.addressof(h) for h in holders])
        check(driver.cuLaunchKernel(self.function, *grid, *block, shared_bytes, stream.handle,
                                    ctypes.addressof(pointers), 0), f"cuLaunchKernel({self.name})")


class Module(OwnedHandle):
    """A compiled module loaded into a context; `kernel(name)` looks functions up once."""

    _destroy = "cuModuleUnload"

    def __init__(self, context: CudaContext, source: str, name: str,
                 options: Sequence[str] = ()) -> None:
        self.context = context
        image = compile_source(source, name, context.arch, options)
        context.activate()
        self.handle = check(driver.cuModuleLoadData(image), "cuModuleLoadData")
        self._kernels: dict[str, Kernel] = {}

    def kernel(self, name: str) -> Kernel:
        k = self._kernels.get(name)
        if k is None:
            function = check(driver.cuModuleGetFunction(self.handle, name.encode()),
                             f"cuModuleGetFunction({name})")
            k = self._kernels[name] = Kernel(self, function, name)
        return k
