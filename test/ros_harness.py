"""Helpers for tests that run real rclpy nodes over real DDS in one process."""
from __future__ import annotations

import os
import time

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor


def domain_id() -> int:
    """This run's DDS domain (scripts/test.sh picks one per run); child processes need it too."""
    return int(os.environ.get("ROS_DOMAIN_ID", 1 + os.getpid() % 100))


def isolated_context() -> Context:
    """A fresh rclpy context on this run's domain."""
    context = Context()
    rclpy.init(context=context, domain_id=domain_id())
    return context


def spin_until(executor: SingleThreadedExecutor, done, timeout_s: float) -> bool:
    """Spin until `done()` is true; False when `timeout_s` passed first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return True
        executor.spin_once(timeout_sec=0.05)
    return done()


def wait_for_subscribers(executor, publisher, count: int = 1, timeout_s: float = 10.0) -> None:
    assert spin_until(executor, lambda: publisher.get_subscription_count() >= count, timeout_s), \
        f"no subscriber matched {publisher.topic_name} within {timeout_s} s"
