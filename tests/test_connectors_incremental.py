"""connectors/: incremental SQL reads resume exactly, and drop folders hand over only completed files."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.dropfolder import DropFile, archive, pending_files, quarantine
from connectors.errors import ExtractError
from connectors.sql import Cursor, _minus, mask_url, read_sql, read_sql_incremental, sqlite_url

SERVERS = {
    "mysql": ("TONGBAN_TEST_MYSQL_URL", "MariaDB"),
    "postgres": ("TONGBAN_TEST_POSTGRES_URL", "PostgreSQL"),
}


@dataclass
class Db:
    """A scratch database: tables get unique names and are dropped after the test."""

    kind: str
    url: str
    engine: sa.Engine
    tables: list[str] = field(default_factory=list)

    @property
    def datetime_type(self) -> str:
        return "datetime" if self.kind == "mysql" else "timestamp"

    def table(self, columns: str, rows: list[dict]) -> str:
        name = f"tb_{uuid.uuid4().hex[:12]}"
        self.tables.append(name)
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"create table {name} ({columns})"))
            if rows:
                cols = list(rows[0])
                marks = ", ".join(f":{c}" for c in cols)
                conn.execute(sa.text(f"insert into {name} ({', '.join(cols)}) values ({marks})"), rows)
        return name


@pytest.fixture(params=["sqlite", *SERVERS])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    kind = request.param
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'local.sqlite'}"
    else:
        env, label = SERVERS[kind]
        url = os.environ.get(env, "")
        if not url:
            pytest.skip(f"set {env} to run against {label}")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    scratch = Db(kind, url, engine)
    yield scratch
    with engine.begin() as conn:
        for name in scratch.tables:
            conn.execute(sa.text(f"drop table if exists {name}"))
    engine.dispose()


def _read(url: str, **kw) -> tuple[list[dict], list[Cursor]]:
    rows: list[dict] = []
    cursors: list[Cursor] = []
    for batch, cursor in read_sql_incremental(url, **kw):
        rows += batch.to_pylist()
        cursors.append(cursor)
    return rows, cursors


def _roundtrip(cursor: Cursor) -> Cursor | None:
    return Cursor.from_json(json.loads(json.dumps(cursor.to_json())))


T0 = "2026-01-01 10:00:00"
T1 = "2026-01-01 10:00:01"
T2 = "2026-01-01 10:00:02"
# Keys 9 and 10: as text "10" sorts before "9", so a key compared as text would skip or repeat rows.
SHARED = [
    {"k": 10, "ts": T1, "v": "b"},
    {"k": 3, "ts": T2, "v": "e"},
    {"k": 9, "ts": T1, "v": "a"},
    {"k": 7, "ts": None, "v": "n"},
    {"k": 12, "ts": T1, "v": "c"},
    {"k": 1, "ts": T0, "v": "z"},
    {"k": 2, "ts": T1, "v": "d"},
]
SHARED_ORDER = [7, 1, 2, 9, 10, 12, 3]


def test_full_read_is_ordered_and_every_cursor_resumes_exactly(db: Db) -> None:
    name = db.table("k integer primary key, ts varchar(40), v varchar(10)", SHARED)
    rows, cursors = _read(db.url, table=name, cursor_column="ts", key_column="k", batch_size=2)
    keys = [r["k"] for r in rows]
    assert keys == SHARED_ORDER
    assert rows[0] == {"k": 7, "ts": None, "v": "n"}
    # Each cursor is the last row of its batch; the four rows at T1 straddle two batches.
    assert cursors[0] == Cursor(None, "7")
    assert cursors[1] == Cursor(T1, "2")
    assert cursors[2] == Cursor(T1, "10")
    assert cursors[-1] == Cursor(T2, "3")
    done = 0
    for cursor, batch_keys in zip(cursors, [[7], [1, 2], [9, 10], [12, 3]], strict=True):
        done += len(batch_keys)
        after = _roundtrip(cursor)
        rest, _ = _read(db.url, table=name, cursor_column="ts", key_column="k", after=after, batch_size=2)
        assert [r["k"] for r in rest] == SHARED_ORDER[done:]


def test_query_source_is_wrapped_as_a_subquery(db: Db) -> None:
    name = db.table("k integer primary key, ts varchar(40), v varchar(10)", SHARED)
    query = f"select k, ts, v as val from {name} where v <> 'z';  "
    rows, cursors = _read(db.url, query=query, cursor_column="TS", key_column="k", batch_size=3)
    assert [r["k"] for r in rows] == [7, 2, 9, 10, 12, 3]
    assert set(rows[0]) == {"k", "ts", "val"}
    # The NULL-cursor rows come as their own batch: [7], [2, 9, 10], [12, 3].
    assert [c.key for c in cursors] == ["7", "10", "3"]
    rest, _ = _read(db.url, query=query, cursor_column="ts", key_column="k", after=cursors[1])
    assert [r["k"] for r in rest] == [12, 3]
    rest, _ = _read(db.url, query=query, cursor_column="ts", key_column="k", after=cursors[-1])
    assert rest == []


def test_lookback_rereads_the_window_of_text_timestamps(db: Db) -> None:
    rows = [
        {"k": "a", "ts": "2026-01-01 09:58:59"},
        {"k": "b", "ts": "2026-01-01 09:59:00"},
        {"k": "c", "ts": "2026-01-01 10:00:00"},
        {"k": "d", "ts": "2026-01-01 10:00:00"},
        {"k": "e", "ts": "2026-01-01 10:01:00"},
    ]
    name = db.table("k varchar(10) primary key, ts varchar(40)", rows)
    after = Cursor("2026-01-01 10:00:00", "c")
    kw = {"table": name, "cursor_column": "ts", "key_column": "k", "after": after}
    strict, _ = _read(db.url, **kw)
    assert [r["k"] for r in strict] == ["d", "e"]
    window, cursors = _read(db.url, lookback_seconds=60, **kw)
    assert [r["k"] for r in window] == ["b", "c", "d", "e"]
    assert cursors[-1] == Cursor("2026-01-01 10:01:00", "e")
    # A cursor that is no time at all: the strict condition, no crash.
    name = db.table(
        "k varchar(10) primary key, ts varchar(40)", [{"k": "x", "ts": "v1"}, {"k": "y", "ts": "v2"}]
    )
    rest, _ = _read(
        db.url, table=name, cursor_column="ts", key_column="k", after=Cursor("v1", "x"), lookback_seconds=60
    )
    assert [r["k"] for r in rest] == ["y"]


def test_lookback_on_real_datetime_columns(db: Db) -> None:
    base = datetime(2026, 1, 1, 10, 0, 0)
    offsets = {"a": -3600, "b": -30, "c": 0, "d": 0, "e": 5}
    rows = [{"k": k, "ts": base + timedelta(seconds=s)} for k, s in offsets.items()]
    name = db.table(f"k varchar(10) primary key, ts {db.datetime_type} null", rows)
    full, cursors = _read(db.url, table=name, cursor_column="ts", key_column="k", batch_size=3)
    assert [r["k"] for r in full] == ["a", "b", "c", "d", "e"]
    if db.kind != "sqlite":  # SQLite keeps timestamps as text, read raw
        assert cursors[0] == Cursor(base, "c")
    after = _roundtrip(cursors[0])
    kw = {"table": name, "cursor_column": "ts", "key_column": "k", "after": after}
    assert [r["k"] for r in _read(db.url, **kw)[0]] == ["d", "e"]
    assert [r["k"] for r in _read(db.url, lookback_seconds=60, **kw)[0]] == ["b", "c", "d", "e"]


def test_missing_table_and_columns_are_named(db: Db) -> None:
    name = db.table("k integer primary key, ts varchar(40)", [{"k": 1, "ts": T0}])
    with pytest.raises(ExtractError) as info:
        _read(db.url, table=name, cursor_column="updated_at", key_column="k")
    err = info.value
    assert err.code == "SQL_NO_COLUMN"
    assert "updated_at" in err.message_en and name in err.message_en
    assert "updated_at" in err.message_zh and name in err.message_zh
    with pytest.raises(ExtractError) as info:
        _read(db.url, query=f"select ts from {name}", cursor_column="ts", key_column="k")
    assert info.value.code == "SQL_NO_COLUMN" and "column k " in info.value.message_en
    with pytest.raises(ExtractError) as info:
        _read(db.url, table=f"{name}_gone", cursor_column="ts", key_column="k")
    assert info.value.code == "SQL_NO_TABLE"


def test_mariadb_bad_password_is_unreachable_and_masked() -> None:
    url = os.environ.get("TONGBAN_TEST_MYSQL_URL")
    if not url:
        pytest.skip("set TONGBAN_TEST_MYSQL_URL to run against MariaDB")
    bad = sa.make_url(url).set(username="tongban_nobody", password="Wr0ng-Secret")
    text = bad.render_as_string(hide_password=False)
    with pytest.raises(ExtractError) as info:
        _read(text, table="t", cursor_column="ts", key_column="k")
    err = info.value
    assert err.code == "SQL_UNREACHABLE"
    assert "Wr0ng-Secret" not in json.dumps(err.as_dict()) + str(err)
    assert "tongban_nobody:***@" in err.where


@pytest.mark.parametrize(
    "url",
    [
        "mysql+pymysql://etl:Top%40Secret-1@127.0.0.1:1/test",
        "postgresql+psycopg://etl:Top%40Secret-1@127.0.0.1:1/test",
    ],
)
def test_unreachable_server_masks_the_password(url: str) -> None:
    for read in (
        lambda: _read(url, table="t", cursor_column="ts", key_column="k"),
        lambda: list(read_sql(url, table="t")),
    ):
        with pytest.raises(ExtractError) as info:
            read()
        err = info.value
        assert err.code == "SQL_UNREACHABLE"
        assert err.where == url.replace("Top%40Secret-1", "***")
        assert err.message_zh.startswith("无法连接数据库") and err.message_en.startswith("cannot connect")
        dump = json.dumps(err.as_dict(), ensure_ascii=False) + str(err)
        assert "Secret" not in dump


def test_mask_url() -> None:
    assert mask_url("postgresql+psycopg://u:p%2Fw@h:5432/db?sslmode=require") == (
        "postgresql+psycopg://u:***@h:5432/db?sslmode=require"
    )
    assert mask_url("mysql://u:p@ss@h/db") == "mysql://u:***@h/db"  # an unescaped "@" leaks nothing
    assert mask_url("mysql+pymysql://root@127.0.0.1:3306/test") == "mysql+pymysql://root@127.0.0.1:3306/test"
    assert mask_url(sa.make_url("mysql://u:secret@h/db")) == "mysql://u:***@h/db"
    assert mask_url(sqlite_url("/tmp/x.sqlite")).startswith("sqlite:///file:/tmp/x.sqlite")


@pytest.mark.parametrize(
    "value",
    [
        None,
        "2026-01-01 10:00:00",
        42,
        1.5,
        Decimal("1767225600.123"),
        date(2026, 1, 1),
        datetime(2026, 1, 1, 10, 0, 0, 123456),
        datetime(2026, 1, 1, 10, 0, tzinfo=timezone(timedelta(hours=8))),
    ],
)
def test_cursor_json_round_trip_keeps_the_type(value: object) -> None:
    cursor = Cursor(value, "91110000600037341L")
    back = _roundtrip(cursor)
    assert back == cursor and type(back.value) is type(value)
    assert Cursor.from_json(None) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-01 00:00:30", "2025-12-31 23:59:30"),
        ("2026-01-01T00:00:30", "2025-12-31T23:59:30"),
        ("2026-01-01 10:00:00.5", "2026-01-01 09:59:00.5"),
        ("2026-01-01T10:00:00.000000+08:00", "2026-01-01T09:59:00.000000+08:00"),
        ("2026-01-01T10:00:00Z", "2026-01-01T09:59:00Z"),
        ("2026-01-01 10:00", "2026-01-01 09:59"),
        ("2026-01-01", "2025-12-31"),
        (datetime(2026, 1, 1, 10, 0), datetime(2026, 1, 1, 9, 59)),
        (date(2026, 1, 1), date(2025, 12, 31)),
        (1_767_225_600, 1_767_225_540),
        (1_767_225_600.5, 1_767_225_540.5),
        ("2026/01/01 10:00", None),
        ("0001-01-01 00:00:00", None),
        (True, None),
    ],
)
def test_minus_keeps_the_shape(value: object, expected: object) -> None:
    assert _minus(value, 60) == expected


TIMES = [None, T0, T1, T2]


@st.composite
def datasets(draw: st.DrawFn) -> tuple[str, dict[int, str | None], int]:
    kind = draw(st.sampled_from(["integer", "", "varchar(10)"]))  # "": SQLite column without a type
    rows = draw(st.dictionaries(st.integers(0, 25), st.sampled_from(TIMES), max_size=12))
    return kind, rows, draw(st.integers(1, 3))


@settings(max_examples=40, deadline=None)
@given(data=datasets())
def test_resume_from_any_cursor_never_skips_nor_repeats(
    data: tuple[str, dict[int, str | None], int], tmp_path_factory: pytest.TempPathFactory
) -> None:
    kind, rows, batch_size = data
    path = tmp_path_factory.getbasetemp() / f"prop-{uuid.uuid4().hex}.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}", poolclass=sa.pool.NullPool)
    text = kind.startswith("varchar")
    with engine.begin() as conn:
        conn.execute(sa.text(f"create table t (k {kind} primary key, ts varchar(40), v)"))
        if rows:
            values = [{"k": f"k{k}" if text else k, "ts": ts, "v": k} for k, ts in rows.items()]
            conn.execute(sa.text("insert into t values (:k, :ts, :v)"), values)
    engine.dispose()
    url = sqlite_url(path)
    expected = sorted(rows, key=lambda k: (rows[k] is not None, rows[k] or "", f"k{k}" if text else k))
    got: list[int] = []
    positions: list[tuple[int, Cursor]] = []
    for batch, cursor in read_sql_incremental(
        url, table="t", cursor_column="ts", key_column="k", batch_size=batch_size
    ):
        got += batch.column("v").to_pylist()
        positions.append((len(got), cursor))
    assert got == expected
    for done, cursor in positions:
        rest, _ = _read(url, table="t", cursor_column="ts", key_column="k", after=_roundtrip(cursor))
        assert [r["v"] for r in rest] == expected[done:]
    path.unlink()


# --- drop folders ---------------------------------------------------------------------------------


def _drop(folder: Path, name: str, content: bytes = b"a\n1\n", mtime: float = 1_000_000.0) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, (mtime, mtime))
    return path


def _names(files: list[DropFile]) -> list[str]:
    return [f.path.name for f in files]


@pytest.mark.parametrize(
    ("files", "listed"),
    [
        (["ok.csv", ".hidden.csv"], ["ok.csv"]),
        (
            ["ok.csv", "a.csv.part", "b.csv.tmp", "c.csv.partial", "d.csv.crdownload", "e.csv.filepart"],
            ["ok.csv"],
        ),
        (["ok.csv", "held.csv", "held.csv.lock"], ["ok.csv"]),
        (["ok.csv", "notes.txt", "data.xls", "b.parquet", "c.jsonl"], ["b.parquet", "c.jsonl", "ok.csv"]),
        (["ok.csv", "archive/20260101/old.csv", "failed/bad.csv", ".tmp/x.csv"], ["ok.csv"]),
        (["ok.csv", "ok.csv.done", "waiting.csv"], ["ok.csv"]),
        (["ok.csv", "UPPER.CSV"], ["UPPER.CSV", "ok.csv"]),
    ],
)
def test_pending_files_skip_rules(tmp_path: Path, files: list[str], listed: list[str]) -> None:
    for name in files:
        _drop(tmp_path, name)
    pending = pending_files(tmp_path, pattern="**/*")
    assert _names(pending) == listed


def test_pending_files_wait_for_files_to_settle(tmp_path: Path) -> None:
    _drop(tmp_path, "old.csv", mtime=1000.0)
    _drop(tmp_path, "fresh.csv", mtime=1095.0)
    assert _names(pending_files(tmp_path, settle_seconds=10, now=1100.0)) == ["old.csv"]
    assert _names(pending_files(tmp_path, settle_seconds=5, now=1100.0)) == ["old.csv", "fresh.csv"]
    assert _names(pending_files(tmp_path, pattern="f*.csv")) == ["fresh.csv"]


def test_pending_files_oldest_first_with_size_and_hash(tmp_path: Path) -> None:
    _drop(tmp_path, "c.csv", b"x" * 10, mtime=2000.0)
    _drop(tmp_path, "b.csv", b"y" * 3_000_000, mtime=1000.0)
    _drop(tmp_path, "a.csv", b"z", mtime=2000.0)
    pending = pending_files(tmp_path)
    assert _names(pending) == ["b.csv", "a.csv", "c.csv"]
    assert [f.size for f in pending] == [3_000_000, 1, 10]
    assert pending[0].mtime == 1000.0
    assert pending[0].sha256 == hashlib.sha256(b"y" * 3_000_000).hexdigest()


def test_missing_drop_folder(tmp_path: Path) -> None:
    with pytest.raises(ExtractError) as info:
        pending_files(tmp_path / "nope")
    assert info.value.code == "DROP_NOT_FOUND" and info.value.where == str(tmp_path / "nope")
    with pytest.raises(ExtractError) as info:
        archive(tmp_path / "gone.csv", tmp_path)
    assert info.value.code == "DROP_NOT_FOUND"


def test_archive_never_overwrites(tmp_path: Path) -> None:
    when = datetime(2026, 3, 5, 23, 59)
    moved = []
    for content in (b"first", b"second", b"third"):
        _drop(tmp_path, "czrk.csv", content)
        moved.append(archive(tmp_path / "czrk.csv", tmp_path, when=when))
    day = tmp_path / "archive" / "20260305"
    assert moved == [day / "czrk.csv", day / "czrk-1.csv", day / "czrk-2.csv"]
    assert [p.read_bytes() for p in moved] == [b"first", b"second", b"third"]
    assert not (tmp_path / "czrk.csv").exists()
    # The .done marker goes with its file, so the folder does not keep stale markers.
    _drop(tmp_path, "lic.csv")
    _drop(tmp_path, "lic.csv.done", b"")
    dest = archive(tmp_path / "lic.csv", tmp_path, when=when)
    assert (day / "lic.csv.done").exists() and not (tmp_path / "lic.csv.done").exists()
    assert dest.read_bytes() == b"a\n1\n"
    assert pending_files(tmp_path) == []


def test_quarantine_writes_the_reason(tmp_path: Path) -> None:
    first = quarantine(_drop(tmp_path, "bad.csv", b"one"), tmp_path, "FILE_MALFORMED")
    second = quarantine(_drop(tmp_path, "bad.csv", b"two"), tmp_path, "FILE_ENCODING")
    assert first == tmp_path / "failed" / "bad.csv" and second == tmp_path / "failed" / "bad-1.csv"
    assert second.read_bytes() == b"two"
    reason = json.loads((tmp_path / "failed" / "bad-1.csv.reason.json").read_text(encoding="utf-8"))
    assert reason["code"] == "FILE_ENCODING"
    at = datetime.fromisoformat(reason["at"])
    assert abs((datetime.now(UTC) - at).total_seconds()) < 60
    assert json.loads((tmp_path / "failed" / "bad.csv.reason.json").read_text())["code"] == "FILE_MALFORMED"
    assert pending_files(tmp_path, pattern="**/*") == []


# -- a SQLite system read straight into Arrow (ADBC) ----------------------------------------------------


def _text_reads(path: Path, after: Cursor | None, batch: int, as_text: bool) -> tuple[list[dict], list]:
    from tongban.core.engine.arrowio import raw_columns

    rows, cursors = [], []
    for b, cur in read_sql_incremental(
        f"sqlite:///{path}", table="t", cursor_column="c", key_column="k", after=after, batch_size=batch,
        as_text=as_text,
    ):  # fmt: skip
        rows += raw_columns(b).to_pylist()
        cursors.append(cur)
    return rows, cursors


@pytest.mark.parametrize("batch", [1, 3, 7, 100])
def test_arrow_read_gives_the_rows_and_cursors_of_the_python_read(tmp_path: Path, batch: int) -> None:
    path = tmp_path / "s.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (k TEXT, c TEXT, v TEXT, n INTEGER, e TEXT)")
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
        [(f"k{i:02d}", None if i % 9 == 0 else f"2026-01-0{i % 4 + 1} 00:00:00", f"名{i}", i, None if i < 12 else "x")
         for i in range(30)],
    )  # fmt: skip
    con.commit()
    con.close()
    for after in (None, Cursor("2026-01-02 00:00:00", "k05"), Cursor(None, "k09")):
        fast, slow = _text_reads(path, after, batch, True), _text_reads(path, after, batch, False)
        assert fast == slow
        assert len({r["k"] for r in fast[0]}) == len(fast[0])


def test_arrow_read_goes_on_through_sqlalchemy_when_the_cursor_changes_type(tmp_path: Path) -> None:
    """A cursor column whose values change storage class: every row still comes once, in order."""
    path = tmp_path / "s.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (k TEXT, c, v TEXT)")  # no affinity: SQLite keeps each value's class
    rows = [(f"k{i:02d}", i if i < 10 else f"t{i:02d}", "v") for i in range(20)]  # numbers sort first
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    con.commit()
    con.close()
    got, cursors = _text_reads(path, None, 4, True)
    assert [r["k"] for r in got] == [f"k{i:02d}".encode() for i in range(20)]
    assert cursors[-1] == Cursor("t19", "k19") and cursors[0] == Cursor(3, "k03")


def test_a_small_first_batch_keeps_every_row_and_cursor(tmp_path: Path) -> None:
    """``first_batch`` splits the first Arrow batch; each piece's cursor resumes exactly after it."""
    path = tmp_path / "s.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (k TEXT, c TEXT, v TEXT)")
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?)",
        [(f"k{i:02d}", f"2026-01-0{i % 3 + 1} 00:00:00", "v") for i in range(23)],
    )
    con.commit()
    con.close()

    def read(after: Cursor | None, first: int | None) -> list[tuple[list[bytes], Cursor]]:
        stream = read_sql_incremental(
            f"sqlite:///{path}", table="t", cursor_column="c", key_column="k", after=after, batch_size=7,
            as_text=True, first_batch=first,
        )  # fmt: skip
        return [(b.column("k").to_pylist(), cur) for b, cur in stream]

    whole, split = read(None, None), read(None, 2)
    assert [len(keys) for keys, _ in split] == [2, 5, 7, 7, 2]
    assert [k for keys, _ in split for k in keys] == [k for keys, _ in whole for k in keys]
    assert [cur for _, cur in split][1:] == [cur for _, cur in whole]
    for i, (_, cur) in enumerate(split):  # resuming after any piece reads exactly the rest
        rest = [k for keys, _ in read(cur, 2) for k in keys]
        assert rest == [k for keys, _ in split[i + 1 :] for k in keys]


def test_arrow_read_of_a_cursor_the_driver_widens_resumes_exactly(tmp_path: Path) -> None:
    """Reals, then integers in the cursor column: the driver reads the integers as reals, which SQLite
    compares equal, so every row comes once and resuming after any batch reads exactly the rest."""
    path = tmp_path / "s.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (k TEXT, c, v TEXT)")
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?)",
        [(f"k{i:02d}", i + 0.5 if i < 5 else i // 2, "v") for i in range(14)],
    )
    con.commit()
    con.close()
    fast, cursors = _text_reads(path, None, 3, True)
    slow, _ = _text_reads(path, None, 3, False)
    assert fast == slow and len(fast) == 14
    for i, cur in enumerate(cursors):
        rest, _ = _text_reads(path, cur, 3, True)
        assert rest == fast[3 * (i + 1) :]
