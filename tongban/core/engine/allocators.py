"""Memory a long sync gives back: large buffers come from the operating system and return to it when freed.

A run's batches pass through three threads as Arrow tables and NumPy arrays of a few MiB each, allocated
and freed over and over. Left to themselves the allocators keep what they freed: glibc raises its
``mmap`` threshold after each large free (up to 32 MiB), so later large arrays land in per-thread arenas
that fragment, and Arrow's mimalloc pool keeps its pages for reuse: a sync's peak held far more than its
batches in flight (``bench/sync.py --memory-only``: 677 MiB at 1,000,000 rows, 771 MiB at 10,000,000;
with this policy 444 and 510 MiB, and 356 and 379 MiB once batches were handed over one at a time in
:mod:`.pipeline`).

:func:`give_back` fixes glibc's threshold at 128 KiB (a large array is its own mapping, unmapped when
freed), caps glibc's arenas at two, and makes the system allocator pyarrow's default pool, so what
pyarrow allocates shares that policy (Arrow's C++ internals keep their own default unless
``ARROW_DEFAULT_MEMORY_POOL`` is set before the process starts).
It acts once per process, only where the allocators are those, and leaves alone whatever the operator set
through the environment (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_ARENA_MAX``, ``ARROW_DEFAULT_MEMORY_POOL``).
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading

import pyarrow as pa

__all__ = ["MMAP_THRESHOLD", "give_back"]

#: Allocations from this size on are their own ``mmap`` (glibc's initial threshold, held fixed).
MMAP_THRESHOLD = 128 * 1024
_ARENA_MAX = 2
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters (malloc.h)
_M_ARENA_MAX = -8

_lock = threading.Lock()
_done = False


def give_back() -> None:
    """Set the allocators' policy for this process (once; later calls do nothing)."""
    global _done
    with _lock:
        if _done:
            return
        _done = True
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            try:
                libc = ctypes.CDLL(None)
                if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
                    libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                if "MALLOC_ARENA_MAX" not in os.environ:
                    libc.mallopt(_M_ARENA_MAX, _ARENA_MAX)
            except (OSError, AttributeError):  # no mallopt here: the defaults stay
                pass
            if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
                pa.set_memory_pool(pa.system_memory_pool())
