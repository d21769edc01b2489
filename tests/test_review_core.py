"""tongban.core.review: failures that resolve themselves, and operators' actions on them.

Self-resolving (a fixed source row, a replaced file, an edge that succeeds again), resubmitting an
edited row along the signed path up to the national library, retries, refusals with codes (an edit
that still fails, one that changes the key or the owner, a reason missing, a row already closed), two
operators acting on one row at once, keyset pages.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from schemas.errors import TongbanError
from tongban.core import review
from tongban.core.review import Filter, Ref, ReviewError
from tongban.core.store import migrate

P = "population"


class Audit:
    """Stands in for the audit log: keeps what was appended (thread-safe)."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def append(self, actor: str, action: str, **fields: Any) -> None:
        with self._lock:
            self.entries.append({"actor": actor, "action": action, **fields})


def bad_check(h: Any, county: str, i: int) -> dict[str, Any]:
    """A register row whose ID number has a wrong check character (rejected: ID_CHECKSUM)."""
    row = h.person(county, i)
    good = row["sfzh"]
    row["sfzh"] = good[:-1] + ("0" if good[-1] != "0" else "1")
    row["_good"] = good
    return row


def put(w: Any, county: str, rows: list[dict[str, Any]]) -> None:
    w.registers[county].put([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])


def failure_of(w: Any, county: str, key: str) -> dict[str, Any]:
    [f] = [f for f in w.lib(county).failures(state=None, kind="row") if f["row_key"] == key]
    return f


def refused(code: str, fn: Any, *args: Any, **kw: Any) -> ReviewError:
    with pytest.raises(ReviewError) as err:
        fn(*args, **kw)
    assert err.value.code == code, (err.value.code, err.value.message_en)
    assert err.value.message_zh and err.value.message_en
    return err.value


def test_fixed_source_row_resolves_its_failure_with_no_operator(make_world: Any, h: Any) -> None:
    w = make_world({h.A: h.QINGHAI})
    good = h.people(h.A, 3)
    late = {**h.person(h.A, 20), "csrq": "1980-02-30"}  # DATE_INVALID
    put(w, h.A, [*good, late])
    edge = w.system_edge(h.A)
    assert w.sync(edge)["rejected"] == 1
    f = failure_of(w, h.A, late["sfzh"])
    assert f["state"] == "open" and "DATE_INVALID" in f["codes"]
    # The county fixes the row at the source; the normal sync carries it, and the failure is resolved.
    fixed = h.person(h.A, 20, ts="2025-03-01 11:00:00")
    w.registers[h.A].update(late["sfzh"], csrq=fixed["csrq"], gxsj=fixed["gxsj"])
    assert w.sync(edge)["inserted"] == 1
    f = failure_of(w, h.A, late["sfzh"])
    assert (f["state"], f["closed_by"]) == ("resolved", "sync")
    steps = review.history(w.libs, Ref(h.A, f["id"]))
    assert [(s["actor"], s["action"], s["state_to"]) for s in steps] == [("sync", "arrived", "resolved")]
    assert w.lib(h.A).record(P, late["sfzh"]) is not None
    # Another source's clean row of the same key would not have counted (same key, same source only).
    assert review.count(w.ex, w.libs, Filter(node=h.A)) == 0


def test_resubmitted_row_travels_the_signed_path_to_the_national_library(make_world: Any, h: Any) -> None:
    w = make_world({h.A: h.QINGHAI})
    row = bad_check(h, h.A, 7)
    put(w, h.A, [*h.people(h.A, 2), row])
    w.sync_all()
    f = failure_of(w, h.A, row["sfzh"])
    ref, audit = Ref(h.A, f["id"]), Audit()
    done = review.act(
        w.ex, w.libs, ref, "resubmit", actor="ops1", audit=audit, edit={"id_number": row["_good"]}
    )
    assert (done.ok, done.state) == (True, "queued")
    assert audit.entries[-1]["action"] == "failed.resubmit" and audit.entries[-1]["result"] == "ok"
    assert row["_good"] not in str(audit.entries)  # no personal values in the audit log
    # The maintenance path: the county's edge and the edges above it run.
    applied = review.apply_queued(w.ex, w.libs)
    assert [a["edge"] for a in applied] == [
        w.system_edge(h.A),
        w.edge(h.A, h.QINGHAI),
        w.edge(h.QINGHAI, h.NATIONAL),
    ] and all(a["ok"] for a in applied)
    for node in (h.A, h.QINGHAI, h.NATIONAL):
        rec = w.lib(node).record(P, row["_good"])
        assert rec is not None and rec["_owner"] == h.A, node
    # Sealed by the county, in a batch of its own edge's chain, the failure resolved and its history kept.
    county = w.lib(h.A).record(P, row["_good"])
    with w.lib(h.A).connect() as c:
        t = w.lib(h.A).tables["batches"]
        batch = c.execute(sa.select(t).where(t.c.batch_id == county["_batch"])).mappings().one()
    assert batch["edge"] == w.system_edge(h.A) and '"source":"' + h.A in batch["manifest"].replace(" ", "")
    f = review.get(w.ex, w.libs, ref)
    assert f["state"] == "resolved"
    assert [s["action"] for s in review.history(w.libs, ref)] == ["resubmit", "resubmitted"]
    assert review.apply_queued(w.ex, w.libs) == []  # nothing queued any more


def test_edits_that_must_be_refused(make_world: Any, h: Any) -> None:
    w = make_world({h.A: h.QINGHAI, h.B: h.QINGHAI})
    row = bad_check(h, h.A, 3)
    date_bad = {**h.person(h.A, 4), "csrq": "1980-02-30"}
    put(w, h.A, [row, date_bad])
    other = h.person(h.B, 9)
    put(w, h.B, [other])
    w.sync_all()
    audit = Audit()
    ref = Ref(h.A, failure_of(w, h.A, row["sfzh"])["id"])
    date_ref = Ref(h.A, failure_of(w, h.A, date_bad["sfzh"])["id"])

    def resubmit(r: Ref, edit: dict[str, Any]) -> Any:
        return review.act(w.ex, w.libs, r, "resubmit", actor="ops", audit=audit, edit=edit)

    # Still failing: a check character that is wrong again.
    wrong = row["sfzh"][:-1] + next(c for c in "0123456789X" if c not in (row["sfzh"][-1], row["_good"][-1]))
    err = refused("FAILED_EDIT_INVALID", resubmit, ref, {"id_number": wrong})
    assert "ID_CHECKSUM" in err.message_en and err.where == "id_number"
    # A key that passed validation may not change; nor the owner field; nor a meta column.
    refused("FAILED_EDIT_KEY", resubmit, date_ref, {"id_number": h.person(h.A, 30)["sfzh"]})
    refused("FAILED_EDIT_OWNER", resubmit, date_ref, {"household_division": h.B, "birth_date": "1980-02-28"})
    refused("FAILED_EDIT_OWNER", resubmit, date_ref, {"_owner": h.B})
    refused("FAILED_EDIT_FIELD", resubmit, date_ref, {"shoe_size": "42"})
    refused("FAILED_EDIT_FIELD", resubmit, date_ref, {"name": "x" * 5000})
    # A corrected key that is another node's record.
    refused("FAILED_EDIT_OWNER", resubmit, ref, {"id_number": other["sfzh"], "birth_date": other["csrq"]})
    # Discard needs a reason.
    refused("FAILED_REASON_REQUIRED", review.act, w.ex, w.libs, ref, "discard", actor="ops", audit=audit)
    refused(
        "FAILED_REASON_REQUIRED",
        review.act,
        w.ex,
        w.libs,
        ref,
        "discard",
        actor="ops",
        audit=audit,
        reason="  ",
    )
    # Nothing of those was applied; each refusal is audited with its code.
    assert {f["state"] for f in w.lib(h.A).failures(state=None)} == {"open"}
    assert [e["result"] for e in audit.entries] == [
        "FAILED_EDIT_INVALID",
        "FAILED_EDIT_KEY",
        "FAILED_EDIT_OWNER",
        "FAILED_EDIT_OWNER",
        "FAILED_EDIT_FIELD",
        "FAILED_EDIT_FIELD",
        "FAILED_EDIT_OWNER",
        "FAILED_REASON_REQUIRED",
        "FAILED_REASON_REQUIRED",
    ]
    # Discarded with a reason; then a row already closed is refused.
    assert (
        review.act(w.ex, w.libs, ref, "discard", actor="ops", audit=audit, reason="duplicate").state
        == "discarded"
    )
    refused("FAILED_CLOSED", review.act, w.ex, w.libs, ref, "resolve", actor="ops", audit=audit)
    refused("FAILED_CLOSED", resubmit, ref, {"id_number": row["_good"]})
    # A discarded row re-read from the source (a full refresh) is not raised again.
    w.sync(w.system_edge(h.A), full=True)
    assert review.get(w.ex, w.libs, ref)["state"] == "discarded"
    assert review.count(w.ex, w.libs, Filter(node=h.A)) == 1  # the date row only


def test_two_operators_on_one_row_one_wins(make_world: Any, h: Any) -> None:
    w = make_world({h.A: h.QINGHAI})
    row = bad_check(h, h.A, 5)
    put(w, h.A, [row])
    w.sync_all()
    f = failure_of(w, h.A, row["sfzh"])
    ref, audit = Ref(h.A, f["id"]), Audit()
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def operator(name: str, action: str, **kw: Any) -> None:
        barrier.wait()
        try:
            results.append(
                review.act(
                    w.ex, w.libs, ref, action, actor=name, audit=audit, expect_version=f["version"], **kw
                )
            )
        except ReviewError as exc:
            results.append(exc)

    threads = [
        threading.Thread(
            target=operator, args=("ops1", "resubmit"), kwargs={"edit": {"id_number": row["_good"]}}
        ),
        threading.Thread(target=operator, args=("ops2", "discard"), kwargs={"reason": "looks wrong"}),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [r for r in results if not isinstance(r, ReviewError)]
    lost = [r for r in results if isinstance(r, ReviewError)]
    assert len(won) == 1 and len(lost) == 1 and lost[0].code in ("FAILED_CHANGED", "FAILED_CLOSED")
    steps = review.history(w.libs, ref)
    assert len(steps) == 1 and steps[0]["action"] == won[0].action
    assert review.get(w.ex, w.libs, ref)["version"] == f["version"] + 1
    # The page the loser saw is stale: acting on its version again is refused.
    code = "FAILED_CHANGED" if won[0].action == "resubmit" else "FAILED_CLOSED"
    refused(
        code, review.act, w.ex, w.libs, ref, "resolve", actor="ops2", audit=audit, expect_version=f["version"]
    )


def test_retry_rereads_the_row_from_the_source(make_world: Any, h: Any) -> None:
    w = make_world({h.A: h.QINGHAI}, lookback="0s")  # no re-read window: only a retry sees a fix in place
    bad = {**h.person(h.A, 1), "csrq": "1980-02-30"}
    gone = {**h.person(h.A, 2), "csrq": "1980-02-31"}
    put(w, h.A, [bad, gone])
    edge = w.system_edge(h.A)
    w.sync(edge)
    audit = Audit()
    refs = {k: Ref(h.A, failure_of(w, h.A, r["sfzh"])["id"]) for k, r in (("bad", bad), ("gone", gone))}
    # Retry before the source was fixed: re-read, still bad: open again, one more attempt.
    review.act(w.ex, w.libs, refs["bad"], "retry", actor="ops", audit=audit)
    assert review.get(w.ex, w.libs, refs["bad"])["state"] == "queued"
    w.sync(edge)
    f = review.get(w.ex, w.libs, refs["bad"])
    assert (f["state"], f["attempts"]) == ("open", 2)
    # The source fixes it in place, keeping its old time (no incremental run would see it): a retry does.
    w.registers[h.A].update(bad["sfzh"], csrq=h.person(h.A, 1)["csrq"])
    assert w.sync(edge)["rows"] == 0
    review.act(w.ex, w.libs, refs["bad"], "retry", actor="ops", audit=audit)
    review.act(w.ex, w.libs, refs["gone"], "retry", actor="ops", audit=audit)
    db = w.registers[h.A]
    db._write("delete from czrk where sfzh = ?", [(gone["sfzh"],)])
    assert w.sync(edge)["inserted"] == 1
    assert review.get(w.ex, w.libs, refs["bad"])["state"] == "resolved"
    f = review.get(w.ex, w.libs, refs["gone"])
    assert f["state"] == "open" and review.history(w.libs, refs["gone"])[-1]["action"] == "not_found"


def test_quarantined_file_replaced_or_retried(make_world: Any, h: Any) -> None:
    w = make_world({h.A: h.QINGHAI}, registers=(), drop=(h.A,))
    folder = w.drops[h.A]
    edge = w.edge(f"drop-{h.A}", h.A)
    (folder / "a.csv").write_bytes(b"\xff\xfe garbage without a header\x00\n")
    (folder / "b.csv").write_bytes(b"\xff\xfe garbage without a header\x00\n")
    w.sync(edge)
    files = {Path(review.payload_of(f)["name"]).name: f for f in w.lib(h.A).failures(kind="file")}
    assert set(files) == {"a.csv", "b.csv"}
    # a.csv is replaced by a good file of the same name: its failure resolves by itself.
    (folder / "a.csv").write_text(h.csv_text(h.people(h.A, 2)), encoding="utf-8")
    assert w.sync(edge)["inserted"] == 2
    assert review.get(w.ex, w.libs, Ref(h.A, files["a.csv"]["id"]))["state"] == "resolved"
    # b.csv is retried as it is: put back, read again, quarantined again: the same failure, reopened.
    audit = Audit()
    ref = Ref(h.A, files["b.csv"]["id"])
    review.act(w.ex, w.libs, ref, "retry", actor="ops", audit=audit)
    w.sync(edge)
    f = review.get(w.ex, w.libs, ref)
    assert (f["state"], f["attempts"]) == ("open", 2)
    assert len(w.lib(h.A).failures(kind="file", state=None)) == 2
    # A row from a drop file cannot be re-read (its file was archived): a clear code, nothing queued.
    (folder / "c.csv").write_text(h.csv_text([{**h.person(h.A, 9), "csrq": "1980-02-30"}]), encoding="utf-8")
    w.sync(edge)
    [row] = w.lib(h.A).failures(kind="row")
    refused(
        "FAILED_NOT_RETRYABLE",
        review.act,
        w.ex,
        w.libs,
        Ref(h.A, row["id"]),
        "retry",
        actor="ops",
        audit=audit,
    )
    assert review.get(w.ex, w.libs, Ref(h.A, row["id"]))["state"] == "open"


def test_failed_run_resolves_when_the_edge_next_succeeds(
    make_world: Any, h: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    env = "TONGBAN_T_REVIEW_SYS"
    system = h.sql_system(h.A, url=None, url_env=env)
    w = make_world({h.A: h.QINGHAI}, registers=(), systems=[system])
    edge = w.system_edge(h.A)
    monkeypatch.setenv(env, f"sqlite:///{tmp_path / 'nowhere' / 'x.sqlite'}")
    with pytest.raises(TongbanError, match="SQL_UNREACHABLE"):
        w.sync(edge)
    [run] = w.lib(h.A).failures(kind="run")
    audit = Audit()
    ref = Ref(h.A, run["id"])
    review.act(w.ex, w.libs, ref, "retry", actor="ops", audit=audit)
    assert review.edges_to_apply(w.ex, w.libs)[0] == edge
    reg = h.Register(tmp_path / "back" / "czrk.sqlite")
    reg.put(h.people(h.A, 2))
    monkeypatch.setenv(env, f"sqlite:///{reg.path}")
    out = review.apply_queued(w.ex, w.libs)
    assert out[0]["ok"] and review.get(w.ex, w.libs, ref)["state"] == "resolved"
    assert review.history(w.libs, ref)[-1]["action"] == "edge_ok"


def test_many_at_once_by_filter_and_keyset_pages(make_world: Any, h: Any) -> None:
    w = make_world({h.A: h.QINGHAI, h.B: h.QINGHAI})
    for county in (h.A, h.B):
        put(
            w,
            h.A if county == h.A else h.B,
            [{**h.person(county, i), "csrq": "1980-02-30"} for i in range(30)],
        )
    w.sync_all()
    f = Filter(code="DATE_INVALID")
    assert review.count(w.ex, w.libs, f) == 60
    seen: list[str] = []
    after = None
    while True:
        page = review.page(w.ex, w.libs, f, after=after, size=7)
        seen += [r["ref"] for r in page.rows]
        if page.next is None:
            break
        after = page.next
    assert len(seen) == 60 == len(set(seen))
    oldest = review.page(w.ex, w.libs, f, size=100, newest_first=False).rows
    assert [r["ref"] for r in oldest] == list(reversed(seen))
    audit = Audit()
    refused(
        "FAILED_NO_FILTER",
        review.act_many,
        w.ex,
        w.libs,
        "discard",
        actor="ops",
        audit=audit,
        where=Filter(),
        reason="x",
    )
    out = review.act_many(
        w.ex, w.libs, "discard", actor="ops", audit=audit, where=Filter(node=h.B), reason="test data"
    )
    assert len(out) == 30 and all(o.ok for o in out)
    again = review.act_many(
        w.ex, w.libs, "discard", actor="ops", audit=audit, where=Filter(node=h.B, state=None), reason="again"
    )
    assert {o.code for o in again} == {"FAILED_CLOSED"}
    assert review.count(w.ex, w.libs, Filter(state="discarded")) == 30
    refused("FAILED_ID", Ref.parse, "630102-12")


def test_version_2_library_gets_step_5(make_world: Any, h: Any) -> None:
    w = make_world({h.A: h.QINGHAI})
    lib = w.lib(h.A)
    with lib.engine.begin() as c:
        c.exec_driver_sql("DROP INDEX ix_failed_list")
        c.exec_driver_sql("DROP INDEX ix_failed_key")
        for col in ("version", "pending", "closed_at", "closed_by"):
            c.exec_driver_sql(f"ALTER TABLE failed_transfers DROP COLUMN {col}")
        c.exec_driver_sql("UPDATE tongban_meta SET value = '2' WHERE name = 'schema_version'")
    assert migrate(lib.engine) == 5
    cols = {c["name"] for c in sa.inspect(lib.engine).get_columns("failed_transfers")}
    assert {"version", "pending", "closed_at", "closed_by"} <= cols
    put(w, h.A, [bad_check(h, h.A, 1)])
    w.sync(w.system_edge(h.A))
    assert [f["version"] for f in lib.failures()] == [1]


def test_a_resubmission_in_flight_then_its_run_fails(make_world: Any, h: Any, monkeypatch: Any) -> None:
    from tongban.core import engine
    from tongban.core.engine import runs
    from tongban.core.errors import SyncError

    w = make_world({h.A: h.QINGHAI})
    row = bad_check(h, h.A, 3)
    put(w, h.A, [row])
    w.sync_all()
    ref, audit = Ref(h.A, failure_of(w, h.A, row["sfzh"])["id"]), Audit()
    review.act(w.ex, w.libs, ref, "resubmit", actor="ops", audit=audit, edit={"id_number": row["_good"]})
    # A run takes it (extract claims it): operators wait for that run.
    run_uri = engine.extract(w.ex, w.system_edge(h.A), libs=w.libs)
    refused(
        "FAILED_IN_FLIGHT", review.act, w.ex, w.libs, ref, "discard", actor="ops", audit=audit, reason="x"
    )
    engine.discard_run(run_uri)

    def broken(*a: Any, **k: Any) -> str:
        raise SyncError("KEY_MISSING", "缺少签名密钥", "the signing key is missing", h.A)

    monkeypatch.setattr(runs, "seal", broken)
    with pytest.raises(SyncError):
        w.sync(w.system_edge(h.A))
    # The failed run let go of it: still queued, and operators may act again (it was not loaded).
    f = review.get(w.ex, w.libs, ref)
    assert f["state"] == "queued" and "run" not in review.payload_of({"payload": f["pending"]})
    assert w.lib(h.A).record(P, row["_good"]) is None
    monkeypatch.undo()
    w.sync(w.system_edge(h.A))
    assert review.get(w.ex, w.libs, ref)["state"] == "resolved"
    assert w.lib(h.A).record(P, row["_good"]) is not None


def test_on_postgresql(make_world: Any, h: Any, pg_url: str, monkeypatch: Any) -> None:
    """The county's library (where its failures live) on PostgreSQL: the same behaviour."""
    import uuid

    env = f"TONGBAN_T_LIB_{uuid.uuid4().hex[:8].upper()}"
    monkeypatch.setenv(env, pg_url)
    w = make_world({h.A: h.QINGHAI}, libraries={h.A: {"library_env": env}})
    assert w.lib(h.A).dialect == "postgresql"
    row = bad_check(h, h.A, 3)
    late = {**h.person(h.A, 20), "csrq": "1980-02-30"}
    put(
        w,
        h.A,
        [*h.people(h.A, 3), row, late, *[{**h.person(h.A, 40 + i), "csrq": "1980-02-31"} for i in range(12)]],
    )
    w.sync_all()
    assert review.count(w.ex, w.libs, Filter(node=h.A)) == 14
    seen, after = [], None
    while True:
        page = review.page(w.ex, w.libs, Filter(node=h.A), after=after, size=5)
        seen += [r["ref"] for r in page.rows]
        if not (after := page.next):
            break
    assert len(set(seen)) == 14
    # Two operators at once on one row: one wins.
    ref = Ref(h.A, failure_of(w, h.A, row["sfzh"])["id"])
    version = review.get(w.ex, w.libs, ref)["version"]
    audit, results = Audit(), []
    barrier = threading.Barrier(2)

    def go(action: str, **kw: Any) -> None:
        barrier.wait()
        try:
            results.append(
                review.act(w.ex, w.libs, ref, action, actor=action, audit=audit, expect_version=version, **kw)
            )
        except ReviewError as exc:
            results.append(exc)

    threads = [
        threading.Thread(target=go, args=("resubmit",), kwargs={"edit": {"id_number": row["_good"]}}),
        threading.Thread(target=go, args=("resolve",)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(r, ReviewError) for r in results) == 1
    assert len(review.history(w.libs, ref)) == 1
    # Self-resolving, and a resubmission (if it won) loaded up to the national library.
    w.registers[h.A].update(late["sfzh"], csrq=h.person(h.A, 20)["csrq"], gxsj="2025-03-01 11:00:00")
    review.apply_queued(w.ex, w.libs)
    w.sync_all()
    assert failure_of(w, h.A, late["sfzh"])["state"] == "resolved"
    if any(getattr(r, "action", None) == "resubmit" for r in results):
        assert w.lib(h.NATIONAL).record(P, row["_good"])["_owner"] == h.A
    assert review.get(w.ex, w.libs, ref)["state"] == "resolved"
