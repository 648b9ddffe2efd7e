"""Console entry points of the long-running nodes.

Importing a node pulls in numpy, rclpy and the inference runtimes, a quarter of a second or more
before main() runs. A Ctrl-C or SIGTERM in that time ends the process as quietly as one that
comes later (exit 0, no KeyboardInterrupt traceback); run_node takes over from there.
"""
import signal
import sys


def _exit_quietly_until_started() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(0))


def detector_node() -> int:
    _exit_quietly_until_started()
    from trt_infer_ros.ros.detector_node import main
    return main()


def image_source_node() -> int:
    _exit_quietly_until_started()
    from trt_infer_ros.ros.image_source_node import main
    return main()


def backbone_node() -> int:
    _exit_quietly_until_started()
    from trt_infer_ros.ros.backbone_node import main
    return main()


def head_node() -> int:
    _exit_quietly_until_started()
    from trt_infer_ros.ros.head_node import main
    return main()
