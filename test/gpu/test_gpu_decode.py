"""GPU decode + NMS against the numpy decoders and models.nms (fresh random outputs); GPU
decode + top-k of final-detection outputs (end-to-end YOLO, RT-DETR) against their numpy
decoders and `select_final`."""
from __future__ import annotations

import numpy as np
import pytest

from final_exports import end2end_output, rtdetr_scores_output, rtdetr_topk_output
from trt_infer_ros.models.centernet import CenterNetAdapter
from trt_infer_ros.models.rtdetr import RtDetrAdapter
from trt_infer_ros.models.spec import Detections, ImageTransform
from trt_infer_ros.models.yolo import YoloV5Adapter, YoloV8Adapter, YoloXAdapter, yolo_input_spec
from trt_infer_ros.models.yolo_end2end import YoloEnd2EndAdapter
from trt_infer_ros.pipeline.detector import decode_candidates, select_final
from trt_infer_ros.pipeline.settings import DetectionSettings


def cpu_reference(adapter, outputs, settings, transform):
    """What DetectionPipeline does after the runner, through its own functions."""
    dets, _ = decode_candidates(adapter, outputs, settings)
    dets = select_final(adapter, dets, settings)
    return Detections(transform.to_source(dets.boxes), dets.scores, dets.class_ids)


def clustered_boxes(rng, n, size=640):
    """cx,cy,w,h with many overlapping boxes (so NMS has work)."""
    centres = rng.uniform(40, size - 40, size=(max(1, n // 40), 2))
    pick = rng.integers(0, len(centres), n)
    cxcy = centres[pick] + rng.normal(0, 6, size=(n, 2))
    wh = rng.uniform(8, 160, size=(n, 2))
    return np.concatenate([cxcy, wh], axis=1).astype(np.float32)


def yolov8_output(rng, n, nc, dtype):
    boxes = clustered_boxes(rng, n)
    cls = (rng.random((n, nc)) ** 6).astype(np.float32)   # most scores small, a few high
    return np.concatenate([boxes, cls], axis=1).T[None].astype(dtype)   # [1, 4+nc, n]


def yolov5_output(rng, n, nc, dtype):
    boxes = clustered_boxes(rng, n)
    obj = (rng.random((n, 1)) ** 2).astype(np.float32)
    cls = (rng.random((n, nc)) ** 3).astype(np.float32)
    return np.concatenate([boxes, obj, cls], axis=1)[None].astype(dtype)


def centernet_output(rng, n, nc, dtype):
    b = clustered_boxes(rng, n, 512)
    xyxy = np.concatenate([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], axis=1)
    score = rng.random((n, 1)).astype(np.float32)
    cls = rng.integers(0, nc, (n, 1)).astype(np.float32)
    return np.concatenate([xyxy, score, cls], axis=1)[None].astype(dtype)


def yolov8_transposed_output(rng, n, nc, dtype):
    return np.ascontiguousarray(yolov8_output(rng, n, nc, dtype).transpose(0, 2, 1))


RTDETR_SIZE = (640, 384)     # width != height: x and y scale apart


def rtdetr(layout):
    return lambda num_classes: RtDetrAdapter(yolo_input_spec(*RTDETR_SIZE),
                                             num_classes=num_classes, layout=layout)


def final_rows(make, size=(640, 640)):
    return lambda rng, n, nc, dtype: make(rng, n, nc, *size).astype(dtype)


FAMILIES = {
    "yolov8": (YoloV8Adapter, yolov8_output, 8400),
    "yolov8-transposed": (YoloV8Adapter, yolov8_transposed_output, 8400),
    "yolox": (lambda num_classes: YoloXAdapter(num_classes=num_classes, decoded=True),
              yolov5_output, 8400),
    "yolov5": (YoloV5Adapter, yolov5_output, 25200),
    "centernet": (CenterNetAdapter, centernet_output, 100),
    # rows that are final detections: top-k, no NMS
    "yolo_end2end": (YoloEnd2EndAdapter, final_rows(end2end_output), 300),
    "rtdetr-topk": (rtdetr("topk"), final_rows(rtdetr_topk_output, RTDETR_SIZE), 300),
    "rtdetr-scores": (rtdetr("scores"), final_rows(rtdetr_scores_output, RTDETR_SIZE), 300),
}
NO_NMS = ("yolo_end2end", "rtdetr-topk", "rtdetr-scores")


def make_decoder(ctx, adapter, shape, dtype):
    """The decoder the GPU pipeline would pick for this adapter and output shape."""
    from trt_infer_ros.cuda.decode_kernel import GpuDecoder
    from trt_infer_ros.pipeline.gpu_pipeline import decode_layout

    layout, why_not = decode_layout(adapter, shape)
    assert layout is not None, why_not
    return GpuDecoder(ctx, layout, dtype)


def gpu_decode(decoder, stream, out_dev, settings, transform, poison=True):
    decoder.set_params(settings.score_threshold, settings.nms_iou_threshold,
                       settings.max_detections, settings.class_filter,
                       (transform.scale_x, transform.scale_y, transform.pad_x, transform.pad_y,
                        transform.source_width, transform.source_height))
    if poison:
        decoder.poison_result()
    decoder.enqueue(out_dev.ptr, stream)
    stream.synchronize()
    return decoder.read()


def assert_same(got, want, family):
    boxes, scores, class_ids, _ = got
    assert len(scores) == len(want), f"{family}: {len(scores)} detections, numpy {len(want)}"
    np.testing.assert_array_equal(class_ids, want.class_ids)
    np.testing.assert_array_equal(scores, want.scores)
    np.testing.assert_allclose(boxes, want.boxes, rtol=0, atol=1e-3)


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_decode_nms_matches_numpy(cuda_context, stream, rng_seed, family, dtype):
    from trt_infer_ros.cuda.buffers import DeviceBuffer

    adapter_cls, make_output, n = FAMILIES[family]
    rng = np.random.default_rng([rng_seed, list(FAMILIES).index(family), np.dtype(dtype).itemsize])
    nc = 80
    adapter = adapter_cls(num_classes=nc)
    out = make_output(rng, n, nc, dtype)
    decoder = make_decoder(cuda_context, adapter, out.shape, dtype)
    assert decoder.layout.suppress == (family not in NO_NMS)
    out_dev = DeviceBuffer(cuda_context, out.nbytes)
    try:
        for trial in range(4):
            out = make_output(rng, n, nc, dtype)          # fresh output each trial
            out_dev.upload(out)
            settings = DetectionSettings(
                score_threshold=float(rng.choice([0.05, 0.25, 0.5])),
                nms_iou_threshold=float(rng.choice([0.3, 0.45, 0.7])),
                max_detections=int(rng.choice([5, 100, 300])),
                class_filter=None if trial % 2 == 0 else frozenset(rng.integers(0, nc, 20).tolist()))
            transform = ImageTransform(float(rng.uniform(0.3, 2)), float(rng.uniform(0.3, 2)),
                                       float(rng.integers(0, 80)), float(rng.integers(0, 80)),
                                       int(rng.integers(100, 2000)), int(rng.integers(100, 2000)))
            want = cpu_reference(adapter, [out], settings, transform)
            got = gpu_decode(decoder, stream, out_dev, settings, transform)
            assert_same(got, want, family)
            if family in NO_NMS:
                # rows with inf/NaN are dropped before the class filter and counted, as on the CPU
                _, dropped = decode_candidates(adapter, [out], settings)
                assert decoder.nonfinite == dropped
    finally:
        decoder.close()
        out_dev.close()


def test_decode_no_candidates_and_all_candidates(cuda_context, stream, rng_seed):
    from trt_infer_ros.cuda.buffers import DeviceBuffer

    rng = np.random.default_rng(rng_seed)
    adapter = YoloV8Adapter(num_classes=80)
    out = yolov8_output(rng, 8400, 80, np.float32)
    decoder = make_decoder(cuda_context, adapter, out.shape, np.float32)
    out_dev = DeviceBuffer(cuda_context, out.nbytes)
    out_dev.upload(out)
    t = ImageTransform(1.0, 1.0, 0.0, 0.0, 640, 640)
    try:
        for thr in (1.5, 0.0):    # nothing passes / every anchor is a candidate (8400 -> sort 16384)
            s = DetectionSettings(score_threshold=thr, nms_iou_threshold=0.5, max_detections=1000)
            got = gpu_decode(decoder, stream, out_dev, s, t)
            assert_same(got, cpu_reference(adapter, [out], s, t), "yolov8")
            assert got[3] == (0 if thr > 1 else 8400)
    finally:
        decoder.close()
        out_dev.close()


def test_live_settings_change_without_recapture(cuda_context, stream, rng_seed):
    """The decode graph is captured once; new thresholds/max_detections/class filter apply."""
    from trt_infer_ros.cuda.buffers import DeviceBuffer
    from trt_infer_ros.cuda.graph import capture

    rng = np.random.default_rng(rng_seed)
    adapter = YoloV8Adapter(num_classes=80)
    out = yolov8_output(rng, 8400, 80, np.float32)
    decoder = make_decoder(cuda_context, adapter, out.shape, np.float32)
    out_dev = DeviceBuffer(cuda_context, out.nbytes)
    out_dev.upload(out)
    t = ImageTransform(0.5, 0.5, 10.0, 20.0, 1280, 1240)
    graph = capture(stream, lambda: decoder.enqueue(out_dev.ptr, stream))
    exe = graph.instantiate()
    try:
        counts = []
        for s in (DetectionSettings(0.5, 0.45, 100), DetectionSettings(0.1, 0.45, 100),
                  DetectionSettings(0.1, 0.45, 7), DetectionSettings(0.1, 0.9, 300),
                  DetectionSettings(0.1, 0.45, 300, frozenset({1, 2, 3}))):
            decoder.set_params(s.score_threshold, s.nms_iou_threshold, s.max_detections,
                               s.class_filter, (t.scale_x, t.scale_y, t.pad_x, t.pad_y,
                                                t.source_width, t.source_height))
            decoder.poison_result()
            exe.launch(stream)
            stream.synchronize()
            got = decoder.read()
            assert_same(got, cpu_reference(adapter, [out], s, t), "yolov8 graph")
            counts.append(len(got[1]))
        assert counts[2] == 7 and len(set(counts)) > 2
    finally:
        exe.close()
        graph.close()
        decoder.close()
        out_dev.close()


def test_final_rows_are_kept_without_suppression(cuda_context, stream):
    """End-to-end rows overlapping completely, same class, equal scores: all are kept (no NMS),
    best first, equal scores in row order, cut at max_detections."""
    from trt_infer_ros.cuda.buffers import DeviceBuffer

    out = np.zeros((1, 300, 6), np.float32)
    for row in range(10):
        out[0, row] = [100 + row * 0.25, 100, 200, 200, 0.5 if row < 8 else 0.75, 3]
    adapter = YoloEnd2EndAdapter(num_classes=80)
    decoder = make_decoder(cuda_context, adapter, out.shape, np.float32)
    out_dev = DeviceBuffer(cuda_context, out.nbytes)
    out_dev.upload(out)
    t = ImageTransform(1.0, 1.0, 0.0, 0.0, 640, 640)
    try:
        s = DetectionSettings(score_threshold=0.25, nms_iou_threshold=0.1, max_detections=7)
        got = gpu_decode(decoder, stream, out_dev, s, t)
        assert_same(got, cpu_reference(adapter, [out], s, t), "yolo_end2end")
        np.testing.assert_array_equal(got[0][:, 0], [102, 102.25] + [100 + r * 0.25 for r in range(5)])
        np.testing.assert_array_equal(got[1], [0.75] * 2 + [0.5] * 5)
        s.score_threshold = 0.0          # all 300 rows, the zero rows after the scored ones
        s.max_detections = 300
        got = gpu_decode(decoder, stream, out_dev, s, t)
        assert_same(got, cpu_reference(adapter, [out], s, t), "yolo_end2end")
        assert len(got[1]) == 300 and got[3] == 300
    finally:
        decoder.close()
        out_dev.close()
