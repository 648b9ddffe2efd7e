import threading
import time

from trt_infer_ros.ros import latest_frame
from trt_infer_ros.ros.latest_frame import LatestFrame


def test_only_the_newest_frame_waits():
    box = LatestFrame()
    for frame in range(5):
        box.put(frame)
    assert box.take(timeout=0.1) == 4
    assert box.replaced == 4
    assert box.take(timeout=0.05) is None


def test_close_wakes_a_waiting_worker():
    box = LatestFrame()
    got = []
    worker = threading.Thread(target=lambda: got.append(box.take()))
    worker.start()
    box.close()
    worker.join(timeout=2.0)
    assert not worker.is_alive() and got == [None]


def test_put_returns_once_an_idle_worker_has_taken_the_frame(monkeypatch):
    """The hand-over happens while put() waits (the executor's thread gives up the GIL)."""
    monkeypatch.setattr(latest_frame, "HANDOVER_TIMEOUT_S", 10.0)   # no time-out on a busy machine
    box = LatestFrame()
    got = []
    worker = threading.Thread(target=lambda: got.append(box.take()))
    worker.start()
    while not box._worker_waiting:
        time.sleep(0.001)
    replaced = box.put("frame")
    assert not replaced
    assert box._item is None                           # taken before put() returned
    worker.join(timeout=2.0)
    assert got == ["frame"]


def test_put_does_not_wait_for_a_busy_worker():
    box = LatestFrame()
    start = time.perf_counter()
    box.put("frame")
    box.put("newer")
    assert time.perf_counter() - start < 0.5
    assert box.take(timeout=0.1) == "newer" and box.replaced == 1
