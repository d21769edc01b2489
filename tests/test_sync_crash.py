"""Kill a sync at any point and rerun: nothing lost, nothing doubled (SPEC sections 5 and 12).

A child process syncs a 20,000-row register in batches of 1,000 into a SQLite library and is killed
with SIGKILL at a point it reports through a marker file: while the source is still being read (the
steps overlap: ``on_rows`` reports a batch once it has loaded, so three batches have committed and the
reader is ahead of them), in the load step between two batches (two committed), or in the middle of the third
batch's transaction (its rows written, not committed). The rerun in this process must leave exactly
the register's rows, each once, with the cursor at the register's last (cursor value, key).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

ROWS, BATCH = 20_000, 1_000
REPO = Path(__file__).resolve().parent.parent

CHILD = """
import sys, time
from pathlib import Path
from tongban.core import engine
from tongban.core.config import load_exchange
from tongban.core.store import Library

config, edge, marker, point = sys.argv[1:5]
ex = load_exchange(config)
marker = Path(marker)


def stop_here():
    marker.with_suffix(".tmp").write_text(point)
    marker.with_suffix(".tmp").replace(marker)
    time.sleep(120)  # the parent kills us here


if point == "extract":
    seen = []

    def on_rows(n):
        seen.append(n)
        if len(seen) == 3:
            stop_here()

    engine.sync_edge(ex, edge, on_rows=on_rows)
else:
    apply, load_batch = Library._apply, Library.load_batch
    calls = []

    def in_transaction(self, *args, **kwargs):
        calls.append(1)
        result = apply(self, *args, **kwargs)  # the batch's rows are written, not yet committed
        if point == "mid-transaction" and len(calls) == 3:
            stop_here()
        return result

    def after_commit(self, *args, **kwargs):
        result = load_batch(self, *args, **kwargs)
        if point == "between-batches" and len(calls) == 2:
            stop_here()
        return result

    Library._apply, Library.load_batch = in_transaction, after_commit
    engine.sync_edge(ex, edge)
marker.with_name("done").write_text("done")
"""


def ledger_count(library: Path, edge: str) -> int:
    db = sqlite3.connect(f"file:{library}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute("select count(*) from batches where edge = ?", (edge,)).fetchone()[0]
    finally:
        db.close()


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.005)
    pytest.fail(f"timed out waiting for {what}")


def run_child(w: Any, edge: str, step: str) -> subprocess.Popen[bytes]:
    marker = w.root / "marker"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    with (w.root / "child.log").open("wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-c", CHILD, str(w.ex.path), edge, str(marker), step],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def kill(child: subprocess.Popen[bytes]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL


@pytest.fixture
def big(make_world: Any, h: Any) -> Any:
    """One county whose register holds 20,000 residents, 50 per update time (ties cross batches)."""
    w = make_world({h.A: h.QINGHAI}, batch_size=BATCH, lookback="0s")
    start = dt.datetime(2025, 3, 1, 10, 0)
    stamp = [(start + dt.timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M:%S") for m in range(ROWS // 50)]
    w.registers[h.A].put(h.people(h.A, ROWS, ts=lambda i: stamp[i // 50]))
    return w


def check_after_rerun(w: Any, h: Any, edge: str) -> None:
    summary = w.sync(edge)
    assert summary["conflicts"] == summary["rejected"] == 0
    lib = w.lib(h.A)
    source = w.registers[h.A].rows()  # ordered by (gxsj, sfzh)
    assert len(source) == ROWS
    t = lib.tables["population"]
    with lib.connect() as c:
        keys = [r[0] for r in c.execute(sa.select(t.c.id_number))]
        ledger = lib.tables["batches"]
        inserted = c.execute(sa.select(sa.func.sum(ledger.c.inserted), sa.func.sum(ledger.c.updated))).one()
    assert len(keys) == len(set(keys)) == ROWS
    assert set(keys) == {r["sfzh"] for r in source}
    assert tuple(inserted) == (ROWS, 0)  # every row inserted exactly once, over both runs
    state = lib.state(edge)
    assert state["cursor"] == {"value": source[-1]["gxsj"], "key": source[-1]["sfzh"]}
    assert state["rows_loaded"] == ROWS and state["batches"] == ROWS // BATCH
    assert lib.failures(kind="batch") == []
    assert w.sync(edge)["rows"] == 0  # and nothing left to read


@pytest.mark.parametrize(
    ("point", "committed"), [("extract", 3), ("between-batches", 2), ("mid-transaction", 2)]
)
def test_kill_then_rerun(big: Any, h: Any, point: str, committed: int) -> None:
    w, edge = big, big.system_edge(h.A)
    library = Path(sa.make_url(w.lib(h.A).url).database)
    marker = w.root / "marker"
    child = run_child(w, edge, point)
    try:
        wait_for(lambda: marker.exists() or child.poll() is not None, 60, f"the child to reach {point}")
        assert child.poll() is None, (w.root / "child.log").read_text()
        assert marker.read_text() == point
        kill(child)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert not (w.root / "done").exists()
    assert ledger_count(library, edge) == committed
    lib = w.lib(h.A)
    assert lib.count("population") == committed * BATCH  # whole batches only
    state = lib.state(edge)
    if committed:
        assert state["rows_loaded"] == committed * BATCH and state["batches"] == committed
    else:
        assert state is None
        [run] = [p for p in (w.ex.spool / edge).iterdir() if p.is_dir()]
        assert not (run / "extract.json").exists()  # the extract never finished
    killed = [p for p in (w.ex.spool / edge).iterdir() if p.is_dir()]
    check_after_rerun(w, h, edge)
    assert not [p for p in killed if p.exists()]  # the killed run's rows are gone from the spool
