"""The lifetime every CUDA object of this package shares: destroyed once, by close or GC."""
from __future__ import annotations

from cuda.bindings import driver

from trt_infer_ros.cuda.errors import check


class OwnedHandle:
    """Owns `self.handle`; subclasses name the driver call that destroys it.

    close() is idempotent, runs in the owning context, and is also what `with` and garbage
    collection call, so a frame loop can never leak a stream, event, graph or module.
    """

    _destroy: str = ""          # name of the cuda.bindings.driver function, e.g. "cuStreamDestroy"
    handle = None
    context = None

    def close(self) -> None:
        handle, self.handle = self.handle, None
        if handle is None:
            return
        if self.context is not None:
            self.context.activate()
        check(getattr(driver, self._destroy)(handle), self._destroy)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:   # interpreter shutdown or a dead context: nothing left to free
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
