"""CUDA graphs: stream capture, composition from parts, instantiate, replay and update."""
from __future__ import annotations

from typing import Callable, Iterable, Optional

from cuda.bindings import driver

from trt_infer_ros.cuda.context import CudaContext
from trt_infer_ros.cuda.errors import CudaError, check
from trt_infer_ros.cuda.owned import OwnedHandle
from trt_infer_ros.cuda.stream import Stream


class Graph(OwnedHandle):
    """An owned CUgraph (the editable template)."""

    _destroy = "cuGraphDestroy"

    def __init__(self, context: CudaContext, handle) -> None:
        self.context = context
        self.handle = handle

    @classmethod
    def empty(cls, context: CudaContext) -> "Graph":
        context.activate()
        return cls(context, check(driver.cuGraphCreate(0), "cuGraphCreate"))

    def node_count(self) -> int:
        _, count = check(driver.cuGraphGetNodes(self.handle, 0), "cuGraphGetNodes")
        return int(count)

    def add_child(self, child, after: Optional[list] = None):
        """Add `child` (a Graph or a raw CUgraph, cloned by CUDA) as one node after `after`."""
        deps = list(after or [])
        handle = child.handle if isinstance(child, Graph) else child
        return check(driver.cuGraphAddChildGraphNode(self.handle, deps, len(deps), handle),
                     "cuGraphAddChildGraphNode")

    def instantiate(self) -> "GraphExec":
        self.context.activate()
        return GraphExec(self.context, check(driver.cuGraphInstantiate(self.handle, 0),
                                             "cuGraphInstantiate"))


class GraphExec(OwnedHandle):
    """An instantiated, replayable graph."""

    _destroy = "cuGraphExecDestroy"

    def __init__(self, context: CudaContext, handle) -> None:
        self.context = context
        self.handle = handle

    def launch(self, stream: Stream) -> None:
        check(driver.cuGraphLaunch(self.handle, stream.handle), "cuGraphLaunch")

    def update(self, graph: Graph) -> bool:
        """Take the parameters of `graph` (same topology) without re-instantiating; False when
        CUDA refuses the update (the caller then instantiates anew)."""
        self.context.activate()
        result = driver.cuGraphExecUpdate(self.handle, graph.handle)
        return int(result[0]) == 0


def capture(stream: Stream, enqueue: Callable[[], None]) -> Graph:
    """Record everything `enqueue()` puts on `stream` into a new Graph (thread-local mode, so
    other threads' CUDA calls are not affected). The work is recorded, not run."""
    stream.context.activate()
    check(driver.cuStreamBeginCapture(
        stream.handle, driver.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL),
        "cuStreamBeginCapture")
    failure: Optional[BaseException] = None
    try:
        enqueue()
    except BaseException as exc:  # end the capture before re-raising, or the stream stays broken
        failure = exc
    status, handle = driver.cuStreamEndCapture(stream.handle)
    if failure is not None:
        if int(status) == 0 and handle is not None:
            driver.cuGraphDestroy(handle)
        raise failure
    if int(status) != 0:
        check((status,), "cuStreamEndCapture")
    return Graph(stream.context, handle)


def chain(context: CudaContext, parts: Iterable) -> Graph:
    """One graph that runs `parts` (Graphs or raw CUgraphs) one after another, each as a child
    graph node depending on the previous one."""
    graph = Graph.empty(context)
    previous = None
    for part in parts:
        node = graph.add_child(part, [previous] if previous is not None else [])
        previous = node
    if previous is None:
        raise CudaError("CUDA_ERROR_INVALID_VALUE", "no parts to chain", "chain")
    return graph
