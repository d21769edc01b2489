"""The audit log's hash chain: appends chain, and every alteration, insertion and removal is caught."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from schemas.errors import TongbanError
from tongban.core.audit import GENESIS, AuditLog, entry_hash
from tongban.core.store import Library, Vault


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    vault = Vault("100000", tmp_path / "keys")
    vault.create()  # the library's data keys are wrapped by the node's master key
    lib = Library(f"sqlite:///{tmp_path / 'lib.sqlite'}", "100000", vault)
    lib.migrate()
    return AuditLog(lib.engine)


def fill(log: AuditLog, n: int = 5) -> None:
    for i in range(n):
        log.append(
            f"office:o{i}", "verify", purpose="P01", dataset="license", result="match", detail={"i": i}
        )


def test_entries_chain_from_genesis(log: AuditLog) -> None:
    fill(log)
    entries = log.entries()
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS
    for prev, cur in itertools.pairwise(entries):
        assert cur.prev_hash == prev.hash
        assert entry_hash(cur) == cur.hash
    assert log.verify() is None
    assert log.head() == entries[-1]


def test_altered_entry_is_named(log: AuditLog) -> None:
    fill(log)
    with log.engine.begin() as c:
        c.execute(sa.text("update audit_log set result = 'mismatch' where seq = 3"))
    problem = log.verify()
    assert problem is not None and (problem.seq, problem.kind) == (3, "altered")


def test_deleted_entry_is_named(log: AuditLog) -> None:
    fill(log)
    with log.engine.begin() as c:
        c.execute(sa.text("delete from audit_log where seq = 2"))
    problem = log.verify()
    assert problem is not None and (problem.seq, problem.kind) == (3, "removed")


def test_inserted_entry_is_named(log: AuditLog) -> None:
    """An entry forged with a correct own hash and renumbered successors still breaks the chain."""
    fill(log, 3)
    with log.engine.begin() as c:
        rows = [dict(r._mapping) for r in c.execute(sa.text("select * from audit_log order by seq"))]
        c.execute(sa.text("delete from audit_log"))
    from tongban.core.audit.chain import AuditEntry, _entry

    forged = AuditEntry(
        seq=2, at=rows[0]["at"], actor="office:evil", action="verify", prev_hash=rows[0]["hash"]
    )
    forged = AuditEntry(**{**forged.as_dict(), "hash": entry_hash(forged)})
    later = [_entry(r) for r in rows[1:]]
    renumbered = [AuditEntry(**{**e.as_dict(), "seq": e.seq + 1}) for e in later]
    renumbered = [AuditEntry(**{**e.as_dict(), "hash": entry_hash(e)}) for e in renumbered]
    import json

    with log.engine.begin() as c:
        for e in [_entry(rows[0]), forged, *renumbered]:
            row = e.as_dict()
            row["detail"] = json.dumps(row["detail"])
            c.execute(log.table.insert().values(**row))
    problem = log.verify()
    assert problem is not None and (problem.seq, problem.kind) == (3, "inserted")


def test_concurrent_appends_keep_one_chain(log: AuditLog) -> None:
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(15):
                log.append(f"operator:w{k}", "resolve", subject=f"100000:{k * 100 + i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(log.entries(limit=1000)) == 60
    assert log.verify() is None


def test_oversized_fields_are_refused_whole(log: AuditLog) -> None:
    with pytest.raises(TongbanError) as err:
        log.append("x" * 500, "verify")
    assert err.value.code == "AUDIT_INVALID"
    with pytest.raises(TongbanError) as err:
        log.append("office:a", "verify", detail={"blob": "x" * 10_000})
    assert err.value.code == "AUDIT_INVALID"
    assert log.entries() == []


# -- group commit (the server's writer) ---------------------------------------------------------------


def _writer_child(url: str, k: int, n: int) -> None:  # pragma: no cover - runs in a child process
    import asyncio

    from tongban.core.audit.writer import AuditWriter

    writer = AuditWriter(AuditLog(sa.create_engine(url)))

    async def run() -> None:
        await asyncio.gather(
            *(writer.append_async(f"office:p{k}", "verify", subject=f"{k}:{i}") for i in range(n))
        )

    asyncio.run(run())


def test_group_commits_from_two_processes_keep_one_chain(log: AuditLog) -> None:
    """Two servers' writers (the SQLite driver path, batches of many) append to one log at once: one
    unbroken chain holding every entry once, interleaved with a one-by-one appender."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    url = log.engine.url.render_as_string(hide_password=False)
    procs = [ctx.Process(target=_writer_child, args=(url, k, 150)) for k in range(2)]
    for p in procs:
        p.start()
    fill(log, 20)
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    entries = log.entries(limit=10_000)
    assert len(entries) == 320
    assert [e.seq for e in entries] == list(range(1, 321))
    subjects = [e.subject for e in entries if e.subject]
    assert sorted(subjects) == sorted(f"{k}:{i}" for k in range(2) for i in range(150))
    assert log.verify() is None


def test_writer_batches_chain_exactly_as_one_by_one(log: AuditLog) -> None:
    import asyncio

    from tongban.core.audit.writer import AuditWriter

    writer = AuditWriter(log)

    async def run() -> list:
        return await asyncio.gather(
            *(writer.append_async("office:a", "verify", subject=str(i), detail={"i": i}) for i in range(40))
        )

    answered = asyncio.run(run())
    stored = log.entries(limit=100)
    assert [e.as_dict() for e in answered] == [e.as_dict() for e in stored]
    assert all(entry_hash(e) == e.hash for e in stored)
    assert stored[0].prev_hash == GENESIS and log.verify() is None
    # The thread path too, after the coroutine path, on the same chain.
    assert writer.append("office:b", "verify").prev_hash == stored[-1].hash


def test_a_bad_entry_in_a_batch_refuses_only_itself(log: AuditLog) -> None:
    import asyncio

    from tongban.core.audit.writer import AuditWriter

    writer = AuditWriter(log)

    async def run() -> list:
        calls = [writer.append_async("office:a", "verify", subject=str(i)) for i in range(10)]
        calls.insert(5, writer.append_async("x" * 500, "verify"))
        return await asyncio.gather(*calls, return_exceptions=True)

    answers = asyncio.run(run())
    refused = [a for a in answers if isinstance(a, TongbanError)]
    assert [a.code for a in refused] == ["AUDIT_INVALID"]
    assert len(log.entries(limit=100)) == 10 and log.verify() is None


def test_a_log_that_cannot_be_written_answers_audit_busy(tmp_path: Path) -> None:
    """The database is gone (here: a library without its tables): every waiting request gets a coded
    AUDIT_BUSY, none hangs, and the writer goes on for the next batch."""
    import asyncio

    from tongban.core.audit.writer import AuditWriter

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    writer = AuditWriter(AuditLog(engine))

    async def run() -> list:
        return await asyncio.gather(
            *(writer.append_async("office:a", "verify") for _ in range(5)), return_exceptions=True
        )

    answers = asyncio.run(run())
    assert [getattr(a, "code", None) for a in answers] == ["AUDIT_BUSY"] * 5
    with pytest.raises(TongbanError) as err:
        writer.append("office:a", "verify")
    assert err.value.code == "AUDIT_BUSY"


def test_a_held_write_lock_never_stalls_the_event_loop(log: AuditLog) -> None:
    """Another writer (a sync's load, an operator's command) holds the library's write lock: entries
    written from the event loop do not wait for it there — the loop keeps running (a ticker keeps
    ticking) — and every entry is committed, chained, once the lock is let go."""
    import asyncio
    import sqlite3
    import time

    from tongban.core.audit.writer import AuditWriter

    writer = AuditWriter(log)
    holder = sqlite3.connect(log.sqlite_path() or "", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")

    async def run() -> tuple[list, int, float]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        async def release() -> None:
            await asyncio.sleep(0.5)
            holder.execute("COMMIT")

        tick = asyncio.create_task(ticker())
        started = time.monotonic()
        rel = asyncio.create_task(release())
        answers = await asyncio.gather(
            *(writer.append_async("office:a", "verify", subject=str(i)) for i in range(20))
        )
        waited = time.monotonic() - started
        stop.set()
        await asyncio.gather(tick, rel)
        return answers, ticks, waited

    answers, ticks, waited = asyncio.run(run())
    holder.close()
    assert waited >= 0.45  # they were committed only after the lock was let go
    assert ticks >= 20  # the loop ran all along (a blocked loop would tick once or twice)
    assert sorted(int(a.subject) for a in answers) == list(range(20))
    assert len(log.entries(limit=100)) == 20 and log.verify() is None


def test_an_entry_that_cannot_be_written_is_refused_alone(log: AuditLog) -> None:
    """A caller's mistake (a detail that is not JSON, a field that is not text) is refused AUDIT_INVALID
    on its own, at once; the entries beside it are written, from the event loop and from a thread, and
    the writer goes on."""
    import asyncio

    from tongban.core.audit.writer import AuditWriter

    writer = AuditWriter(log)

    async def run() -> list:
        calls = [writer.append_async("office:a", "verify", subject=str(i)) for i in range(6)]
        calls.insert(3, writer.append_async("office:a", "verify", detail={"x": {1, 2}}))
        calls.insert(1, writer.append_async("office:a", "verify", subject=12345))  # type: ignore[arg-type]
        return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)

    answers = asyncio.run(run())
    assert [getattr(a, "code", None) for a in answers if isinstance(a, Exception)] == ["AUDIT_INVALID"] * 2
    with pytest.raises(TongbanError) as err:
        writer.append("office:a", "verify", detail={"x": object()})
    assert err.value.code == "AUDIT_INVALID"
    assert writer.append("office:b", "verify").seq == 7
    assert len(log.entries(limit=100)) == 7 and log.verify() is None


def test_closing_the_log_waits_for_a_write_in_progress(log: AuditLog) -> None:
    """The server's shutdown closes the log while a batch is being written: the batch commits and is
    answered, then the connection and the lock file are closed (a later entry opens them again)."""
    import threading

    errors: list[BaseException] = []

    def write() -> None:
        try:
            for i in range(200):
                log.append_many([{"actor": "office:a", "action": "verify", "subject": str(i)}])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=write)
    t.start()
    for _ in range(50):
        log.close()
    t.join()
    assert not errors
    assert len(log.entries(limit=1000)) == 200 and log.verify() is None
