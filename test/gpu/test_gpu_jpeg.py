"""JPEG frames decoded on the GPU by nvImageCodec straight into the frame graph's source: the
pixels match OpenCV's decode within the codecs' rounding, the detections match the host path's,
and what the GPU decoder does not read (PNG, a damaged JPEG) is left to the host decoder."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trt_infer_ros.pipeline.settings import DetectionSettings

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "centernet_mobilenetv3_coco.onnx"


@pytest.fixture(scope="module", params=["onnxruntime", "tinygrad"])
def pipeline(request, cuda_context, tmp_path_factory):
    """Per runner: onnxruntime's frame graph reads the decoded image where nvImageCodec put it
    (both in the primary context); tinygrad's context of its own gets it by one device copy."""
    from trt_infer_ros.cuda.jpeg_decoder import unavailable_reason
    from trt_infer_ros.pipeline.gpu_pipeline import build_gpu_pipeline
    from trt_infer_ros.pipeline.gpu_runner_choice import installed_gpu_runners

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    if request.param not in installed_gpu_runners():
        pytest.skip(f"{request.param} with CUDA support is not installed")
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    pipe = build_gpu_pipeline(str(MODEL), "auto", request.param,
                              DetectionSettings(0.3, 0.45, 100), precision="fp32",
                              device="CUDA" if request.param == "onnxruntime" else None)
    assert pipe.jpeg_on_gpu, pipe.jpeg_text
    yield pipe
    pipe.close()
    mp.undo()


def _photos(size=None):
    import cv2

    for path in sorted((REPO / "data" / "images").glob("*.jpg")):
        image = cv2.imread(str(path))
        yield path.name, cv2.resize(image, size) if size else image


def _jpeg(image, quality=95) -> bytes:
    import cv2

    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()


def _download(ptr: int, height: int, step: int, width: int) -> np.ndarray:
    from cuda.bindings import driver

    rows = np.empty((height, step), np.uint8)
    (err,) = driver.cuMemcpyDtoH(rows.ctypes.data, ptr, rows.nbytes)
    assert int(err) == 0, err
    return rows[:, :width * 3].reshape(height, width, 3)


def test_decoded_pixels_match_opencv(pipeline):
    import cv2

    from trt_infer_ros.cuda.jpeg_decoder import GpuJpegDecoder

    decoder = GpuJpegDecoder()
    for name, image in _photos((1920, 1080)):
        data = _jpeg(image)
        decoded = decoder.decode(data)              # on the decoder's own stream
        decoder.stream.synchronize()
        assert decoded is not None and (decoded.width, decoded.height) == (1920, 1080)
        gpu = _download(decoded.ptr, decoded.height, decoded.step, decoded.width).astype(int)
        cpu = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).astype(int)
        diff = np.abs(gpu - cpu)
        print(name, "mean", diff.mean(), "max", diff.max())
        assert diff.mean() < 1.0 and np.percentile(diff, 99.9) <= 8, (name, diff.mean())
    decoder.close()


def test_detections_match_the_host_decoded_frame(pipeline):
    import cv2

    from trt_infer_ros.models.nms import iou

    for size in ((1280, 720), (640, 480), (1280, 720)):      # new shapes, then back
        for name, image in _photos(size):
            data = _jpeg(image)
            gpu = pipeline.detect_jpeg(data)
            assert gpu is not None, pipeline._jpeg.last_error
            host = pipeline(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), "bgr8")
            print(size, name, len(gpu), len(host))
            strong = host.scores >= 0.4
            for box, cls in zip(host.boxes[strong], host.class_ids[strong]):
                same = gpu.boxes[gpu.class_ids == cls]
                assert len(same) and iou(box[None], same).max() > 0.9, (name, cls, box)
    modes = {f.mode for f in pipeline._frames.values()}
    assert modes == {"one_graph"}, modes


def test_what_the_gpu_decoder_does_not_read_goes_to_the_host(pipeline):
    import cv2

    _, image = next(_photos((320, 240)))
    ok, png = cv2.imencode(".png", image)
    assert pipeline.detect_jpeg(png.tobytes()) is None
    failures = pipeline._jpeg.failures
    damaged = _jpeg(image)[:40] + b"\x00" * 200        # a header, then nothing decodable
    assert pipeline.detect_jpeg(damaged) is None
    assert pipeline._jpeg.failures == failures + 1
    assert pipeline.detect_jpeg(b"") is None
    # and a good frame after the bad ones still decodes
    assert pipeline.detect_jpeg(_jpeg(image)) is not None
