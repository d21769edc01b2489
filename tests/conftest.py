"""Shared fixtures of the sync tests: tiny hand-made exchanges and scratch server databases.

A :class:`World` is one small exchange under ``tmp_path``: the national node, one or two provinces,
a few counties, each county reading a tiny SQLite register (``czrk``, local column names, a mapping
file with status codes and Asia/Shanghai times) and optionally a drop folder of CSV files. Tests get
worlds from the ``make_world`` fixture and server databases from ``pg_url`` / ``mysql_url``, which
skip with a clear reason when their environment variable is unset.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tongban.core import engine
from tongban.core.config import Exchange, load_exchange
from tongban.core.initialize import initialize
from tongban.core.store import Library

NATIONAL = "000000"
QINGHAI, GANSU = "630000", "620000"
A, B, C = "630102", "630103", "620102"  # 城东区, 城中区 (青海), 城关区 (甘肃)
NAMES = {
    NATIONAL: "国家库",
    QINGHAI: "青海省",
    GANSU: "甘肃省",
    A: "城东区",
    B: "城中区",
    C: "城关区",
}
PG_ENV, MYSQL_ENV = "TONGBAN_TEST_POSTGRES_URL", "TONGBAN_TEST_MYSQL_URL"
#: Every world's libraries, so a server schema's fixture can close their connections before dropping it.
_OPEN: list[engine.Libraries] = []

#: The county registers' local columns, in order, and what they map to.
LOCAL_COLUMNS = {
    "sfzh": "id_number",
    "xm": "name",
    "xb": "gender",
    "mz": "ethnicity",
    "csrq": "birth_date",
    "hjd": "household_division",
    "hjdz": "household_address",
    "ryzt": "status",
    "qwd": "moved_to",
    "gxsj": "updated_at",
}
STATUS_CODES = {"normal": "10", "moved_out": "21", "deceased": "30"}
MAPPING_YAML = (
    "dataset: population\n"
    "columns: {" + ", ".join(f"{k}: {v}" for k, v in LOCAL_COLUMNS.items()) + "}\n"
    "values:\n"
    '  status: {"10": normal, "21": moved_out, "30": deceased}\n'
    "timezone: Asia/Shanghai\n"
)
CZRK_DDL = (
    "create table czrk (sfzh text primary key, xm text, xb text, mz text, csrq text, hjd text, "
    "hjdz text, ryzt text, qwd text, gxsj text)"
)
T0 = "2025-03-01 10:00:00"  # local (Asia/Shanghai) time of the registers' rows

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def make_id(area: str, birth: dt.date, seq: int, *, male: bool = True) -> str:
    """A valid GB 11643 identity number (area, birth date, sequence parity = sex, check character)."""
    order = (seq % 500) * 2 + (1 if male else 0)
    body = f"{area}{birth:%Y%m%d}{order:03d}"
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, _WEIGHTS, strict=True)) % 11]


def person(
    county: str,
    i: int,
    *,
    ts: str = T0,
    name: str | None = None,
    status: str = "normal",
    moved_to: str | None = None,
    division: str | None = None,
    male: bool = True,
) -> dict[str, Any]:
    """A resident as the county's register stores it (local names and codes), valid by the contract."""
    birth = dt.date(1960, 1, 1) + dt.timedelta(days=(i * 7) % 15_000)
    return {
        "sfzh": make_id(county, birth, i // 2_143, male=male),
        "xm": name or f"居民{i}",
        "xb": "1" if male else "2",
        "mz": "01",
        "csrq": birth.isoformat(),
        "hjd": division or county,
        "hjdz": f"和平路{i}号",
        "ryzt": STATUS_CODES[status],
        "qwd": moved_to,
        "gxsj": ts,
    }


def people(
    county: str, n: int, *, start: int = 0, ts: str | Callable[[int], str] = T0
) -> list[dict[str, Any]]:
    """``n`` distinct residents of ``county`` (``ts`` a time, or a function of the row number)."""
    return [person(county, i, ts=ts(i) if callable(ts) else ts) for i in range(start, start + n)]


def canonical(row: dict[str, Any]) -> dict[str, Any]:
    """A register row under canonical names and codes, its time with the +08:00 offset (for CSV drops)."""
    out = {LOCAL_COLUMNS[k]: v for k, v in row.items()}
    out["status"] = {v: k for k, v in STATUS_CODES.items()}[row["ryzt"]]
    out["updated_at"] = row["gxsj"].replace(" ", "T") + "+08:00"
    return out


def csv_text(rows: list[dict[str, Any]]) -> str:
    """CSV of register rows under canonical names; the address last and quoted (it may hold commas)."""
    columns = [c for c in LOCAL_COLUMNS.values() if c != "household_address"] + ["household_address"]
    lines = [",".join(columns)]
    for row in rows:
        values = canonical(row)
        cells = ["" if values[c] is None else str(values[c]) for c in columns]
        cells[-1] = '"' + cells[-1].replace('"', '""') + '"'
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


class Register:
    """A county's local SQLite system (table ``czrk`` with local column names)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path)
        db.execute(CZRK_DDL)
        db.close()

    def _write(self, sql: str, params: list[tuple[Any, ...]]) -> int:
        db = sqlite3.connect(self.path)
        try:
            with db:  # one transaction
                return db.executemany(sql, params).rowcount
        finally:
            db.close()

    def put(self, rows: list[dict[str, Any]]) -> None:
        """Insert or replace rows."""
        cols = list(LOCAL_COLUMNS)
        sql = f"insert or replace into czrk ({', '.join(cols)}) values ({', '.join('?' for _ in cols)})"
        self._write(sql, [tuple(r.get(c) for c in cols) for r in rows])

    def update(self, key: str, **values: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in values)
        assert self._write(f"update czrk set {sets} where sfzh = ?", [(*values.values(), key)]) == 1, key

    def rows(self) -> list[dict[str, Any]]:
        db = sqlite3.connect(self.path)
        db.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in db.execute("select * from czrk order by gxsj, sfzh")]
        finally:
            db.close()

    def key_set(self) -> set[str]:
        return {r["sfzh"] for r in self.rows()}


def _flow(entry: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in entry.items() if v is not None}, ensure_ascii=False)


@dataclass
class World:
    """A small exchange under ``root``, initialized (libraries, keys, trust list)."""

    root: Path
    ex: Exchange
    registers: dict[str, Register] = field(default_factory=dict)
    drops: dict[str, Path] = field(default_factory=dict)
    libs: engine.Libraries = field(init=False)

    def __post_init__(self) -> None:
        self.libs = engine.Libraries(self.ex)
        _OPEN.append(self.libs)

    def edge(self, source: str, target: str, dataset: str = "population") -> str:
        return f"{dataset}.{source}.{target}"

    def system_edge(self, county: str) -> str:
        return self.edge(f"gongan-{county}", county)

    def lib(self, node: str) -> Library:
        return self.libs.get(node)

    def sync(self, edge_id: str, **kw: Any) -> dict[str, Any]:
        return engine.sync_edge(self.ex, edge_id, libs=self.libs, **kw)

    def sync_all(self) -> dict[str, dict[str, Any]]:
        """Every edge once, sources before their targets (the config's edge order)."""
        return {e.id: self.sync(e.id) for e in self.ex.edges}

    def reload(self) -> Exchange:
        self.ex = load_exchange(self.root / "exchange.yaml")
        self.libs.dispose()
        self.libs = engine.Libraries(self.ex)
        _OPEN.append(self.libs)
        return self.ex


def write_exchange(
    root: Path,
    *,
    counties: dict[str, str],
    libraries: dict[str, dict[str, str]] | None = None,
    systems: list[dict[str, Any]] | None = None,
    batch_size: int = 1000,
    lookback: str = "10m",
) -> Path:
    """exchange.yaml for the counties (code -> province) with SQLite libraries unless overridden."""
    libraries = libraries or {}
    nodes = [(NATIONAL, "national", None)]
    nodes += [(p, "province", NATIONAL) for p in dict.fromkeys(counties.values())]
    nodes += [(c, "county", p) for c, p in counties.items()]
    lines = [
        "version: 1",
        "spool: spool",
        f"defaults: {{batch_size: {batch_size}, lookback: {lookback}, retries: 0}}",
        "nodes:",
    ]
    for code, level, parent in nodes:
        where = libraries.get(code) or {"library": f"sqlite:///libraries/{code}.sqlite"}
        entry = {"code": code, "name": NAMES.get(code, code), "level": level, "parent": parent, **where}
        lines.append(f"  - {_flow(entry)}")
    lines.append("systems:")
    for entry in systems or []:
        lines.append(f"  - {_flow(entry)}")
    path = root / "exchange.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def sql_system(county: str, **over: Any) -> dict[str, Any]:
    """The county's register as a sql system entry (``url`` relative to the config's folder)."""
    return {
        "name": f"gongan-{county}",
        "node": county,
        "dataset": "population",
        "kind": "sql",
        "url": f"sqlite:///systems/{county}/czrk.sqlite",
        "table": "czrk",
        "cursor": "gxsj",
        "mapping": "gongan.mapping.yaml",
        **over,
    }


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    """Build a :class:`World`: ``make_world(counties={A: QINGHAI, ...}, drop=(A,), ...)``.

    Every county gets a SQLite register (``gongan-<county>``) unless left out of ``registers``;
    counties in ``drop`` also get a drop folder (``drop-<county>``, ``*.csv``, canonical columns).
    The worlds' libraries are disposed afterwards.
    """
    worlds: list[World] = []
    made = 0

    def build(
        counties: dict[str, str] | None = None,
        *,
        registers: tuple[str, ...] | None = None,
        drop: tuple[str, ...] = (),
        libraries: dict[str, dict[str, str]] | None = None,
        systems: list[dict[str, Any]] | None = None,
        batch_size: int = 1000,
        lookback: str = "10m",
        settle: str | None = "0s",
    ) -> World:
        nonlocal made
        made += 1
        root = tmp_path / f"world{made}"
        root.mkdir()
        counties = counties or {A: QINGHAI, B: QINGHAI}
        registers = tuple(counties) if registers is None else registers
        (root / "gongan.mapping.yaml").write_text(MAPPING_YAML, encoding="utf-8")
        entries = [sql_system(c) for c in registers]
        regs = {c: Register(root / "systems" / c / "czrk.sqlite") for c in registers}
        drops: dict[str, Path] = {}
        for county in drop:
            folder = root / "systems" / county / "drop"
            folder.mkdir(parents=True)
            drops[county] = folder
            entries.append(
                {
                    "name": f"drop-{county}",
                    "node": county,
                    "dataset": "population",
                    "kind": "files",
                    "folder": f"systems/{county}/drop",
                    "pattern": "*.csv",
                    # Files the test writes are complete; None keeps the default (60 s).
                    "settle": settle,
                }
            )
        entries += systems or []
        path = write_exchange(
            root,
            counties=counties,
            libraries=libraries,
            systems=entries,
            batch_size=batch_size,
            lookback=lookback,
        )
        ex = load_exchange(path)
        initialize(ex)
        world = World(root, ex, regs, drops)
        worlds.append(world)
        return world

    yield build
    for world in worlds:
        world.libs.dispose()


def _server_url(env: str, label: str) -> str:
    url = os.environ.get(env, "").strip()
    if not url:
        pytest.skip(f"set {env} to run against {label}")
    return url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    base = _server_url(PG_ENV, "PostgreSQL")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(base, poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f"create schema {schema}"))
    url = sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        for libs in _OPEN:
            for lib in libs.opened():
                if schema in lib.url:
                    lib.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f"drop schema if exists {schema} cascade"))
        admin.dispose()


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """The MariaDB test database's URL (tables the test makes are its own to drop)."""
    yield _server_url(MYSQL_ENV, "MariaDB")


@pytest.fixture(scope="session")
def h() -> Any:
    """This module: the helpers and codes above (``h.A``, ``h.people(...)``), whatever the import mode."""
    return sys.modules[__name__]
