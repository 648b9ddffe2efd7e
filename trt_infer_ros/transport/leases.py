"""Reader and writer leases on byte ranges of a file: Linux open-file-description locks.

A reader holds a shared lease on a slot while it reads; the writer takes an exclusive lease,
without waiting, before it writes, so it can never write a slot someone reads. The kernel
drops a lease when its holder closes the file or dies (a killed consumer frees its slots), and
the leases of two open() calls conflict even inside one process (unlike classic POSIX locks).
"""
from __future__ import annotations

import errno
import fcntl
import struct

F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)     # Linux values
F_OFD_GETLK = getattr(fcntl, "F_OFD_GETLK", 36)
# struct flock on LP64 Linux: l_type, l_whence (short), l_start, l_len (off_t), l_pid (int)
FLOCK = struct.Struct("hhxxxxqqi4x")


def _set(fd: int, kind: int, start: int, length: int) -> bool:
    try:
        fcntl.fcntl(fd, F_OFD_SETLK, FLOCK.pack(kind, 0, start, length, 0))
        return True
    except OSError as err:
        if err.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise


def try_read_lease(fd: int, start: int, length: int) -> bool:
    return _set(fd, fcntl.F_RDLCK, start, length)


def try_write_lease(fd: int, start: int, length: int) -> bool:
    return _set(fd, fcntl.F_WRLCK, start, length)


def release(fd: int, start: int, length: int) -> None:
    _set(fd, fcntl.F_UNLCK, start, length)
