"""The audit log's hash chain: appends chain, and every alteration, insertion and removal is caught."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from schemas.errors import TongbanError
from tongban.core.audit import GENESIS, AuditLog, entry_hash
from tongban.core.store import Library


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    lib = Library(f"sqlite:///{tmp_path / 'lib.sqlite'}", "100000")
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
