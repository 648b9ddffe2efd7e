"""Writing a file so that a reader never sees half of it (engines, reports)."""
from __future__ import annotations

import os


def write_atomic(path: str, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename it over `path` in one step."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
