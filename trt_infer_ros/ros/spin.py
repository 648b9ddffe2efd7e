"""The main() every long-running node shares: start, spin, shut down cleanly."""
from __future__ import annotations

from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def run_node(make_node: Callable[[], Node], name: str, args=None) -> int:
    """Spin the node `make_node()` builds until Ctrl-C or shutdown.

    A node that cannot start (bad parameter, missing file) logs why and exits with status 1
    instead of a traceback.
    """
    rclpy.init(args=args)
    try:
        node = make_node()
    except Exception as err:
        rclpy.logging.get_logger(name).fatal(f"cannot start: {err}")
        rclpy.try_shutdown()
        return 1
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
