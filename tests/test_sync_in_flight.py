"""An overlapped run holds a fixed number of batches, whichever thread is the slowest (issue 12).

A finished batch is handed over and its thread waits until the next thread takes it: with a slow load,
the checker is at most one batch ahead of the loader and the reader one batch ahead of the checker. A
thread that ran further ahead (a batch in the queue plus a finished one waiting to go in) would hold more
batches the longer the load takes, which is how a 10,000,000-row run used to peak higher than a
1,000,000-row one.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

import pytest

from tongban.core.engine import pipeline


def test_a_slow_load_keeps_one_batch_handed_over_per_thread(
    make_world: Any, h: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = make_world({h.A: h.QINGHAI}, batch_size=50)
    w.registers[h.A].put(h.people(h.A, 600))  # 12 batches
    lock = threading.Lock()
    count = {"read": 0, "checked": 0, "sealed": 0, "loading": 0}
    ahead: list[tuple[int, int]] = []  # (reader ahead of the checker, checker ahead of the loader)

    def counting(name: str, fn: Any) -> Any:
        def run(*args: Any, **kw: Any) -> Any:
            with lock:
                count[name] += 1
            return fn(*args, **kw)

        return run

    write, add, rows_with_meta, apply_batch = (
        pipeline.PartWriter.write,
        pipeline.PartValidator.add,
        pipeline.rows_with_meta,
        pipeline.apply_batch,
    )
    monkeypatch.setattr(pipeline.PartValidator, "add", counting("checked", add))
    monkeypatch.setattr(pipeline, "rows_with_meta", counting("sealed", rows_with_meta))

    raw: list[weakref.ref[Any]] = []  # every batch the reader read
    alive: list[int] = []

    def reading(self: Any, batch: Any, cursor: Any) -> Any:
        raw.append(weakref.ref(batch))
        return counting("read", write)(self, batch, cursor)

    monkeypatch.setattr(pipeline.PartWriter, "write", reading)

    def slow_load(*args: Any, **kw: Any) -> Any:
        with lock:
            count["loading"] += 1
        time.sleep(0.15)  # the other two threads have long finished their next batches
        with lock:
            ahead.append((count["read"] - count["checked"], count["sealed"] - count["loading"]))
            alive.append(sum(r() is not None for r in raw))
        return apply_batch(*args, **kw)

    monkeypatch.setattr(pipeline, "apply_batch", slow_load)
    summary = w.sync(w.system_edge(h.A))
    assert summary["inserted"] == 600 and count["loading"] == 12
    # While batch k loads: batch k+1 handed over by the checker, which does not start on k+2; the reader
    # has handed k+2... over to the checker, at most one batch beyond what the checker started.
    assert max(r for r, _ in ahead) == 1, ahead
    assert max(c for _, c in ahead) == 1, ahead
    # Of the batches read, only the one handed over to the checker is alive: the checker let go of the
    # one it checked while it waits for the loader (two, when it still held it).
    assert max(alive) == 1, alive


def test_the_first_batch_is_small_and_the_run_is_exact(
    make_world: Any, h: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loader starts after a small first batch is checked; the later batches keep the exchange's size,
    and the run loads every row once with the cursor at the last."""
    monkeypatch.setattr(pipeline, "FIRST_BATCH", 20)
    w = make_world({h.A: h.QINGHAI}, batch_size=50)
    w.registers[h.A].put(h.people(h.A, 130))
    sizes: list[int] = []
    apply_batch = pipeline.apply_batch

    def sizing(*args: Any, **kw: Any) -> Any:
        sizes.append(args[6].num_rows)  # the batch's table
        return apply_batch(*args, **kw)

    monkeypatch.setattr(pipeline, "apply_batch", sizing)
    first = w.sync(w.system_edge(h.A))
    assert sizes == [20, 30, 50, 30]
    assert (first["batches"], first["inserted"]) == (4, 130)
    again = w.sync(w.system_edge(h.A))
    assert again["inserted"] == 0 and again["updated"] == 0


def test_a_thread_that_cannot_start_fails_the_run_and_stops_the_other(
    make_world: Any, h: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checker's thread fails to start (the process is out of threads): the run fails at once and
    the reader, already started, stops instead of waiting forever to hand its first batch over."""
    w = make_world({h.A: h.QINGHAI}, batch_size=50)
    w.registers[h.A].put(h.people(h.A, 300))
    start = threading.Thread.start
    readers: list[threading.Thread] = []

    def starting(self: threading.Thread) -> None:
        if self.name == "tongban-check":
            raise RuntimeError("can't start new thread")
        if self.name == "tongban-read":
            readers.append(self)
        start(self)

    monkeypatch.setattr(threading.Thread, "start", starting)
    began = time.monotonic()
    with pytest.raises(RuntimeError, match="can't start new thread"):
        w.sync(w.system_edge(h.A))
    assert time.monotonic() - began < 30
    assert readers and not readers[0].is_alive()
