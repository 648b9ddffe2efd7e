import threading

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
