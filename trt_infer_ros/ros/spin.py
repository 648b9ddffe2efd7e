"""The main() every long-running node shares: --help, start, spin, and a quiet, clean stop."""
from __future__ import annotations

import signal
import sys
from typing import Callable, Optional, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def wants_help(argv: Sequence[str]) -> bool:
    """`--help`/`-h` before any --ros-args section (what follows --ros-args is rclpy's)."""
    user_args = list(argv)
    if "--ros-args" in user_args:
        user_args = user_args[:user_args.index("--ros-args")]
    return any(a in ("-h", "--help") for a in user_args)


def run_node(make_node: Callable[[], Node], name: str, args: Optional[Sequence[str]] = None,
             help_text: str = "") -> int:
    """Spin the node `make_node()` builds until Ctrl-C, SIGTERM or shutdown, then exit 0.

    A node that cannot start (bad parameter, missing file) logs why and exits with status 1
    instead of a traceback. Stopping is quiet however it comes: once or twice, SIGINT or
    SIGTERM, with frames in flight.
    """
    argv = list(sys.argv if args is None else args)
    if help_text and wants_help(argv[1:]):
        print(help_text)
        return 0
    rclpy.init(args=argv)
    _shutdown_on_sigterm()
    try:
        node = make_node()
    except Exception as err:
        rclpy.logging.get_logger(name).fatal(f"cannot start: {err}")
        _ignore_stop_signals()
        rclpy.try_shutdown()
        return 1
    except KeyboardInterrupt:          # Ctrl-C while the model loads
        _ignore_stop_signals()
        rclpy.try_shutdown()
        return 0
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # A second Ctrl-C (ros2 launch forwards one per keypress) must not interrupt the
        # bounded clean-up below with a traceback.
        _ignore_stop_signals()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _shutdown_on_sigterm() -> None:
    """rclpy handles SIGTERM itself from Iron on; on Humble it would kill the process (-15)."""
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, lambda *_: rclpy.try_shutdown())


def _ignore_stop_signals() -> None:
    try:
        from rclpy.signals import uninstall_signal_handlers
        uninstall_signal_handlers()
    except (ImportError, RuntimeError):
        pass
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
