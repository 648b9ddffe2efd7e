"""Which machine this is, as the kernel knows it: two processes with the same id share /dev/shm
unless a container separates them (then the ring file is missing and the reader says so)."""
from __future__ import annotations

import functools
import socket


@functools.lru_cache(maxsize=1)
def host_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip()
    except OSError:
        boot = "no-boot-id"
    return f"{socket.gethostname()}/{boot}"
