"""A sync's process gives freed memory back: its peak follows a batch's needs, not the number of batches."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's allocator only"
)

# Three threads allocate and free arrays of a few MiB, as a run's reader, checker and loader do, after a
# large free that raises glibc's default mmap threshold. Printed: resident anonymous memory (MiB) before
# and after, and Arrow's pool.
_CHURN = """
import sys, threading
import numpy as np
import pyarrow as pa
from tongban.core.engine import allocators

if sys.argv[1] == "sync":
    allocators.give_back()  # what every step and sync_edge call first


def anon():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) // 1024 for line in fh if line.startswith("RssAnon"))


def work():
    for i in range(30):
        big = np.ones((48 << 20) // 8)
        del big
        keep = [np.ones(((i % 7 + 1) << 20) // 8) for _ in range(20)]
        text = pa.array(np.arange(1 << 20)).cast(pa.string())
        del keep, text


before = anon()
threads = [threading.Thread(target=work) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(before, anon(), pa.default_memory_pool().backend_name)
"""


def _churn(mode: str, **env: str) -> tuple[int, int, str]:
    out = subprocess.run(
        [sys.executable, "-c", _CHURN, mode],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout.split()
    return int(out[0]), int(out[1]), out[2]


def test_freed_batches_go_back_to_the_system() -> None:
    before, after, pool = _churn("sync")
    assert pool == "system"
    # Without the policy this churn keeps about 300 MiB (glibc arenas and Arrow's mimalloc pages).
    assert after - before < 40, (before, after)


def test_the_operators_own_allocator_settings_are_left_alone() -> None:
    _, _, pool = _churn("sync", ARROW_DEFAULT_MEMORY_POOL="mimalloc")
    assert pool == "mimalloc"


def test_give_back_acts_once_and_is_idempotent() -> None:
    from tongban.core.engine import allocators

    allocators.give_back()
    allocators.give_back()
    import pyarrow as pa

    assert pa.default_memory_pool().backend_name in ("system", os.environ.get("ARROW_DEFAULT_MEMORY_POOL"))
