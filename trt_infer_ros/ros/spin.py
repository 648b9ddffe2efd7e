"""The main() every long-running node shares: --help, start, spin, and a quiet, clean stop."""
from __future__ import annotations

import os
import signal
import sys
from typing import Callable, Optional, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import (SignalHandlerOptions, install_signal_handlers,
                           uninstall_signal_handlers)


def wants_help(argv: Sequence[str]) -> bool:
    """`--help`/`-h` before any --ros-args section (what follows --ros-args is rclpy's)."""
    user_args = list(argv)
    if "--ros-args" in user_args:
        user_args = user_args[:user_args.index("--ros-args")]
    return any(a in ("-h", "--help") for a in user_args)


def print_help(text: str) -> None:
    """Print `text`; a reader that stops early (`--help | head`) is not an error."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # quiet exit flush


def run_node(make_node: Callable[[], Node], name: str, args: Optional[Sequence[str]] = None,
             help_text: str = "") -> int:
    """Spin the node `make_node()` builds until Ctrl-C, SIGTERM or shutdown, then exit 0.

    A node that cannot start (bad parameter, missing file) logs why and exits with status 1
    instead of a traceback. Stopping is quiet however it comes: once or twice, SIGINT or
    SIGTERM, with frames in flight.
    """
    argv = list(sys.argv if args is None else args)
    if help_text and wants_help(argv[1:]):
        print_help(help_text)
        return 0
    # While the node starts (model loading, warm-up) a signal raises StopRequested right where
    # the start-up is, so nothing half-built keeps logging to a shut-down context. Once it is
    # built, rclpy's own handlers take over: they wake the executor at once.
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    starting = _StartUpSignals()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, starting)
    executor = SingleThreadedExecutor()
    node = None
    try:
        node = make_node()
        executor.add_node(node)
        install_signal_handlers(SignalHandlerOptions.ALL)
        starting.done = True            # rclpy may chain to it from now on: a no-op then
        executor.spin()
    except (StopRequested, KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as err:
        if rclpy.ok():                  # a real start-up failure, not a stop during start-up
            rclpy.logging.get_logger(name).fatal(f"cannot start: {err}")
            _stop(executor, node)
            return 1
    _stop(executor, node)
    return 0


class StopRequested(BaseException):
    """SIGINT or SIGTERM arrived while the node was starting (a BaseException, like
    KeyboardInterrupt, so that no `except Exception` on the way swallows it)."""


class _StartUpSignals:
    def __init__(self) -> None:
        self.done = False

    def __call__(self, signum, frame) -> None:
        if not self.done:
            raise StopRequested(signal.Signals(signum).name)


def _stop(executor, node: Optional[Node]) -> None:
    # A second Ctrl-C (ros2 launch forwards one per keypress) must not interrupt the bounded
    # clean-up below with a traceback.
    _ignore_stop_signals()
    if node is not None:
        node.destroy_node()
    executor.shutdown(timeout_sec=1.0)
    rclpy.try_shutdown()


def _ignore_stop_signals() -> None:
    uninstall_signal_handlers()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
