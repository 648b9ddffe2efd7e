"""CUDA IPC between two real processes: device buffers exported by one, opened and read by the
other; slot leases keep a slot being read from being rewritten; stale handles are refused."""
from __future__ import annotations

import multiprocessing

import numpy as np
import pytest

from trt_infer_ros.models.spec import ImageTransform
from trt_infer_ros.transport import bundle as wire

SHAPES = {"p3": (1, 64, 80, 80), "p4": (1, 128, 40, 40), "p5": (1, 256, 20, 20)}


@pytest.fixture
def ipc_context(cuda_context):
    from trt_infer_ros.cuda.ipc import ipc_unsupported_reason
    reason = ipc_unsupported_reason(cuda_context)
    if reason:
        pytest.skip(reason)
    return cuda_context


def _frame(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}


def _producer(conn, slots):
    """Owns a device ring; on ("write", seed) fills a slot from the host with cuMemcpyHtoD and
    answers the handle's location (or "full"); on ("send", seed) answers a FeatureSender
    bundle (transport cuda_ipc)."""
    from trt_infer_ros.cuda.context import CudaContext
    from trt_infer_ros.transport.cuda_ring import CudaRingWriter
    from trt_infer_ros.transport.sender import FeatureSender
    from trt_infer_ros.transport.shm_ring import RingFull
    context = CudaContext.primary()
    infos, size = wire.plan_layout(_frame(0))
    ring = CudaRingWriter(context, slots, size)
    logs = []
    sender = FeatureSender("cuda_ipc", slots, logs.append)
    conn.send("ready")
    while True:
        command = conn.recv()
        if command is None:
            break
        what, seed = command
        if what == "write":
            try:
                with ring.reserve(infos) as slot:
                    slot.upload(_frame(seed))
                    conn.send(slot.commit())
            except RingFull:
                conn.send("full")
        else:
            conn.send((bytes(sender.encode((seed, 0), "cam", ImageTransform(1, 1, 0, 0, 80, 80),
                                           _frame(seed))), logs))
    sender.close()
    ring.close()
    conn.send("closed")


@pytest.fixture
def producer(ipc_context):
    ctx = multiprocessing.get_context("spawn")
    mine, theirs = ctx.Pipe()
    process = ctx.Process(target=_producer, args=(theirs, 2))
    process.start()
    assert mine.poll(60) and mine.recv() == "ready"

    def ask(what, seed=0):
        mine.send((what, seed))
        assert mine.poll(30), "the producer did not answer"
        return mine.recv()

    yield ask
    mine.send(None)
    mine.poll(30)
    process.join(30)
    if process.is_alive():
        process.kill()
    assert process.exitcode == 0


def test_bytes_written_on_the_device_by_one_process_are_read_by_another(ipc_context, producer,
                                                                       rng_seed):
    from trt_infer_ros.transport.cuda_ring import CudaRingReader
    infos, _ = wire.plan_layout(_frame(0))
    reader = CudaRingReader(ipc_context)
    try:
        for seed in (rng_seed, rng_seed + 1, rng_seed + 2):
            location = producer("write", seed)
            assert location["kind"] == "cuda_ipc"
            with reader.lease(location, infos) as lease:
                got = lease.arrays()
            for name, expected in _frame(seed).items():
                np.testing.assert_array_equal(got[name], expected)
    finally:
        reader.close()


def test_a_leased_device_slot_is_never_rewritten_and_stale_handles_are_refused(ipc_context,
                                                                               producer):
    from trt_infer_ros.transport.cuda_ring import CudaRingReader
    from trt_infer_ros.transport.shm_ring import ForeignHandle, StaleHandle
    infos, _ = wire.plan_layout(_frame(0))
    reader = CudaRingReader(ipc_context)
    try:
        first = producer("write", 1)
        lease = reader.lease(first, infos)
        for seed in (2, 3, 4):                    # the other slot takes every new frame
            assert producer("write", seed)["slot"] != first["slot"]
        latest = producer("write", 5)
        with reader.lease(latest, infos):
            assert producer("write", 6) == "full"  # both slots read: the frame is skipped
        np.testing.assert_array_equal(lease.arrays()["p3"], _frame(1)["p3"])
        lease.release()
        assert producer("write", 7)["slot"] == first["slot"]
        with pytest.raises(StaleHandle):            # slot reused for a newer frame
            reader.lease(first, infos)
        with pytest.raises(ForeignHandle):
            reader.lease(dict(latest, host="elsewhere/boot"), infos)
    finally:
        reader.close()


def test_the_sender_and_receiver_hand_off_through_cuda_ipc(ipc_context, producer):
    from trt_infer_ros.transport.receiver import FeatureReceiver
    receiver = FeatureReceiver()
    try:
        for seed in (11, 12, 13):
            raw, logs = producer("send", seed)
            with receiver.open(raw) as received:
                assert received.bundle.kind == "cuda_ipc" and received.bundle.stamp == (seed, 0)
                assert set(received.device_tensors) == set(SHAPES)
                for name, expected in _frame(seed).items():
                    np.testing.assert_array_equal(received.arrays[name], expected)
        assert any(line.startswith("features go CUDA IPC") for line in logs), logs
    finally:
        receiver.close()
