"""Freed memory kept for reuse while a model runs (glibc's allocator; elsewhere nothing changes).

A SAM 2 frame allocates and frees the same few hundred large tensors every time (the image encoder's
activations alone are about 1.3 GB per frame). glibc serves large requests with fresh ``mmap`` regions and
returns them to the system when freed, so every frame faults the same memory in again, page by page: on a
2-core CPU that was about 2.5 CPU seconds of kernel time per frame, a third of the image encoder's wall time.
PyTorch's CPU tuning guide recommends another allocator (jemalloc, tcmalloc) for this; :func:`keep_freed_memory`
gets the same effect from the allocator already loaded, without changing any result:

* while it is active, large requests come from the process heap (``M_MMAP_MAX = 0``) and freed memory stays
  there (``M_TRIM_THRESHOLD`` very large), so the next frame reuses pages that are already mapped; memory
  stays flat, at the largest amount one frame needs;
* when the outermost use ends, glibc is set back to what it converges to by itself in a PyTorch process
  (requests of 32 MiB and more in their own mappings, the heap trimmed beyond 64 MiB free; glibc freezes its
  adaptive thresholds once they are set, so they are set to those values) and, with ``release=True``, the
  kept memory is returned to the system (``malloc_trim``); with ``release=False`` it stays for the next use
  (one frame after another) until :func:`release`.

The setting is process-wide (the allocator is); uses nest and may overlap across threads.

:func:`one_arena` (called when a video tracking pipeline is made) keeps the threads started from then on
(frame read-ahead, the video decoder's threads) in glibc's main arena instead of arenas of their own: memory
they free is then reused by the frames' tensors and the other way round, instead of being kept apart in
arenas that only their thread allocates from (measured on a 720p clip: 80-130 MiB less peak RSS, the same speed).

Set ``SAM2P_KEEP_FREED_MEMORY=0`` in the environment to leave the allocator alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
import threading

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

#: What glibc's adaptive thresholds reach in a process that frees large tensors (their upper limits).
_MMAP_THRESHOLD = 32 << 20
_TRIM_THRESHOLD = 64 << 20
_MMAP_MAX = 65536  # glibc's default
_KEEP = 2**31 - 1  # trim threshold while active (the largest mallopt takes): the heap is not trimmed


def _load_libc():
    if not sys.platform.startswith("linux") or os.environ.get("SAM2P_KEEP_FREED_MEMORY", "1") == "0":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    malloc_trim.argtypes, malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    return libc


_libc = _load_libc()
_lock = threading.Lock()
_active = 0
_one_arena = False


def available() -> bool:
    """Whether :func:`keep_freed_memory` changes anything here (Linux with glibc, not switched off)."""
    return _libc is not None


def active() -> bool:
    """Whether freed memory is being kept now."""
    return _active > 0


@contextlib.contextmanager
def keep_freed_memory(release: bool = True):
    """Keep freed memory in the process for reuse while the block runs (see the module's docstring).

    Args:
        release: when the outermost use ends, return the kept memory to the system.
    """
    global _active
    if _libc is None:
        yield
        return
    with _lock:
        _active += 1
        if _active == 1:
            _libc.mallopt(_M_TRIM_THRESHOLD, _KEEP)
            _libc.mallopt(_M_MMAP_MAX, 0)
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                _libc.mallopt(_M_MMAP_MAX, _MMAP_MAX)
                _libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
                _libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
                if release:
                    _libc.malloc_trim(0)


def one_arena() -> None:
    """Threads that allocate for the first time from now on share glibc's main arena (``M_ARENA_MAX = 1``).

    glibc gives each thread an arena of its own when it first allocates (until a limit of 8 per core) and keeps
    it for the thread's life; what the thread allocated returns to that arena when freed, only threads attached
    to it reuse it, and it keeps its memory while freed memory is kept. One arena puts the memory of the tracking threads in one
    pool. Threads already attached to an arena keep it. glibc fixes its arena limit the first time it needs it,
    so the setting lasts for the process (and does nothing if the limit was fixed before). Idempotent."""
    global _one_arena
    with _lock:
        if _libc is not None and not _one_arena:
            _libc.mallopt(_M_ARENA_MAX, 1)
            _one_arena = True


def one_arena_set() -> bool:
    """Whether :func:`one_arena` was applied in this process."""
    return _one_arena


def release() -> None:
    """Return the memory kept by earlier ``keep_freed_memory(release=False)`` uses to the system (unless a use
    is still active)."""
    with _lock:
        if _libc is not None and _active == 0:
            _libc.malloc_trim(0)
