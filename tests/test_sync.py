"""tongban.core.engine: incremental syncs of small hand-made exchanges, county -> province -> national.

Counties read SQLite registers (local names and codes, mapped), drop folders of CSV, or a MariaDB
system (TONGBAN_TEST_MYSQL_URL); one test puts the province's library on PostgreSQL
(TONGBAN_TEST_POSTGRES_URL). Server tests skip when their variable is unset.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.dropfolder import DEFAULT_SETTLE_SECONDS
from connectors.errors import ExtractError
from tongban.core import engine

P = "population"


def minutes(m: int) -> str:
    return (dt.datetime(2025, 3, 1, 10, 0) + dt.timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M:%S")


def utc(local: str) -> dt.datetime:
    """A register time (Asia/Shanghai) as the library stores it."""
    return (
        dt.datetime.fromisoformat(local).replace(tzinfo=dt.timezone(dt.timedelta(hours=8))).astimezone(dt.UTC)
    )


def keys_of(lib: Any, dataset: str = P) -> set[str]:
    key = "id_number" if dataset == P else "uscc"
    with lib.connect() as c:
        t = lib.tables[dataset]
        return {r[0] for r in c.execute(sa.select(t.c[key]))}


def counts(summary: dict[str, Any]) -> tuple[int, int]:
    return summary["inserted"], summary["updated"]


def last_cursor(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The cursor a run that read ``rows`` (register order) stops at."""
    last = max(rows, key=lambda r: (r["gxsj"], r["sfzh"]))
    return {"value": last["gxsj"], "key": last["sfzh"]}


# -- incremental runs -------------------------------------------------------------------------------


def test_first_run_then_rerun_loads_nothing_new(make_world: Any, h: Any) -> None:
    w = make_world({h.A: h.QINGHAI})
    rows = h.people(h.A, 12, ts=minutes)
    w.registers[h.A].put(rows)
    edge = w.system_edge(h.A)
    first = w.sync(edge)
    assert (first["rows"], *counts(first), first["rejected"]) == (12, 12, 0, 0)
    lib = w.lib(h.A)
    assert keys_of(lib) == {r["sfzh"] for r in rows}
    assert lib.state(edge)["cursor"] == last_cursor(rows)
    again = w.sync(edge)
    assert counts(again) == (0, 0)
    assert again["rows"] == again["unchanged"] == 11  # only the lookback window (10 minutes) is re-read
    assert lib.count(P) == 12 and lib.state(edge)["rows_loaded"] == 12


def test_changed_rows_update_exactly_those(make_world: Any, h: Any) -> None:
    w = make_world({h.A: h.QINGHAI})
    reg = w.registers[h.A]
    rows = h.people(h.A, 12, ts=minutes)
    reg.put(rows)
    edge = w.system_edge(h.A)
    w.sync(edge)
    changed = {rows[i]["sfzh"]: f"改名{i}" for i in (1, 5, 9)}
    for n, (key, name) in enumerate(changed.items()):
        reg.update(key, xm=name, gxsj=minutes(30 + n))
    result = w.sync(edge)
    assert counts(result) == (0, 3) and result["stale"] == result["conflicts"] == 0
    lib = w.lib(h.A)
    for key, name in changed.items():
        assert lib.record(P, key)["name"] == name
        assert [x["_reason"] for x in lib.history(P, key)] == ["replaced"]
    with lib.connect() as c:
        history = lib.tables["population_history"]
        assert {r[0] for r in c.execute(sa.select(history.c.id_number))} == set(changed)
    assert lib.state(edge)["cursor"] == last_cursor(reg.rows())


@pytest.mark.parametrize("lookback", ["0s", "10m"])
def test_rows_sharing_a_timestamp_across_batches_all_load(make_world: Any, h: Any, lookback: str) -> None:
    w = make_world({h.A: h.QINGHAI}, batch_size=3, lookback=lookback)
    reg = w.registers[h.A]
    reg.put(h.people(h.A, 10))  # one updated_at for all
    edge = w.system_edge(h.A)
    first = w.sync(edge)
    assert (first["batches"], first["inserted"]) == (4, 10)
    assert w.lib(h.A).state(edge)["cursor"] == last_cursor(reg.rows())
    # More rows at the very same time, keys after the cursor's: a resume must not skip them.
    reg.put(h.people(h.A, 4, start=10))
    second = w.sync(edge)
    assert second["inserted"] == 4 and second["updated"] == 0
    assert keys_of(w.lib(h.A)) == reg.key_set()
    with w.lib(h.A).connect() as c:
        batches = w.lib(h.A).tables["batches"]
        sizes = [r[0] for r in c.execute(sa.select(batches.c.rows).where(batches.c.edge == edge))]
    assert max(sizes) == 3 and sum(sizes) == first["rows"] + second["rows"]


@pytest.mark.parametrize(("lookback", "picked"), [("10m", 1), ("0s", 0)])
def test_late_row_with_an_old_time_inside_the_lookback(
    make_world: Any, h: Any, lookback: str, picked: int
) -> None:
    w = make_world({h.A: h.QINGHAI}, lookback=lookback)
    reg = w.registers[h.A]
    reg.put(h.people(h.A, 10, start=100, ts=lambda i: minutes(i - 100)))  # cursor: 10:09, the largest key
    edge = w.system_edge(h.A)
    w.sync(edge)
    late = h.person(h.A, 1, ts=minutes(4))  # committed late, stamped 5 minutes before the cursor
    reg.put([late])
    result = w.sync(edge)
    assert result["inserted"] == picked  # with no lookback the late row is (by design) missed
    assert (late["sfzh"] in keys_of(w.lib(h.A))) is bool(picked)


def test_full_refresh_rereads_all_and_changes_nothing(make_world: Any, h: Any) -> None:
    w = make_world({h.A: h.QINGHAI}, batch_size=5)
    reg = w.registers[h.A]
    reg.put(h.people(h.A, 12, ts=lambda i: minutes(3 * i)))
    edge = w.system_edge(h.A)
    w.sync(edge)
    before = w.lib(h.A).state(edge)
    full = w.sync(edge, full=True)
    assert (full["rows"], full["unchanged"], *counts(full)) == (12, 12, 0, 0)
    after = w.lib(h.A).state(edge)
    assert after["cursor"] == before["cursor"] == last_cursor(reg.rows())
    assert after["rows_loaded"] == 12 and w.lib(h.A).count(P) == 12


# -- the hierarchy ----------------------------------------------------------------------------------


def test_county_province_national_propagation(make_world: Any, h: Any) -> None:
    w = make_world({h.A: h.QINGHAI, h.B: h.QINGHAI, h.C: h.GANSU}, batch_size=4)
    for i, county in enumerate((h.A, h.B, h.C)):
        w.registers[county].put(h.people(county, 5 + i, ts=minutes))
    summaries = w.sync_all()
    assert summaries[w.edge(h.QINGHAI, h.NATIONAL)]["inserted"] == 11
    assert summaries[w.edge(h.GANSU, h.NATIONAL)]["inserted"] == 7
    national, qinghai, gansu = w.lib(h.NATIONAL), w.lib(h.QINGHAI), w.lib(h.GANSU)
    assert national.count(P) == 18 and qinghai.count(P) == 11 and gansu.count(P) == 7
    for county in (h.A, h.B, h.C):
        for key in w.registers[county].key_set():
            top, local = national.record(P, key), w.lib(county).record(P, key)
            assert top["_owner"] == county and local["_owner"] == county
            assert top["_hash"] == local["_hash"]  # the same leaf at every level
            assert top["updated_at"] == local["updated_at"]
    # A change in one county reaches the top; the rest of the tree is a no-op.
    key = next(iter(w.registers[h.B].key_set()))
    w.registers[h.B].update(key, xm="新名字", gxsj=minutes(60))
    summaries = w.sync_all()
    assert {e: counts(s) for e, s in summaries.items() if counts(s) != (0, 0)} == {
        w.system_edge(h.B): (0, 1),
        w.edge(h.B, h.QINGHAI): (0, 1),
        w.edge(h.QINGHAI, h.NATIONAL): (0, 1),
    }
    assert national.record(P, key)["name"] == "新名字"
    assert [x["name"] for x in national.history(P, key)] == [w.lib(h.B).history(P, key)[0]["name"]]


def test_county_updating_another_countys_record_is_a_conflict(make_world: Any, h: Any) -> None:
    w = make_world({h.A: h.QINGHAI, h.B: h.QINGHAI})
    mine = h.person(h.A, 1)
    w.registers[h.A].put([mine])
    w.registers[h.B].put([{**mine, "xm": "冒名", "hjd": h.B, "gxsj": minutes(5)}, h.person(h.B, 2)])
    summaries = w.sync_all()
    assert summaries[w.edge(h.B, h.QINGHAI)]["conflicts"] == 1
    province = w.lib(h.QINGHAI)
    record = province.record(P, mine["sfzh"])
    assert record["_owner"] == h.A and record["name"] == mine["xm"]
    [failure] = province.failures(code="OWNER_CONFLICT")
    assert failure["kind"] == "row" and failure["row_key"] == mine["sfzh"]
    assert failure["edge"] == w.edge(h.B, h.QINGHAI) and "冒名" in failure["payload"]
    assert w.lib(h.NATIONAL).record(P, mine["sfzh"])["_owner"] == h.A
    assert w.lib(h.NATIONAL).count(P) == 2
    assert province.state(w.edge(h.B, h.QINGHAI))["rows_failed"] == 1
    summaries = w.sync_all()  # B's row is re-read in the lookback window: refused again, kept once
    assert summaries[w.edge(h.B, h.QINGHAI)]["conflicts"] == 0
    assert (
        len(province.failures(code="OWNER_CONFLICT")) == 1
        and province.record(P, mine["sfzh"])["_owner"] == h.A
    )


def test_migration_between_two_counties(make_world: Any, h: Any) -> None:
    w = make_world({h.A: h.QINGHAI, h.B: h.QINGHAI})
    x = h.person(h.A, 1)
    w.registers[h.A].put([x, h.person(h.A, 2)])
    w.registers[h.B].put([h.person(h.B, 3)])
    w.sync_all()
    w.registers[h.A].update(x["sfzh"], ryzt="21", qwd=h.B, gxsj=minutes(10))  # 户口迁出 to B
    w.sync_all()
    w.registers[h.B].put([{**x, "hjd": h.B, "hjdz": "新家路1号", "gxsj": minutes(20)}])  # B issues it
    summaries = w.sync_all()
    assert summaries[w.edge(h.B, h.QINGHAI)]["updated"] == 1
    assert summaries[w.edge(h.QINGHAI, h.NATIONAL)]["updated"] == 1
    for node in (h.QINGHAI, h.NATIONAL):
        lib = w.lib(node)
        record = lib.record(P, x["sfzh"])
        assert (
            record["_owner"] == h.B and record["household_division"] == h.B and record["status"] == "normal"
        )
        history = [(r["_owner"], r["status"], r["moved_to"], r["_reason"]) for r in lib.history(P, x["sfzh"])]
        assert history == [(h.A, "normal", None, "replaced"), (h.A, "moved_out", h.B, "migrated")]
        assert lib.failures() == []
    assert w.lib(h.A).record(P, x["sfzh"])["status"] == "moved_out"  # A keeps its own tombstone
    # A rerun re-reads A's tombstone (lookback): a version the province keeps, not a conflict.
    summaries = w.sync_all()
    assert all(counts(s) == (0, 0) and s["conflicts"] == 0 for s in summaries.values())
    assert w.lib(h.QINGHAI).failures() == [] and w.lib(h.NATIONAL).failures() == []
    # Once moved, A may no longer change the record.
    w.registers[h.A].update(x["sfzh"], xm="改名", gxsj=minutes(30))
    summaries = w.sync_all()
    assert summaries[w.edge(h.A, h.QINGHAI)]["conflicts"] == 1
    assert w.lib(h.NATIONAL).record(P, x["sfzh"])["_owner"] == h.B


def test_migration_across_provinces_moves_ownership_at_national(make_world: Any, h: Any) -> None:
    w = make_world({h.A: h.QINGHAI, h.C: h.GANSU})
    x = h.person(h.A, 1)
    w.registers[h.A].put([x])
    w.registers[h.C].put([h.person(h.C, 2)])
    w.sync_all()
    w.registers[h.A].update(x["sfzh"], ryzt="21", qwd=h.C, gxsj=minutes(10))
    w.sync_all()
    w.registers[h.C].put([{**x, "hjd": h.C, "gxsj": minutes(20)}])
    summaries = w.sync_all()
    assert counts(summaries[w.edge(h.C, h.GANSU)]) == (1, 0)  # new to Gansu
    assert counts(summaries[w.edge(h.GANSU, h.NATIONAL)]) == (0, 1)  # moved at national
    national = w.lib(h.NATIONAL)
    assert national.record(P, x["sfzh"])["_owner"] == h.C
    assert [(r["_owner"], r["_reason"]) for r in national.history(P, x["sfzh"])] == [
        (h.A, "replaced"),
        (h.A, "migrated"),
    ]
    assert w.lib(h.QINGHAI).record(P, x["sfzh"])["status"] == "moved_out"  # Qinghai keeps the tombstone
    w.sync_all()
    assert national.failures() == [] and national.record(P, x["sfzh"])["_owner"] == h.C


# -- drop folders, bad rows, unreachable systems ----------------------------------------------------


def settled(folder: Path) -> None:
    """Date the files of a drop folder back past its settle time, as if dropped a while ago."""
    then = time.time() - 2 * DEFAULT_SETTLE_SECONDS
    for path in folder.glob("*"):
        os.utime(path, (then, then))


def test_fresh_drop_files_wait_for_the_settle_time(make_world: Any, h: Any) -> None:
    w = make_world({h.A: h.QINGHAI}, registers=(), drop=(h.A,), settle=None)
    folder = w.drops[h.A]
    (folder / "a.csv").write_text(h.csv_text(h.people(h.A, 3)), encoding="utf-8")
    edge = w.edge(f"drop-{h.A}", h.A)
    assert w.sync(edge)["rows"] == 0  # just written: perhaps still being written
    assert (folder / "a.csv").exists()
    settled(folder)
    assert w.sync(edge)["inserted"] == 3
    assert not (folder / "a.csv").exists()


def test_drop_file_with_a_10_mb_value_loads_its_other_rows(make_world: Any, h: Any) -> None:
    w = make_world({h.A: h.QINGHAI}, registers=(), drop=(h.A,))
    folder = w.drops[h.A]
    rows = h.people(h.A, 5, ts=minutes)
    rows[2]["hjdz"] = "和平路" * ((10 << 20) // 9) + "1号"  # a 10 MB household address
    (folder / "long.csv").write_text(h.csv_text(rows), encoding="utf-8")
    settled(folder)
    edge = w.edge(f"drop-{h.A}", h.A)
    result = w.sync(edge)
    assert (result["inserted"], result["rejected"]) == (4, 1)
    lib = w.lib(h.A)
    assert keys_of(lib) == {r["sfzh"] for i, r in enumerate(rows) if i != 2}
    (failure,) = lib.failures(kind="row")
    assert "TOO_LONG" in failure["codes"].split(",") and failure["row_key"] == rows[2]["sfzh"]
    assert lib.failures(kind="file") == []
    assert [p.name for p in (folder / "archive").rglob("*.csv")] == ["long.csv"]


def test_drop_folder_archives_loaded_files_and_quarantines_truncated_ones(make_world: Any, h: Any) -> None:
    w = make_world({h.A: h.QINGHAI}, registers=(), drop=(h.A,))
    folder = w.drops[h.A]
    good1, good2 = h.people(h.A, 3, ts=minutes), h.people(h.A, 4, start=3, ts=minutes)
    (folder / "a.csv").write_text(h.csv_text(good1), encoding="utf-8")
    (folder / "b.csv").write_text(h.csv_text(good2), encoding="utf-8")
    cut = h.csv_text(h.people(h.A, 3, start=20))
    (folder / "cut-quote.csv").write_text(cut[: cut.rindex('"') - 2], encoding="utf-8")  # mid quoted value
    short = h.csv_text(h.people(h.A, 3, start=30))
    (folder / "cut-row.csv").write_text(short[: short.rindex("\n", 0, -1) + 25], encoding="utf-8")
    settled(folder)
    edge = w.edge(f"drop-{h.A}", h.A)
    result = w.sync(edge)
    assert result["inserted"] == 7
    lib = w.lib(h.A)
    assert keys_of(lib) == {r["sfzh"] for r in good1 + good2}
    archived = sorted(p.name for p in (folder / "archive").rglob("*.csv"))
    assert archived == ["a.csv", "b.csv"]
    assert sorted(p.name for p in (folder / "failed").glob("*.csv")) == ["cut-quote.csv", "cut-row.csv"]
    assert (folder / "failed" / "cut-quote.csv.reason.json").read_text().count("FILE_MALFORMED") == 1
    assert list(folder.glob("*.csv")) == []
    files = lib.failures(kind="file")
    assert sorted(f["codes"] for f in files) == ["FILE_MALFORMED", "FILE_MALFORMED"]
    assert {Path(f["where"].split(":")[0]).name for f in files} == {"cut-quote.csv", "cut-row.csv"}
    for f in files:
        payload = json.loads(f["payload"])
        moved = Path(payload["file"])
        assert f["edge"] == edge and moved.parent == folder / "failed"
        assert payload["sha256"] == hashlib.sha256(moved.read_bytes()).hexdigest()
    again = w.sync(edge)  # nothing pending: nothing read, nothing recorded twice
    assert again["rows"] == 0 and len(lib.failures(kind="file")) == 2


def test_rows_failing_validation_become_failed_transfers(make_world: Any, h: Any) -> None:
    w = make_world({h.A: h.QINGHAI})
    good = h.people(h.A, 3)
    bad_check = h.person(h.A, 10)
    bad_check["sfzh"] = bad_check["sfzh"][:-1] + ("0" if bad_check["sfzh"][-1] != "0" else "1")
    bad = {
        "ID_CHECKSUM": bad_check,
        "DATE_INVALID": {**h.person(h.A, 11), "csrq": "1980-02-30"},
        "ID_GENDER_MISMATCH": {**h.person(h.A, 12), "xb": "2"},
        "MOVED_TO_MISSING": {**h.person(h.A, 13), "ryzt": "21"},
        "STATUS_INVALID": {**h.person(h.A, 14), "ryzt": "99"},
    }
    w.registers[h.A].put(good + list(bad.values()))
    edge = w.system_edge(h.A)
    result = w.sync(edge)
    assert (result["inserted"], result["rejected"]) == (3, 5)
    lib = w.lib(h.A)
    assert keys_of(lib) == {r["sfzh"] for r in good}
    failures = {f["row_key"]: f for f in lib.failures(kind="row")}
    assert set(failures) == {r["sfzh"] for r in bad.values()}
    for code, row in bad.items():
        failure = failures[row["sfzh"]]
        assert code in failure["codes"].split(","), (code, failure["codes"])
        assert failure["edge"] == edge and failure["message_zh"] and failure["message_en"]
        assert failure["where"].startswith(f"gongan-{h.A}:") and row["sfzh"] in failure["payload"]
    assert lib.state(edge)["rows_failed"] == 5
    again = w.sync(edge)  # the lookback re-reads the bad rows: they are kept once
    assert again["unchanged"] == 3 and again["rejected"] == 0 and len(lib.failures(kind="row")) == 5
    assert keys_of(lib) == {r["sfzh"] for r in good}


def test_unreachable_system_fails_the_run_and_counts_attempts(
    make_world: Any, h: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = f"TONGBAN_T_SYS_{uuid.uuid4().hex[:8].upper()}"
    system = h.sql_system(h.A, url=None, url_env=env)
    w = make_world({h.A: h.QINGHAI}, registers=(), systems=[system])
    edge = w.system_edge(h.A)
    lib = w.lib(h.A)
    attempts = [
        f"sqlite:///{tmp_path / 'no-such-folder' / 'czrk.sqlite'}",
        "postgresql+psycopg://postgres@127.0.0.1:1/nothing?connect_timeout=3",
    ]
    for n, url in enumerate(attempts, start=1):
        monkeypatch.setenv(env, url)
        with pytest.raises(ExtractError) as err:
            w.sync(edge)
        assert err.value.code == "SQL_UNREACHABLE" and err.value.message_zh and err.value.where
        [run] = lib.failures(kind="run")
        assert (run["attempts"], run["codes"], run["edge"], run["state"]) == (
            n,
            "SQL_UNREACHABLE",
            edge,
            "open",
        )
        assert lib.state(edge)["last_error"].startswith("SQL_UNREACHABLE")
    [status] = [s for s in engine.status(w.ex) if s["edge"] == edge]
    assert status["open_failures"] == 1 and status["last_success"] is None
    # The system comes back: the next run loads and closes the failed run.
    reg = h.Register(tmp_path / "back" / "czrk.sqlite")
    reg.put(h.people(h.A, 3))
    monkeypatch.setenv(env, f"sqlite:///{reg.path}")
    assert w.sync(edge)["inserted"] == 3
    assert lib.failures(kind="run") == [] and lib.state(edge)["last_error"] is None


# -- server databases -------------------------------------------------------------------------------


def test_mariadb_system_into_a_county(
    make_world: Any, h: Any, mysql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = f"czrk_{uuid.uuid4().hex[:10]}"
    server = sa.create_engine(mysql_url, poolclass=sa.pool.NullPool)
    rows = h.people(h.A, 7, ts=minutes)
    with server.begin() as conn:
        conn.execute(
            sa.text(
                f"create table {table} (sfzh varchar(18) primary key, xm varchar(64), xb char(1), mz char(2), "
                "csrq date, hjd char(6), hjdz varchar(256), ryzt char(2), qwd char(6), gxsj datetime) "
                "character set utf8mb4"
            )
        )
        conn.execute(
            sa.text(
                f"insert into {table} values (:sfzh, :xm, :xb, :mz, :csrq, :hjd, :hjdz, :ryzt, :qwd, :gxsj)"
            ),
            rows,
        )
    try:
        env = f"TONGBAN_T_MYSQL_{uuid.uuid4().hex[:8].upper()}"
        monkeypatch.setenv(env, mysql_url)
        system = h.sql_system(h.A, url=None, url_env=env, table=table)
        w = make_world({h.A: h.QINGHAI}, registers=(), systems=[system], batch_size=3)
        edge = w.system_edge(h.A)
        first = w.sync(edge)
        assert (first["batches"], *counts(first), first["rejected"]) == (3, 7, 0, 0)
        lib = w.lib(h.A)
        record = lib.record(P, rows[0]["sfzh"])
        assert record["name"] == rows[0]["xm"] and record["_owner"] == h.A
        assert record["updated_at"] == utc(rows[0]["gxsj"]) and str(record["birth_date"]) == rows[0]["csrq"]
        assert lib.state(edge)["cursor"] == {
            "value": {"$datetime": dt.datetime.fromisoformat(rows[-1]["gxsj"]).isoformat()},
            "key": rows[-1]["sfzh"],
        }
        with server.begin() as conn:
            conn.execute(
                sa.text(f"update {table} set xm = '新名字', gxsj = :t where sfzh = :k"),
                {"t": minutes(30), "k": rows[2]["sfzh"]},
            )
        assert counts(w.sync(edge)) == (0, 1)
        assert lib.record(P, rows[2]["sfzh"])["name"] == "新名字"
        assert w.sync(w.edge(h.A, h.QINGHAI))["inserted"] == 7
    finally:
        with server.begin() as conn:
            conn.execute(sa.text(f"drop table if exists {table}"))
        server.dispose()


def test_postgresql_province_library(
    make_world: Any, h: Any, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = f"TONGBAN_T_LIB_{uuid.uuid4().hex[:8].upper()}"
    monkeypatch.setenv(env, pg_url)
    w = make_world(
        {h.A: h.QINGHAI, h.B: h.QINGHAI}, libraries={h.QINGHAI: {"library_env": env}}, batch_size=4
    )
    assert w.lib(h.QINGHAI).dialect == "postgresql"
    x = h.person(h.A, 1)
    w.registers[h.A].put([x, *h.people(h.A, 5, start=2, ts=minutes)])
    w.registers[h.B].put([*h.people(h.B, 4, ts=minutes), {**x, "hjd": h.B, "gxsj": minutes(9)}])
    summaries = w.sync_all()
    province, national = w.lib(h.QINGHAI), w.lib(h.NATIONAL)
    assert summaries[w.edge(h.A, h.QINGHAI)]["inserted"] == 6
    assert summaries[w.edge(h.B, h.QINGHAI)]["conflicts"] == 1
    assert province.count(P) == national.count(P) == 10
    assert [f["row_key"] for f in province.failures(code="OWNER_CONFLICT")] == [x["sfzh"]]
    for key in w.registers[h.A].key_set():
        assert (
            province.record(P, key)["_hash"]
            == national.record(P, key)["_hash"]
            == w.lib(h.A).record(P, key)["_hash"]
        )
    assert {e: counts(s) for e, s in w.sync_all().items() if counts(s) != (0, 0)} == {}
    w.registers[h.A].update(x["sfzh"], ryzt="30", gxsj=minutes(20))  # deceased: a tombstone
    summaries = w.sync_all()
    assert counts(summaries[w.edge(h.A, h.QINGHAI)]) == (0, 1)
    assert counts(summaries[w.edge(h.QINGHAI, h.NATIONAL)]) == (0, 1)
    assert province.record(P, x["sfzh"])["status"] == national.record(P, x["sfzh"])["status"] == "deceased"
    assert [r["_reason"] for r in province.history(P, x["sfzh"])] == ["replaced"]
    assert province.state(w.edge(h.A, h.QINGHAI))["rows_loaded"] == 7


def test_spool_keeps_only_the_newest_finished_runs(
    make_world: Any, h: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tongban.core.engine import spool

    monkeypatch.setattr(spool, "KEEP_RUNS", 2)
    world = make_world({h.A: h.QINGHAI})
    world.registers[h.A].put(h.people(h.A, 3))
    edge = world.system_edge(h.A)
    for _ in range(4):
        world.sync(edge)
    runs = [p for p in (world.ex.spool / edge).iterdir() if p.is_dir()]
    assert len(runs) == 2 and all([f.name for f in r.iterdir()] == ["load.json"] for r in runs)
