"""A ring of shared-memory slots between one producer and any number of readers on one host.

The ring is one file in /dev/shm. Each frame's tensors go into a free slot; the message carries
only a handle (file, ring id, slot, slot sequence). Safety:
- leases (transport/leases.py): a reader holds a shared lease on the slot while it reads; the
  writer takes the slot only with an exclusive lease it gets without waiting. A slot being read
  is skipped; when every slot is being read the frame is skipped (`RingFull`), never written
  over a reader;
- sequence check: each slot records the sequence of the frame it holds (0 while written). A
  reader whose handle names an older frame than the slot holds gets `StaleHandle`;
- zero copy: `reserve()` hands out writable views of a leased slot, so a runner can write its
  outputs there and `commit()` publishes them; `write()` copies arrays in for other runners;
- a ring id (random per ring) and the host id tell a restarted producer's or another host's
  handle from a current one (`StaleHandle` / `ForeignHandle`).

File layout (little-endian): a 4096-byte header, then `slot_count` slots of `slot_size` bytes.
  0   magic b"TIRR", u32 version (1), u64 ring id, u32 slot count, u32 reserved,
      u64 slot size, u64 data offset
  64 + 64*i   slot i: u64 sequence (0 = empty or being written), u64 bytes used
Leases lock the 64-byte slot record, not the data.
"""
from __future__ import annotations

import mmap
import os
import re
import secrets
import struct
import time

import numpy as np

from trt_infer_ros.transport import leases
from trt_infer_ros.transport.bundle import ALIGN, BundleError, tensor_views, write_tensors
from trt_infer_ros.transport.host import host_id

SHM_DIR = "/dev/shm"
NAME = re.compile(r"trt_infer_ros-ring-[0-9a-f]{16}")
HEADER = struct.Struct("<4sIQIIQQ")
MAGIC = b"TIRR"
VERSION = 1
HEADER_SIZE = 4096
SLOT = struct.Struct("<QQ")
SLOT_RECORD = 64
MAX_SLOTS = (HEADER_SIZE - 64) // SLOT_RECORD
READ_WAIT_S = 0.05           # a writer holds a slot only while it fills one frame


class RingError(RuntimeError):
    pass


class RingFull(RingError):
    """Every slot is being read: the producer skips this frame."""


class StaleHandle(BundleError):
    """The handle names a ring or a frame that is gone (producer restarted, slot reused)."""


class ForeignHandle(BundleError):
    """The handle names another host's (or an unreadable) ring: inline bytes are needed."""


def _record(slot: int) -> int:
    return 64 + slot * SLOT_RECORD


class ShmRingWriter:
    """The producer's side: `write(arrays, infos)` -> the handle's location dict."""

    def __init__(self, slot_count: int, slot_size: int) -> None:
        if not 1 <= slot_count <= MAX_SLOTS:
            raise ValueError(f"slot_count must be within 1..{MAX_SLOTS}")
        self.slot_count = slot_count
        self.slot_size = (slot_size + ALIGN - 1) // ALIGN * ALIGN
        self.ring_id = secrets.randbits(63) | 1
        self.path = os.path.join(SHM_DIR, f"trt_infer_ros-ring-{secrets.token_hex(8)}")
        total = HEADER_SIZE + slot_count * self.slot_size
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        # Held for the writer's life: a ring whose header lease is free has no producer left.
        leases.try_write_lease(self._fd, 0, 64)
        try:
            os.ftruncate(self._fd, total)
            self._map = mmap.mmap(self._fd, total)
        except Exception:
            os.close(self._fd)
            os.unlink(self.path)
            raise
        HEADER.pack_into(self._map, 0, MAGIC, VERSION, self.ring_id, slot_count, 0,
                         self.slot_size, HEADER_SIZE)
        remove_orphan_rings()
        self._next = 0
        self._seq = 0
        self._reserved: set[int] = set()
        self.skipped_busy = 0          # slots passed over because a reader held them

    kind = "shm"

    @property
    def description(self) -> str:
        return (f"shared memory ({self.slot_count} slots of {self.slot_size} bytes in "
                f"{self.path})")

    def write(self, arrays, infos) -> dict:
        """Copy one frame into a free slot; the location a handle bundle carries.

        Raises RingFull when every slot is being read.
        """
        with self.reserve(infos) as slot:
            write_tensors(arrays, infos, slot.memory)
            return slot.commit()

    def reserve(self, infos) -> "SlotWrite":
        """A free slot, exclusively leased, with writable views for `infos` at their offsets:
        a runner writes its outputs there directly, then `commit()` publishes the frame.

        Raises RingFull when every slot is being read.
        """
        size = max((i.offset + i.nbytes for i in infos), default=0)
        if size > self.slot_size:
            raise ValueError(f"frame of {size} bytes exceeds the slot size {self.slot_size}")
        return SlotWrite(self, self.acquire(), infos, size)

    def acquire(self) -> int:
        """A free slot, exclusively leased and marked "being written"; `publish` or `abandon`
        it. Raises RingFull when every slot is being read."""
        slot = self._acquire()
        SLOT.pack_into(self._map, _record(slot), 0, 0)    # readers now see "being written"
        return slot

    def slot_memory(self, slot: int) -> np.ndarray:
        """Slot `slot`'s bytes as a writable uint8 array (no copy)."""
        start = HEADER_SIZE + slot * self.slot_size
        return np.frombuffer(self._map, np.uint8, self.slot_size, start)

    def publish(self, slot: int, size: int, kind: str = "shm") -> dict:
        """Record the slot's new frame, free its lease; the location a handle carries."""
        self._seq += 1
        SLOT.pack_into(self._map, _record(slot), self._seq, size)
        self._release(slot)
        return {"kind": kind, "path": self.path, "ring_id": self.ring_id, "slot": slot,
                "slot_seq": self._seq, "host": host_id()}

    def abandon(self, slot: int) -> None:
        self._release(slot)                # the slot stays empty (sequence 0)

    def _release(self, slot: int) -> None:
        self._reserved.discard(slot)
        leases.release(self._fd, _record(slot), SLOT_RECORD)

    def _acquire(self) -> int:
        for i in range(self.slot_count):
            slot = (self._next + i) % self.slot_count
            # Our own leases never conflict with each other (one open file description).
            if slot not in self._reserved and leases.try_write_lease(self._fd, _record(slot), SLOT_RECORD):
                self._next = (slot + 1) % self.slot_count
                self._reserved.add(slot)
                return slot
            self.skipped_busy += 1
        raise RingFull(f"all {self.slot_count} slots are being read")

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        try:
            self._map.close()
        except BufferError:
            pass             # a runner's output view of a slot is alive; freed with it
        os.close(self._fd)
        self._fd = -1


class SlotWrite:
    """One slot being written: `arrays` (name -> writable view into the slot), then `commit()`
    -> the handle's location. Leaving a `with` block without commit leaves the slot empty."""

    def __init__(self, ring: ShmRingWriter, slot: int, infos, size: int) -> None:
        self._ring, self.slot, self._size, self.infos = ring, slot, size, infos
        self.memory = ring.slot_memory(slot)
        self.arrays = {i.name: self.memory[i.offset:i.offset + i.nbytes].view(i.dtype)
                       .reshape(i.shape) for i in infos}

    def commit(self) -> dict:
        if self._ring is None:
            raise RingError("slot already committed or abandoned")
        ring, self._ring = self._ring, None
        self.arrays, self.memory = {}, None
        return ring.publish(self.slot, self._size)

    def abort(self) -> None:
        if self._ring is not None:
            ring, self._ring = self._ring, None
            self.arrays, self.memory = {}, None
            ring.abandon(self.slot)

    def __enter__(self) -> "SlotWrite":
        return self

    def __exit__(self, *exc) -> None:
        self.abort()


def remove_orphan_rings() -> int:
    """Unlink rings of producers that died without cleaning up (killed, power cut); the
    number removed. A ring whose producer lives keeps its header lease and is left alone."""
    removed = 0
    for name in os.listdir(SHM_DIR):
        if not NAME.fullmatch(name):
            continue
        path = os.path.join(SHM_DIR, name)
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            continue                     # another user's ring, or gone already
        try:
            if leases.try_write_lease(fd, 0, 64):
                os.unlink(path)
                removed += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


class _OpenRing:
    def __init__(self, path: str, ring_id: int) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(self.fd).st_size
            if size < HEADER_SIZE:
                raise StaleHandle(f"ring {path} is not a ring (size {size})")
            self.map = mmap.mmap(self.fd, size, prot=mmap.PROT_READ)
        except Exception:
            os.close(self.fd)
            raise
        magic, version, rid, count, _, slot_size, data = HEADER.unpack_from(self.map, 0)
        if magic != MAGIC or version != VERSION:
            self.close()
            raise StaleHandle(f"{path} is not a version-{VERSION} ring")
        if rid != ring_id:
            self.close()
            raise StaleHandle(f"ring {path} was replaced (ring id {rid}, handle says {ring_id})")
        if count > MAX_SLOTS or data + count * slot_size > size:
            self.close()
            raise StaleHandle(f"ring {path} has an inconsistent header")
        self.path, self.ring_id, self.count, self.slot_size, self.data = \
            path, rid, count, slot_size, data

    def close(self) -> None:
        try:
            self.map.close()
        except (BufferError, AttributeError):
            pass                 # a view is still alive; the kernel frees the map with us
        os.close(self.fd)


class SlotLease:
    """A reader's hold on one slot; `arrays` are views into the ring, valid until release()."""

    def __init__(self, ring: _OpenRing, slot: int, arrays: dict, view: memoryview) -> None:
        self._ring, self._slot, self.arrays, self._view = ring, slot, arrays, view

    def release(self) -> None:
        if self._ring is None:
            return
        self.arrays = {}
        self._view.release()
        leases.release(self._ring.fd, _record(self._slot), SLOT_RECORD)
        self._ring = None

    def __enter__(self) -> "SlotLease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class ShmRingReader:
    """The consumer's side: `lease(location, infos)` -> SlotLease, or StaleHandle/ForeignHandle."""

    def __init__(self, keep_rings: int = 4) -> None:
        self._rings: dict[str, _OpenRing] = {}
        self._keep = keep_rings

    def lease(self, location: dict, infos) -> SlotLease:
        ring, slot, used = self.hold(location)
        try:
            start = ring.data + slot * ring.slot_size
            view = memoryview(ring.map)[start:start + used]
            try:
                arrays = tensor_views(infos, view)
            except Exception:
                view.release()
                raise
            return SlotLease(ring, slot, arrays, view)
        except BaseException:
            self.release(ring, slot)
            raise

    def hold(self, location: dict) -> tuple:
        """Take a read lease on the slot a handle names: (ring, slot, bytes used); `release`
        it. StaleHandle / ForeignHandle when the handle cannot be honoured."""
        if location.get("host") != host_id():
            raise ForeignHandle(f"the ring is on host {location.get('host')!r}, not this one")
        path = str(location.get("path", ""))
        if os.path.dirname(path) != SHM_DIR or not NAME.fullmatch(os.path.basename(path)):
            raise ForeignHandle(f"{path!r} is not a ring name this package makes")
        ring = self._ring(path, int(location["ring_id"]))
        slot, seq = int(location["slot"]), int(location["slot_seq"])
        if not 0 <= slot < ring.count:
            raise StaleHandle(f"slot {slot} is not in the ring ({ring.count} slots)")
        record = _record(slot)
        # A slot holding another frame (or being rewritten: 0) needs no wait for its lease.
        held_seq, _ = SLOT.unpack_from(ring.map, record)
        if held_seq != seq:
            raise StaleHandle(f"frame {seq} in slot {slot} was replaced by frame {held_seq}"
                              if held_seq else f"slot {slot} is empty or being rewritten")
        deadline = time.monotonic() + READ_WAIT_S
        while not leases.try_read_lease(ring.fd, record, SLOT_RECORD):
            if time.monotonic() > deadline:
                raise StaleHandle(f"slot {slot} is being rewritten")
            time.sleep(0.0005)
        held_seq, used = SLOT.unpack_from(ring.map, record)
        if held_seq != seq:
            leases.release(ring.fd, record, SLOT_RECORD)
            raise StaleHandle(f"frame {seq} in slot {slot} was replaced by frame {held_seq}"
                              if held_seq else f"slot {slot} is empty")
        return ring, slot, used

    @staticmethod
    def release(ring: _OpenRing, slot: int) -> None:
        leases.release(ring.fd, _record(slot), SLOT_RECORD)

    def _ring(self, path: str, ring_id: int) -> _OpenRing:
        ring = self._rings.get(path)
        if ring is not None and ring.ring_id == ring_id:
            return ring
        try:
            fresh = _OpenRing(path, ring_id)
        except FileNotFoundError:
            raise StaleHandle(f"ring {path} is gone (the producer stopped or restarted), or "
                              "this process cannot see its /dev/shm") from None
        except PermissionError:
            raise ForeignHandle(f"ring {path} is not readable by this user") from None
        if ring is not None:
            ring.close()
        self._rings[path] = fresh
        while len(self._rings) > self._keep:
            oldest = next(iter(self._rings))
            self._rings.pop(oldest).close()
        return fresh

    def close(self) -> None:
        for ring in self._rings.values():
            ring.close()
        self._rings.clear()
