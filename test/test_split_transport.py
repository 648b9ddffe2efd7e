"""The tensor-bundle wire format and the shared-memory ring, without ROS."""
import multiprocessing
import os
import re
import signal
import struct
import time

import numpy as np
import pytest

from trt_infer_ros.models.spec import ImageTransform
from trt_infer_ros.transport import bundle as wire
from trt_infer_ros.transport.receiver import FeatureReceiver
from trt_infer_ros.transport.sender import FeatureSender
from trt_infer_ros.transport.shm_ring import (ForeignHandle, RingFull, ShmRingReader,
                                              ShmRingWriter, StaleHandle)

TRANSFORM = ImageTransform(0.5, 0.25, 3.0, 64.0, 1280, 720)
DTYPES = ["?", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8"]
SHAPES = [(), (0,), (1,), (3, 5), (1, 64, 80, 80), (2, 1, 3, 1, 2)]


def sample(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random(shape) * 100).astype(dtype)


@pytest.mark.parametrize("order", ["<", ">"])
def test_every_dtype_and_shape_round_trips_in_both_byte_orders(order):
    arrays = {f"{d}{i}": sample(np.dtype(d).newbyteorder(order), s, i)
              for d in DTYPES for i, s in enumerate(SHAPES)}
    raw = wire.encode_inline(42, (7, 8), "cam", TRANSFORM, arrays)
    got = wire.decode(raw)
    assert (got.seq, got.stamp, got.frame_id, got.transform) == (42, (7, 8), "cam", TRANSFORM)
    views = wire.tensor_views(got.tensors, got.payload)
    for name, a in arrays.items():
        assert views[name].shape == a.shape and views[name].dtype == a.dtype.newbyteorder("=")
        np.testing.assert_array_equal(views[name], a)
    # On the wire every tensor is little-endian, 64-byte aligned.
    assert all(t.dtype.byteorder in "<|=" and t.offset % 64 == 0 for t in got.tensors)


def test_a_big_endian_tensor_written_by_another_producer_is_read_in_native_order():
    a = np.arange(12, dtype=">f4").reshape(3, 4)
    meta = ('{"seq":1,"stamp":[0,0],"frame_id":"","transform":[1,1,0,0,4,3],"tensors":'
            '[{"name":"a","dtype":">f4","shape":[3,4],"offset":0,"nbytes":48}],'
            '"location":{"kind":"inline"}}').encode()
    offset = (16 + len(meta) + 63) // 64 * 64
    head = struct.pack("<4sHHII", b"TIRB", 1, 0, len(meta), offset) + meta
    got = wire.decode(head + b"\0" * (offset - len(head)) + a.tobytes())
    view = wire.tensor_views(got.tensors, got.payload)["a"]
    assert view.dtype.isnative
    np.testing.assert_array_equal(view, np.arange(12, dtype=np.float32).reshape(3, 4))


def test_bad_bundles_raise_bundle_error():
    good = bytes(wire.encode_inline(1, (0, 0), "", TRANSFORM, {"x": np.ones((4, 4), "f4")}))
    version2 = good[:4] + struct.pack("<H", 2) + good[6:]
    bad_magic = b"XXXX" + good[4:]
    refused = [b"", good[:10], good[:40], good[:-1], version2, bad_magic,
               good.replace(b'"<f4"', b'"|O8"'), good.replace(b'"<f4"', b'"<c8"'),
               good.replace(b'"nbytes":64', b'"nbytes":60')]
    for raw in refused:
        with pytest.raises(wire.BundleError):
            b = wire.decode(raw)
            wire.tensor_views(b.tensors, b.payload)


def test_shared_memory_hand_off_and_stale_foreign_handles():
    arrays = {"p3": sample("f4", (1, 64, 80, 80)), "p5": sample("f2", (1, 256, 20, 20))}
    infos, size = wire.plan_layout(arrays)
    writer, reader = ShmRingWriter(2, size), ShmRingReader()
    try:
        location = writer.write(arrays, infos)
        handle = wire.decode(wire.encode_handle(1, (0, 0), "", TRANSFORM, infos, location))
        received = FeatureReceiver()
        with received.open(wire.encode_handle(1, (0, 0), "", TRANSFORM, infos, location)) as r:
            for name in arrays:
                np.testing.assert_array_equal(r.arrays[name], arrays[name])
        received.close()
        writer.write(arrays, infos)
        writer.write(arrays, infos)                 # slot 0 now holds a newer frame
        with pytest.raises(StaleHandle):
            reader.lease(handle.location, handle.tensors)
        with pytest.raises(ForeignHandle):
            reader.lease(dict(location, host="other-host/boot"), infos)
        with pytest.raises(ForeignHandle):
            reader.lease(dict(location, path="/etc/passwd"), infos)
        with pytest.raises(StaleHandle):
            reader.lease(dict(location, ring_id=location["ring_id"] + 2), infos)
    finally:
        writer.close()
        reader.close()
    with pytest.raises(StaleHandle):                # the producer is gone
        ShmRingReader().lease(location, infos)


def test_the_writer_skips_a_slot_being_read_and_reports_a_full_ring():
    arrays = {"x": np.zeros(1000, "u1")}
    infos, size = wire.plan_layout(arrays)
    writer, reader = ShmRingWriter(2, size), ShmRingReader()
    try:
        first = writer.write(arrays, infos)
        lease = reader.lease(first, infos)
        assert writer.write(arrays, infos)["slot"] == 1
        assert writer.write(arrays, infos)["slot"] == 1     # slot 0 is leased: skipped
        second = writer.write(arrays, infos)
        with reader.lease(second, infos):
            with pytest.raises(RingFull):
                writer.write(arrays, infos)
        lease.release()
        assert writer.write(arrays, infos)["slot"] == 0
    finally:
        writer.close()
        reader.close()


def _produce(ring_queue, handles, stop, slots, size):
    """Writes frames as fast as it can; every byte of frame n is n % 251."""
    writer = ShmRingWriter(slots, size)
    ring_queue.put(writer.path)
    infos, _ = wire.plan_layout({"x": np.zeros(size, "u1")})
    n = 0
    while not stop.is_set():
        n += 1
        frame = {"x": np.full(size, n % 251, "u1")}
        try:
            location = writer.write(frame, infos)
        except RingFull:
            continue
        location["n"] = n
        try:
            handles.put_nowait(location)
        except Exception:
            pass
    writer.close()


def _hold(handles, infos, report):
    """A reader process that takes a lease, says which slot, and waits to be killed."""
    reader = ShmRingReader()
    while True:
        location = handles.get(timeout=10)
        try:
            reader.lease(location, infos)
        except StaleHandle:
            continue
        report.put(location)
        time.sleep(60)


def test_a_fast_writer_never_overwrites_a_slot_a_slow_reader_holds():
    """Stress: the writer loops without pause in another process while this reader holds each
    leased slot for a while and checks every byte at the start and the end of its hold."""
    ctx = multiprocessing.get_context("spawn")
    size, slots = 1 << 16, 3
    ring_queue, handles, stop = ctx.Queue(), ctx.Queue(maxsize=4), ctx.Event()
    producer = ctx.Process(target=_produce, args=(ring_queue, handles, stop, slots, size))
    producer.start()
    try:
        ring_queue.get(timeout=30)
        infos, _ = wire.plan_layout({"x": np.zeros(size, "u1")})
        reader = ShmRingReader()
        checked = stale = 0
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            location = handles.get(timeout=10)
            try:
                lease = reader.lease(location, infos)
            except StaleHandle:
                stale += 1
                continue
            with lease:
                expected = location["n"] % 251
                x = lease.arrays["x"]
                assert (x == expected).all(), "a leased slot was written"
                time.sleep(0.002)
                assert (x == expected).all(), "a leased slot was written while held"
                checked += 1
        reader.close()
        assert checked > 50 and stale > 0, (checked, stale)
        # A killed consumer frees its lease: the writer gets every slot back.
        report = ctx.Queue()
        holder = ctx.Process(target=_hold, args=(handles, infos, report))
        holder.start()
        location = report.get(timeout=30)
        while not handles.empty():
            handles.get_nowait()
        held = {handles.get(timeout=10)["slot"] for _ in range(20)}
        assert location["slot"] not in held, "the writer used a slot a reader holds"
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(10)
        while not handles.empty():
            handles.get_nowait()
        freed = {handles.get(timeout=10)["slot"] for _ in range(30)}
        assert freed == set(range(slots)), "the killed reader's slot came back"
    finally:
        stop.set()
        producer.join(10)
        if producer.is_alive():
            producer.kill()
    assert producer.exitcode == 0


def test_a_reserved_slot_is_written_in_place_and_published_only_on_commit():
    arrays = {"a": sample("f4", (2, 3, 4)), "b": sample("i2", (5,))}
    infos, size = wire.plan_layout(arrays)
    writer, reader = ShmRingWriter(2, size), ShmRingReader()
    try:
        with writer.reserve(infos) as slot:
            for name, view in slot.arrays.items():
                assert np.shares_memory(view, writer.slot_memory(slot.slot))
                view[...] = arrays[name]
            location = slot.commit()
        with reader.lease(location, infos) as lease:
            for name in arrays:
                np.testing.assert_array_equal(lease.arrays[name], arrays[name])
        with writer.reserve(infos) as abandoned:          # e.g. the runner failed
            pass
        gone = dict(location, slot=abandoned.slot, slot_seq=location["slot_seq"] + 1)
        with pytest.raises(StaleHandle):
            reader.lease(gone, infos)
        # a reserved slot counts as busy: with the other one leased the ring is full
        with reader.lease(location, infos), writer.reserve(infos):
            with pytest.raises(RingFull):
                writer.reserve(infos)
    finally:
        writer.close()
        reader.close()


@pytest.fixture(scope="module")
def split_model(tmp_path_factory):
    from trt_infer_ros.engine.split_cache import split_files
    from trt_infer_ros.resources import default_model_path
    model = default_model_path()
    if not model.is_file():
        pytest.skip("bundled model missing")
    return str(model), split_files(str(model), [], str(tmp_path_factory.mktemp("split")))


def test_the_backbone_writes_into_the_slot_and_detections_match_the_whole_model(split_model):
    import cv2

    from trt_infer_ros.backends.onnxruntime_runner import OnnxRuntimeRunner
    from trt_infer_ros.models.registry import create_adapter
    from trt_infer_ros.pipeline.detector import DetectionPipeline
    from trt_infer_ros.pipeline.split import BackboneStage, HeadStage
    from trt_infer_ros.resources import sample_images_dir

    model, files = split_model
    backbone = BackboneStage(create_adapter("auto", model), OnnxRuntimeRunner(files.backbone))
    head = HeadStage(create_adapter("auto", model), OnnxRuntimeRunner(files.head),
                     input_names=list(files.cut_tensors))
    whole = DetectionPipeline(create_adapter("auto", model), OnnxRuntimeRunner(model))
    sender, receiver = FeatureSender("shared_memory", 3, lambda _: None), FeatureReceiver()
    photos = sorted(sample_images_dir().glob("*.jpg"))[:2]
    try:
        for path in photos:
            image = cv2.imread(str(path))
            plain, _ = backbone(image, "bgr8")          # also learns the output layout
            with sender.frame(backbone.output_specs) as out:
                features, transform = backbone(image, "bgr8", out.arrays)
                slot = out.slot.slot
                bundle = out.bundle((1, 2), "cam", transform, features)
            memory = sender.ring.slot_memory(slot)
            for name, a in features.items():
                assert np.shares_memory(a, memory), f"{name} was not written into the slot"
                np.testing.assert_array_equal(a, plain[name])
            with receiver.open(bundle) as received:
                assert received.bundle.kind == "shm"
                split = head(received.arrays, received.bundle.transform)
            expected = whole(image, "bgr8")
            np.testing.assert_array_equal(split.class_ids, expected.class_ids)
            np.testing.assert_allclose(split.scores, expected.scores, atol=1e-6)
            np.testing.assert_allclose(split.boxes, expected.boxes, atol=1e-3)
            assert len(expected.scores) > 0
    finally:
        sender.close()
        receiver.close()
        for stage in (backbone, head):
            stage.close()


def test_run_into_writes_every_bound_output_in_place_and_matches_run(split_model):
    from trt_infer_ros.backends.onnxruntime_runner import OnnxRuntimeRunner

    _, files = split_model
    runner = OnnxRuntimeRunner(files.backbone)
    tensor = (np.random.default_rng().random(runner.input_shape) * 255).astype(np.float32)
    expected = runner.run(tensor)
    first = runner.output_names[0]
    dest = np.full(expected[0].shape, np.nan, expected[0].dtype)      # poisoned
    got = runner.run_into(tensor, {first: dest})
    assert got[0] is dest
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        runner.run_into(tensor, {first: dest[..., ::2]})


def test_the_head_warms_up_on_blank_tensors_shaped_as_the_backbone_sends_them(split_model,
                                                                              tmp_path):
    import onnx

    from trt_infer_ros.pipeline.split import HeadStage, build_backbone, build_head
    from trt_infer_ros.ros.warm_up import blank_frame

    model, files = split_model
    backbone = build_backbone(model, files.backbone, backend="onnxruntime")
    head = build_head(model, files.head, backend="onnxruntime",
                      input_names=list(files.cut_tensors))
    try:
        features, _ = backbone(blank_frame(backbone.adapter.input_spec), "bgr8")
        blank = head.blank_features()
        assert {n: (a.shape, a.dtype) for n, a in blank.items()} == \
            {n: (a.shape, a.dtype) for n, a in features.items()}
        assert all(not a.any() for a in blank.values())
        assert len(head.run_model(blank)) == len(head.runner.output_names)
        # A head whose file leaves a dimension open cannot be warmed up before its first bundle.
        dynamic = onnx.load(files.head)
        dynamic.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
        onnx.save(dynamic, str(tmp_path / "dynamic_head.onnx"))
        for path in (tmp_path / "dynamic_head.onnx", tmp_path / "head.engine"):
            assert HeadStage(head.adapter, head.runner, input_names=head.input_names,
                             model_path=str(path)).blank_features() is None
    finally:
        backbone.close()
        head.close()


def test_a_head_given_features_of_another_input_size_says_so(split_model):
    from trt_infer_ros.models.spec import ImageTransform
    from trt_infer_ros.pipeline.split import CutMismatch, build_head

    model, files = split_model
    head = build_head(model, files.head, backend="onnxruntime",
                      input_names=list(files.cut_tensors))
    try:
        features = head.blank_features()
        name = next(iter(features))
        shape = features[name].shape
        features[name] = np.zeros((shape[0], shape[1] // 2, *shape[2:]), features[name].dtype)
        with pytest.raises(CutMismatch, match=f"sends {re.escape(name)} as .*this head takes "
                                              ".* same model_path and input_size"):
            head(features, ImageTransform(1.0, 1.0, 0.0, 0.0, 512, 512))
    finally:
        head.close()
