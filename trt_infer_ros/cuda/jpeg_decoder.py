"""JPEG camera frames decoded on the GPU by NVIDIA's nvImageCodec, where the frame graph reads them.

nvImageCodec (`pip install nvidia-nvimgcodec-cu13[nvjpeg]`, or `-cu12`; its tegra builds on
Jetson) decodes on the GPU (the hardware JPEG engine where the GPU has one, else nvJPEG's CUDA
decoder) into an image whose device buffer it owns, in the device's primary context (the CUDA
runtime's). One such image is reused for every frame: its address stays put while the frame size
does, so a frame graph in the primary context (onnxruntime, TensorRT) reads it directly as its
source, decoding queued on the same stream before it. Only the compressed bytes cross from host
to device; the pixels never touch the host. A pipeline in a context of its own (tinygrad's)
cannot read that memory: there the decode runs on this decoder's stream and one device-to-device
copy brings the pixels over. PNG (and anything else) is decoded on the host by OpenCV.
"""
from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass
from typing import Optional

JPEG_MAGIC = b"\xff\xd8\xff"
_IMPORT_ERROR: Optional[str] = None


def is_jpeg(data) -> bool:
    return bytes(data[:3]) == JPEG_MAGIC


@contextlib.contextmanager
def _quiet_stderr():
    """nvImageCodec prints to the C stderr, at import, about every codec library it does not
    find (JPEG 2000, TIFF); we need neither, and those lines would read as a failure."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@functools.lru_cache(maxsize=None)
def _nvimgcodec():
    """The nvImageCodec module, imported once (its stderr silenced once), or None."""
    global _IMPORT_ERROR
    try:
        with _quiet_stderr():
            from nvidia import nvimgcodec
        return nvimgcodec
    except Exception as exc:
        _IMPORT_ERROR = f"{type(exc).__name__}: {exc}"
        return None


def unavailable_reason() -> Optional[str]:
    """None when nvImageCodec is importable here, else why not."""
    if _nvimgcodec() is None:
        return (f"nvImageCodec is not installed ({_IMPORT_ERROR}); pip install "
                "'nvidia-nvimgcodec-cu13[nvjpeg]' (or -cu12) decodes JPEG on the GPU")
    return None


@dataclass(frozen=True)
class DecodedImage:
    ptr: int           # device address of the first pixel (primary context)
    width: int
    height: int
    step: int          # bytes per row
    encoding: str      # bgr8

    @property
    def nbytes(self) -> int:
        from trt_infer_ros.cuda.preprocess_kernel import SourceLayout

        return SourceLayout(self.width, self.height, self.step, self.encoding).nbytes


class GpuJpegDecoder:
    """Decodes JPEG payloads on `stream`'s GPU into one reused device image."""

    def __init__(self, device_ordinal: int = 0) -> None:
        from trt_infer_ros.cuda.context import CudaContext
        from trt_infer_ros.cuda.stream import Stream

        nvimgcodec = _nvimgcodec()
        if nvimgcodec is None:
            raise RuntimeError(unavailable_reason())
        self._codec = nvimgcodec
        self.context = CudaContext.primary(device_ordinal)
        self.stream = Stream(self.context)       # for callers in another context
        with _quiet_stderr():
            self._decoder = nvimgcodec.Decoder(device_id=device_ordinal)
        # As OpenCV reads a JPEG for the CPU path: no EXIF rotation, 8-bit BGR interleaved.
        self._params = nvimgcodec.DecodeParams(apply_exif_orientation=False,
                                               color_spec=nvimgcodec.ColorSpec.SRGB,
                                               allow_any_depth=False,
                                               sample_format=nvimgcodec.SampleFormat.I_BGR)
        self._image = None
        self.failures = 0          # readable JPEGs the GPU did not decode (the host did)
        self.last_error = ""

    def decode(self, data, stream=None) -> Optional[DecodedImage]:
        """The decoded frame, queued on `stream` (a stream of the primary context; this
        decoder's own by default), ready for work queued after it there; None when `data` is
        not a JPEG nvImageCodec can read (the caller decodes on the host)."""
        if not is_jpeg(data):
            return None
        stream = stream or self.stream
        self.context.activate()
        try:
            code = self._codec.CodeStream(bytes(data))
        except Exception:          # not a JPEG header it can read: the host decoder says why
            return None
        error = "nvImageCodec returned no image"
        try:
            image = self._decoder.decode(code, image=self._image, params=self._params,
                                         cuda_stream=stream.ptr)
        except Exception as exc:
            image, error = None, f"{type(exc).__name__}: {exc}"
        if image is None:
            self.failures += 1
            self.last_error = error
            return None
        self._image = image
        cai = image.__cuda_array_interface__
        height, width = int(cai["shape"][0]), int(cai["shape"][1])
        channels = int(cai["shape"][2]) if len(cai["shape"]) > 2 else 1
        if channels != 3 or cai.get("typestr") not in ("|u1", "<u1", "u1"):
            return None
        strides = cai.get("strides")
        step = int(strides[0]) if strides else width * 3
        return DecodedImage(int(cai["data"][0]), width, height, step, "bgr8")

    def close(self) -> None:
        self._image = None
        self._decoder = None
        if self.stream is not None:
            self.stream.close()
            self.stream = None
