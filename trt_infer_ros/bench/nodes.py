"""The graph under test: its nodes started as their own processes, exactly as users start them
(the console commands), and the CPU time they use.

  detector  detector_node                  image -> ~/detections
  split     backbone_node + head_node      image -> features -> ~/detections
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Optional

import psutil


@dataclass(frozen=True)
class GraphSpec:
    name: str
    commands: tuple            # console commands, in start order
    input_remap: str           # the image topic name inside the first node
    output_topic: str          # the Detection2DArray topic of the last node
    remaps: tuple = ()         # (command, "from:=to") wiring the nodes to each other


GRAPHS = {
    "detector": GraphSpec("detector", ("detector_node",), "image", "/detector_node/detections"),
    "split": GraphSpec("split", ("backbone_node", "head_node"), "image",
                       "/head_node/detections",
                       (("head_node", "features:=/backbone_node/features"),)),
}


class GraphUnavailable(RuntimeError):
    """The graph's commands are not installed here; the message says which."""


def find_command(name: str) -> Optional[str]:
    """A console command on PATH, else where `ros2 run` looks: <prefix>/lib/trt_infer_ros/."""
    found = shutil.which(name)
    if found:
        return found
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix
        try:
            candidate = os.path.join(get_package_prefix("trt_infer_ros"), "lib", "trt_infer_ros",
                                     name)
        except PackageNotFoundError:
            return None
    except ImportError:
        return None
    return candidate if os.access(candidate, os.X_OK) else None


def missing_commands(spec: GraphSpec) -> list[str]:
    return [c for c in spec.commands if find_command(c) is None]


@dataclass
class NodeProcess:
    command: str
    argv: list
    proc: subprocess.Popen
    output: deque = field(default_factory=lambda: deque(maxlen=200))

    def tail(self, n: int = 30) -> str:
        return "".join(list(self.output)[-n:])


class RunningGraph:
    """Starts the graph's nodes, samples their CPU time, stops them with SIGINT (as Ctrl-C)."""

    def __init__(self, spec: GraphSpec, input_topic: str, ros_args: list[str],
                 env: Optional[dict] = None) -> None:
        missing = missing_commands(spec)
        if missing:
            raise GraphUnavailable(
                f"graph '{spec.name}' needs {', '.join(spec.commands)}; not installed here: "
                f"{', '.join(missing)}")
        self.spec = spec
        self.nodes: list[NodeProcess] = []
        env = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1",
                   RCUTILS_LOGGING_USE_STDOUT="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
        for command in spec.commands:
            argv = [find_command(command), "--ros-args"]
            if command == spec.commands[0]:
                argv += ["-r", f"{spec.input_remap}:={input_topic}"]
            for target, remap in spec.remaps:
                if target == command:
                    argv += ["-r", remap]
            argv += ros_args
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, env=env)
            node = NodeProcess(command, argv, proc)
            threading.Thread(target=self._drain, args=(node,), daemon=True).start()
            self.nodes.append(node)
        self._ps = {n.command: psutil.Process(n.proc.pid) for n in self.nodes}

    @staticmethod
    def _drain(node: NodeProcess) -> None:
        for line in node.proc.stdout:
            node.output.append(line)

    def check_alive(self) -> None:
        for node in self.nodes:
            if node.proc.poll() is not None:
                raise RuntimeError(f"{node.command} exited with {node.proc.returncode}; its last "
                                   f"output:\n{node.tail()}")

    def cpu_seconds(self) -> dict:
        """CPU seconds (user + system, with child processes) of each node so far."""
        out = {}
        for command, ps in self._ps.items():
            try:
                t = ps.cpu_times()
                out[command] = t.user + t.system + t.children_user + t.children_system
            except psutil.Error:
                out[command] = float("nan")
        return out

    def stop(self, timeout_s: float = 15.0) -> None:
        for node in self.nodes:
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        for node in self.nodes:
            try:
                node.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait()


def cpu_percent(before: dict, after: dict, wall_s: float) -> dict:
    """Percent of one core each node used between two cpu_seconds() readings."""
    return {k: 100.0 * (after[k] - before[k]) / wall_s for k in before} if wall_s > 0 else {}
