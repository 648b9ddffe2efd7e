"""Console entry points of the long-running nodes.

Importing a node pulls in numpy, rclpy and the inference runtimes, a quarter of a second or more
before main() runs. A Ctrl-C or SIGTERM in that time ends the process as quietly as one that
comes later (exit 0, no KeyboardInterrupt traceback); run_node takes over from there.
"""
import importlib
import signal
import sys


def _run(node_module: str) -> int:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(0))
    return importlib.import_module(f"trt_infer_ros.ros.{node_module}").main()


def detector_node() -> int:
    return _run("detector_node")


def image_source_node() -> int:
    return _run("image_source_node")


def backbone_node() -> int:
    return _run("backbone_node")


def head_node() -> int:
    return _run("head_node")
