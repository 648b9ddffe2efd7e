"""Writing a file so that a reader never sees half of it (engines, reports, caches)."""
from __future__ import annotations

import os
import threading


def write_atomic(path: str, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename it over `path` in one step. The
    temporary name is this process's and thread's own, so writers racing for one path (two
    nodes filling a cache at once) never write into each other's file; it is removed when the
    write fails."""
    path = str(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def same_file(a: str, b: str) -> bool:
    """Whether paths `a` and `b` name one file: the same path, a symbolic or a hard link
    (either may not exist yet)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)
