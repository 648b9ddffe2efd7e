"""Ending the child processes a benchmark starts."""
from __future__ import annotations

import subprocess

STOP_TIMEOUT_S = 10.0


def stop_process(proc: subprocess.Popen, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, and SIGKILL when it is still there after `timeout_s`: an rclpy process can hang
    in its middleware's shutdown, and a benchmark's helper holds nothing worth waiting for."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
