"""Benchmark: a whole sync, SQLite local system -> county library (SPEC section 11).

The measured edge is ``population.<system>.<county>``: a county's 公安 local system (SQLite table
``czrk``, the demo's pinyin columns and mapping, ``gxsj`` indexed) into the county's library, end to end
through :func:`tongban.core.engine.sync_edge` (read, map, validate, hash, Merkle, sign, verify, upsert,
cursor). Each figure is printed beside its baseline from the same run, on the same rows (the rows the
engine accepted, taken from its own validated Arrow output):

- PostgreSQL library: a raw ``COPY ... FROM STDIN (FORMAT csv)`` of the rows (meta columns with
  constant values) into the same ``population`` table (timed: CSV rendering by pyarrow + COPY +
  commit); and dlt (pyarrow table in, ``write_disposition="merge"``, primary key ``id_number``) into a
  fresh dataset, with dlt's own choice of loader file format (csv, i.e. COPY, for Arrow input in dlt
  1.31; ``--dlt-format insert_values`` for its documented PostgreSQL default);
- SQLite library: a raw ``executemany`` of the same rows into the same table (timed: tuples built from
  Arrow, executemany, commit), and dlt's ``sqlalchemy`` destination (merge) when it works;
- the no-change rerun, beside the bare lookback-window query on the source;
- peak resident memory (VmHWM) of a sync in a child process at each of ``--memory-rows`` (default
  1,000,000 and 10,000,000 rows, each its own source), beside the same child without the sync, with
  memory per row and the growth from the smallest to the largest count.

With ``--repeat K`` the load figures run in K rounds, each a Tongban sync into PostgreSQL, the raw COPY,
a Tongban sync into SQLite and the raw executemany, one after another (a machine whose load changes
during the bench slows a figure and its baseline alike); each figure is the best of its K runs, and
every round's pair is printed. Every Tongban run loads into a fresh target (new PostgreSQL schema / new SQLite file, schema migrated
before the clock starts); the baselines load into the same, freshly migrated, empty table (the same
indexes: a cheaper table design counts for both). The first Tongban run of each target is also broken
down by thread of the overlapped run (reader, checker, loader: their busy times overlap) and by
function inside them (thin timing wrappers around the very run that is timed).

Run: ``.venv/bin/python bench/sync.py [--rows N] [--postgres URL] [--repeat K] [--skip-dlt]
[--batch N] [--memory-rows 1000000,10000000]`` (about 20 minutes at the defaults on 2 cores, most of
it the 10,000,000-row source and sync; ``--memory-rows ""`` leaves the memory figures out). PostgreSQL defaults to
``$TONGBAN_BENCH_POSTGRES_URL`` or ``postgresql+psycopg://postgres@127.0.0.1:5432/test``; when it cannot
be reached only the SQLite part runs. ``--memory-only`` measures the memory figures alone.
"""

from __future__ import annotations

import abc
import argparse
import base64
import contextlib
import datetime as dt
import functools
import io
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa

import schemas
from connectors.mapping import Mapping
from schemas.validate import Validator
from tongban.core import engine
from tongban.core.config import Exchange, load_exchange
from tongban.core.engine import arrowio, extraction, loading, pipeline, sealing, spool, validation
from tongban.core.initialize import initialize, root_public_key
from tongban.core.store import META_COLUMNS, SEQ, Library, sealed
from tongban.core.trust import KeyStore, TrustList
from tongban.demo.generate import LAYOUTS, local_rows, population_table, write_mapping

NATIONAL, PROVINCE, COUNTY = "000000", "630000", "630104"
SYSTEM = f"{COUNTY}-gongan"
EDGE = f"population.{SYSTEM}.{COUNTY}"
LIB_ENV = "TONGBAN_BENCH_LIB_COUNTY"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
GEN_CHUNK = 1_000_000  # rows generated at a time (bounds the setup's memory at 10M rows)
WRITE_CHUNK = 100_000  # rows converted to local text and inserted at a time
DEFECT_RATE = 0.001

MiB = 2**20


# -- setup ----------------------------------------------------------------------------------------------


def make_source(base: Path, rows: int) -> Path:
    """The county's 公安 system: ``systems/<county>/gongan.sqlite`` (table czrk) and its mapping YAML.

    Rows come from :func:`tongban.demo.generate.population_table` (0.1% planted defects) and are written in
    the demo's local layout (pinyin columns, local status codes, naive Beijing times). Like a real
    system's change-tracking column, ``gxsj`` is indexed (with the key, in the order the engine reads).
    """
    folder = base / "systems" / COUNTY
    folder.mkdir(parents=True, exist_ok=True)
    layout = LAYOUTS["gongan"]
    columns = list(layout.columns)
    path = folder / "gongan.sqlite"
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute(f"CREATE TABLE czrk ({', '.join(f'{c} TEXT' for c in columns)})")
        insert = f"INSERT INTO czrk VALUES ({', '.join('?' * len(columns))})"
        seen = np.empty(0, dtype=np.int64)  # ID bodies of earlier chunks (chunks are drawn independently)
        written, seed = 0, 2026
        while written < rows:
            table = population_table(min(GEN_CHUNK, rows - written), seed=seed, defect_rate=DEFECT_RATE)
            seed += 1
            if written:  # drop people an earlier chunk already drew: only the planted duplicates stay
                body = pc.utf8_slice_codeunits(table.column("id_number"), 0, 17)
                keys = pc.cast(body, pa.int64()).to_numpy()
                table = table.filter(pa.array(~np.isin(keys, seen)))
            if rows > GEN_CHUNK:
                body = pc.utf8_slice_codeunits(table.column("id_number"), 0, 17)
                seen = np.union1d(seen, pc.cast(body, pa.int64()).to_numpy())
            for lo in range(0, table.num_rows, WRITE_CHUNK):
                con.executemany(insert, local_rows(table.slice(lo, WRITE_CHUNK), layout, {}, 0))
            written += table.num_rows
            del table
        con.execute("CREATE INDEX ix_czrk_gxsj ON czrk (gxsj, sfzh)")
        con.commit()
    finally:
        con.close()
    write_mapping(folder / "gongan.mapping.yaml", "population", layout, "czrk")
    return path


def write_exchange(base: Path, batch: int | None = None) -> Path:
    path = base / "exchange.yaml"
    batch_size = f"batch_size: {batch}, " if batch else ""  # else the exchange's default
    path.write_text(
        "\n".join(
            [
                "version: 1",
                "spool: spool",
                'trust: {root: "000000", list: keys/trust.json, keys: keys}',
                f'defaults: {{{batch_size}lookback: 10m, schedule: "@hourly", retries: 2}}',
                "nodes:",
                f'  - {{code: "{NATIONAL}", name: 国家库, level: national, '
                f'library: "sqlite:///libraries/{NATIONAL}.sqlite"}}',
                f'  - {{code: "{PROVINCE}", name: 青海省, level: province, parent: "{NATIONAL}", '
                f'library: "sqlite:///libraries/{PROVINCE}.sqlite"}}',
                f'  - {{code: "{COUNTY}", name: 城西区, level: county, parent: "{PROVINCE}", '
                f"library_env: {LIB_ENV}}}",
                "systems:",
                f'  - {{name: {SYSTEM}, node: "{COUNTY}", dataset: population, kind: sql, '
                f'url: "sqlite:///systems/{COUNTY}/gongan.sqlite", table: czrk, cursor: gxsj, '
                f"mapping: systems/{COUNTY}/gongan.mapping.yaml}}",
                "offices: []",
                "",
            ]
        ),
        encoding="utf-8",
    )
    return path


# -- targets ----------------------------------------------------------------------------------------------


class Target(abc.ABC):
    """Fresh county libraries of one kind, one per run; each is named through ``$TONGBAN_BENCH_LIB_COUNTY``."""

    kind = ""

    def __init__(self) -> None:
        self.made: list[str] = []
        self.root_key: str | None = None  # pinned in each fresh library, as `tongban init` does

    @abc.abstractmethod
    def _new_url(self) -> str:
        """A fresh, empty library URL of this kind."""

    def fresh(self) -> str:
        """A new, migrated, empty library; its URL is set in the environment for the exchange."""
        url = self._new_url()
        os.environ[LIB_ENV] = url
        lib = Library(url, COUNTY)
        try:
            lib.migrate()
            if self.root_key:  # as `tongban init` does: the library trusts lists from this root only
                lib.pin_root(self.root_key)
        finally:
            lib.dispose()
        self.made.append(url)
        return url

    @abc.abstractmethod
    def forget(self, url: str) -> None:
        """Drop a library made by :meth:`fresh` (each sync opens and disposes its own connections)."""

    def cleanup(self) -> None:
        for url in self.made:
            self.forget(url)


class SqliteTarget(Target):
    kind = "sqlite"

    def __init__(self, base: Path) -> None:
        super().__init__()
        self.folder = base / "libraries"
        self.folder.mkdir(parents=True, exist_ok=True)

    def _new_url(self) -> str:
        return f"sqlite:///{self.folder / f'{COUNTY}-{len(self.made) + 1}.sqlite'}"

    def path(self, url: str) -> Path:
        return Path(sa.make_url(url).database or "")

    def forget(self, url: str) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path(url)}{suffix}").unlink(missing_ok=True)


class PostgresTarget(Target):
    kind = "postgresql"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.base = sa.make_url(url)
        self.admin = sa.create_engine(self.base, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
        self.tag = f"tb_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.schemas: list[str] = []

    def reachable(self) -> str | None:
        try:
            with self.admin.connect() as c:
                c.exec_driver_sql("SELECT 1")
        except Exception as exc:
            return str(getattr(exc, "orig", exc)).splitlines()[0][:200]
        return None

    def schema(self, name: str) -> None:
        with self.admin.connect() as c:
            c.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            c.exec_driver_sql(f'CREATE SCHEMA "{name}"')
        self.schemas.append(name)

    def _new_url(self) -> str:
        name = f"{self.tag}_{len(self.made) + 1}"
        self.schema(name)
        return self.base.update_query_dict({"options": f"-csearch_path={name}"}).render_as_string(
            hide_password=False
        )

    def drop(self, *names: str) -> None:
        with self.admin.connect() as c:
            for name in names:
                c.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')

    def forget(self, url: str) -> None:
        self.drop(sa.make_url(url).query["options"].split("=", 1)[1])

    def cleanup(self) -> None:
        super().cleanup()
        self.drop(*self.schemas)
        self.admin.dispose()

    def dlt_credentials(self) -> str:
        # dlt insists on a password; with trust authentication (the default test server) it is ignored.
        url = self.base.set(drivername="postgresql")
        if not url.password:
            url = url.set(password="unused")
        return url.render_as_string(hide_password=False)


# -- the timed Tongban runs -----------------------------------------------------------------------------


@dataclass
class Timings:
    """Seconds spent per engine step and inside a few named functions of each step."""

    steps: dict[str, float] = field(default_factory=dict)
    inner: dict[str, float] = field(default_factory=dict)
    statements: dict[str, list[float]] = field(default_factory=dict)  # load step: label -> [seconds, count]
    order: list[str] = field(default_factory=list)  # labels of ``inner``, in the order to print them
    current: str = ""


def statement_label(sql: str) -> str:
    """What a SQL statement of the load step does (the steps of ``Library._apply`` and the bookkeeping)."""
    text = " ".join(sql.split())
    head = text[:40].upper()
    if head.startswith("CREATE TEMPORARY") or head.startswith("DROP TABLE"):
        return "staging table create/drop"
    if "_stored_owner" in text:
        return "1. owner conflicts (stage JOIN records)"
    if head.startswith("DELETE FROM _STAGE") and "_hash" in text:
        return "2. delete unchanged rows (EXISTS on _hash)"
    if head.startswith("DELETE FROM _STAGE"):
        return "3. delete stale rows from stage"
    if "_HISTORY" in head and "CASE" in text.upper():
        return "4. replaced versions to history (JOIN)"
    if "_HISTORY" in head:
        return "3. stale rows to history (stage JOIN records)"
    if "count(*)" in text.lower() and "_stage" in text:
        return "5. count staged rows"
    if "ON CONFLICT" in text.upper() and "_stage" in text:
        return "5. upsert INSERT...SELECT...ON CONFLICT"
    if head.startswith("INSERT INTO _STAGE"):
        return "staging executemany (SQLite)"
    return "other (ledger, state, checks, BEGIN/COMMIT)"


#: What each thread of an overlapped run does (the calling thread verifies and loads).
THREADS = {"tongban-read": "read", "tongban-check": "validate + seal", "MainThread": "load"}


def thread_step() -> str:
    return THREADS.get(threading.current_thread().name, threading.current_thread().name)


@contextlib.contextmanager
def instrumented(timings: Timings, keep_valid: list[pa.Table] | None) -> Iterator[None]:
    """Time the very run sync_edge makes: the busy time of each of its threads (reader, checker,
    loader; they overlap, so they add up to more than the run) and a few functions inside them.

    Wrappers go around module attributes the engine looks up at call time; the overhead is a few
    ``perf_counter`` calls per batch. With ``keep_valid`` the run keeps its validated Arrow file long
    enough to read it (the baselines' rows), then deletes it as the engine would.
    """
    patches: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, wrapper: Callable[[Any], Any]) -> None:
        original = getattr(owner, name, None)
        if original is None:  # renamed in the engine: that line of the breakdown is left out
            return
        patches.append((owner, name, original))
        setattr(owner, name, wrapper(original))

    def add(key: str, seconds: float) -> None:
        with lock:
            timings.inner[key] = timings.inner.get(key, 0.0) + seconds

    lock = threading.Lock()

    def finishing(fn: Any) -> Any:
        @functools.wraps(fn)
        def run(plan: Any, run_dir: Path, *args: Any, **kwargs: Any) -> Any:
            if keep_valid is None:
                return fn(plan, run_dir, *args, **kwargs)
            out = fn(plan, run_dir, *args, **{**kwargs, "keep_files": True})
            for part in sorted(run_dir.glob("valid-*.arrow")):
                with pa.memory_map(str(part)) as src:
                    keep_valid.append(pa.ipc.open_file(src).read_all())
            spool.finish(run_dir)
            return out

        return run

    def inner(label: str) -> Callable[[Any], Any]:
        timings.order.append(label)

        def wrap(fn: Any) -> Any:
            @functools.wraps(fn)
            def run(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    add(f"{thread_step()}: {label}", time.perf_counter() - start)

            return run

        return wrap

    def inner_iter(label: str) -> Callable[[Any], Any]:
        """Time spent inside a generator (the source read), not in its consumer."""
        timings.order.append(label)

        def wrap(fn: Any) -> Any:
            @functools.wraps(fn)
            def run(*args: Any, **kwargs: Any) -> Iterator[Any]:
                it = iter(fn(*args, **kwargs))
                while True:
                    start = time.perf_counter()
                    try:
                        item = next(it)
                    except StopIteration:
                        add(f"{thread_step()}: {label}", time.perf_counter() - start)
                        return
                    add(f"{thread_step()}: {label}", time.perf_counter() - start)
                    yield item

            return run

        return wrap

    def busy(fn: Any) -> Any:  # each thread's whole busy time (its work function)
        @functools.wraps(fn)
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(self, *args, **kwargs)
            finally:
                with lock:
                    name = thread_step()
                    timings.steps[name] = timings.steps.get(name, 0.0) + time.perf_counter() - start

        return run

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        started = conn.info["bench_started"].pop()
        if thread_step() == "load":
            with lock:
                entry = timings.statements.setdefault(statement_label(statement), [0.0, 0])
                entry[0] += time.perf_counter() - started
                entry[1] += 1

    sa.event.listen(sa.Engine, "before_cursor_execute", before)
    sa.event.listen(sa.Engine, "after_cursor_execute", after)
    patch(pipeline, "finish_run", finishing)
    patch(pipeline._Stage, "_run", busy)
    patch(extraction, "read_sql_incremental", inner_iter("read source (SQLite: ADBC straight to Arrow)"))
    patch(extraction, "raw_columns", inner("columns as binary (raw_columns)"))
    patch(arrowio.PartWriter, "write", inner("write extract-NNNN.arrow"))
    patch(Mapping, "apply", inner("mapping.apply"))
    patch(Validator, "validate", inner("Validator.validate"))
    patch(validation, "_payloads", inner("reject payloads"))
    patch(sealing, "row_hashes", inner("row_hashes (leaf SHA-256)"))
    patch(sealing, "merkle_root", inner("merkle_root"))
    patch(sealing, "seal_manifest", inner("sign manifest"))
    patch(loading, "verify", inner("verify manifest + root"))
    patch(loading, "_with_meta", inner("_with_meta"))
    patch(pipeline, "apply_batch", inner("apply_batch (verify + load, one transaction)"))
    patch(Library, "load_batch", inner("Library.load_batch (one transaction)"))
    patch(Library, "_apply", inner("  set-based apply (incl. staging)"))
    patch(Library, "_stage", inner("    staging (COPY / executemany)"))
    try:
        yield
    finally:
        for owner, name, original in reversed(patches):
            setattr(owner, name, original)
        sa.event.remove(sa.Engine, "before_cursor_execute", before)
        sa.event.remove(sa.Engine, "after_cursor_execute", after)


@dataclass
class SyncFigures:
    first: float = float("inf")
    rerun: float = float("inf")
    summary: dict[str, Any] = field(default_factory=dict)
    rerun_summary: dict[str, Any] = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)

    def take(self, other: SyncFigures) -> float:
        """Keep the better of this and ``other`` (each figure its own best); returns ``other``'s first load."""
        if other.first < self.first:
            self.first, self.summary, self.timings = other.first, other.summary, other.timings
        if other.rerun < self.rerun:
            self.rerun, self.rerun_summary = other.rerun, other.rerun_summary
        return other.first


def tongban_runs(ex: Exchange, target: Target, repeat: int, keep_valid: list[pa.Table] | None) -> SyncFigures:
    """Best of ``repeat`` first full loads (each into a fresh library) and no-change reruns."""
    out = SyncFigures()
    for i in range(repeat):
        url = target.fresh()
        timings = Timings()
        with instrumented(timings, keep_valid if i == 0 else None):
            start = time.perf_counter()
            summary = engine.sync_edge(ex, EDGE)
            first = time.perf_counter() - start
        start = time.perf_counter()
        rerun_summary = engine.sync_edge(ex, EDGE)
        rerun = time.perf_counter() - start
        if first < out.first:
            out.first, out.summary, out.timings = first, summary, timings
        if rerun < out.rerun:
            out.rerun, out.rerun_summary = rerun, rerun_summary
        target.forget(url)
        keep_valid = None
    return out


# -- baselines ----------------------------------------------------------------------------------------------


def baseline_rows(valid: list[pa.Table]) -> pa.Table:
    """The validated rows as the records table holds them; the meta columns get constant values."""
    table = pa.concat_tables(valid).combine_chunks()
    n = table.num_rows
    names = schemas.get("population").names
    now = pa.scalar(int(time.time() * 1e6), pa.timestamp("us", tz="UTC"))
    meta = {
        "_owner": table.column("_owner"),
        "_hash": pa.repeat(pa.scalar("0" * 64), n),
        "_batch": pa.repeat(pa.scalar("f" * 64), n),
        "_leaf": pa.array(np.arange(n, dtype=np.int32)),
        "_source": pa.repeat(pa.scalar(SYSTEM), n),
        "_flags": table.column("_flags"),
        "_synced_at": pa.repeat(now, n),
        SEQ: pa.repeat(pa.scalar(1, pa.int64()), n),  # one load: one load sequence number
    }
    assert list(meta) == [*META_COLUMNS, SEQ]
    return pa.table({**{c: table.column(c) for c in names}, **meta})


def copy_baseline(target: PostgresTarget, rows: pa.Table, repeat: int) -> float:
    """Raw COPY (CSV rendered by pyarrow) into the same, truncated table; best of ``repeat``."""
    url = target.fresh()
    lib = Library(url, COUNTY)
    cols = ", ".join(f'"{c}"' for c in rows.column_names)
    best = float("inf")
    try:
        for _ in range(repeat):
            with lib.engine.begin() as conn:
                conn.exec_driver_sql("TRUNCATE population")
            with lib.engine.connect() as conn:
                raw = conn.connection.driver_connection
                assert raw is not None
                start = time.perf_counter()
                buf = io.BytesIO()
                pacsv.write_csv(rows, buf, pacsv.WriteOptions(include_header=False, batch_size=65_536))
                view = buf.getbuffer()
                with raw.cursor() as cur, cur.copy(f"COPY population ({cols}) FROM STDIN (FORMAT csv)") as cp:
                    for lo in range(0, len(view), MiB):
                        cp.write(view[lo : lo + MiB])
                raw.commit()
                best = min(best, time.perf_counter() - start)
                del view
            with lib.engine.connect() as conn:
                loaded = conn.exec_driver_sql("SELECT count(*) FROM population").scalar_one()
                assert loaded == rows.num_rows, (loaded, rows.num_rows)
    finally:
        lib.dispose()
        target.forget(url)
    return best


def sqlite_tuples(rows: pa.Table) -> Iterator[tuple[Any, ...]]:
    """Rows as tuples in the library's physical SQLite form (dates and times as ISO text)."""
    cols = []
    for col in rows.columns:
        if pa.types.is_timestamp(col.type):
            col = pc.strftime(col, format="%Y-%m-%d %H:%M:%S")  # a µs timestamp prints SS.ffffff
        elif pa.types.is_date(col.type):
            col = pc.cast(col, pa.string())
        cols.append(col.to_pylist())
    return zip(*cols, strict=True)


def executemany_baseline(target: SqliteTarget, rows: pa.Table, repeat: int) -> float:
    """Raw sqlite3 executemany (tuples built from Arrow) + commit into the same table; best of ``repeat``."""
    best = float("inf")
    names = rows.column_names
    sql = f"INSERT INTO population ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    for _ in range(repeat):
        url = target.fresh()  # a new file: the same empty table the Tongban run started from
        con = sqlite3.connect(target.path(url), isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")  # the library's own settings
            con.execute("PRAGMA synchronous=NORMAL")
            start = time.perf_counter()
            con.execute("BEGIN")
            con.executemany(sql, sqlite_tuples(rows))
            con.execute("COMMIT")
            best = min(best, time.perf_counter() - start)
            loaded = con.execute("SELECT count(*) FROM population").fetchone()[0]
            assert loaded == rows.num_rows, (loaded, rows.num_rows)
        finally:
            con.close()
            target.forget(url)
    return best


def dlt_baseline(
    base: Path, destination: Callable[[int], Any], dataset: Callable[[int], str], rows: pa.Table, repeat: int,
    name: str, file_format: str | None,
) -> tuple[float, str]:  # fmt: skip
    """dlt: the pyarrow table in, merge on id_number, into a fresh dataset each time; best of ``repeat``.

    Returns the best time and the loader file format dlt used.
    """
    import dlt

    best, used = float("inf"), "?"
    for i in range(repeat):
        pipeline = dlt.pipeline(
            pipeline_name=f"{name}_{i}",
            destination=destination(i),
            dataset_name=dataset(i),
            pipelines_dir=str(base / "dlt"),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # dlt's own SQLAlchemy deprecation warnings
            start = time.perf_counter()
            info = pipeline.run(
                rows,
                table_name="population",
                write_disposition="merge",
                primary_key="id_number",
                loader_file_format=file_format,  # type: ignore[arg-type]
            )
            best = min(best, time.perf_counter() - start)
        if info.has_failed_jobs:
            raise RuntimeError(f"dlt {name}: failed jobs")
        formats = {
            job.job_file_info.file_format
            for package in info.load_packages
            for jobs in package.jobs.values()
            for job in jobs
            if job.job_file_info.table_name == "population"
        }
        used = ",".join(sorted(formats)) or "?"
    return best, used


def source_window_query(source: Path, lookback: int) -> float:
    """The bare incremental query a no-change rerun must make: rows in the lookback window, by sqlite3."""
    con = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        last = con.execute("SELECT max(gxsj) FROM czrk").fetchone()[0]
        since = (dt.datetime.fromisoformat(last) - dt.timedelta(seconds=lookback)).strftime(
            "%Y-%m-%d %H:%M:%S"
        )
        start = time.perf_counter()
        con.execute("SELECT * FROM czrk WHERE gxsj >= ? ORDER BY gxsj, sfzh", (since,)).fetchall()
        return time.perf_counter() - start
    finally:
        con.close()


# -- peak memory in a child process ---------------------------------------------------------------------------

# Peak RSS is read from /proc/self/status (VmHWM: this process's own high-water mark). getrusage's
# ru_maxrss is no good here: Linux carries it over exec, so a child spawned by a big parent reports the
# parent's peak (a child that only imports showed the parent's 820 MiB).
_CHILD = """
import json, resource, sys, threading, time
from tongban.core import engine
from tongban.core.config import load_exchange

config, county, edge, mode = sys.argv[1:5]


def status():
    try:
        with open("/proc/self/status") as fh:
            pairs = (line.split(":", 1) for line in fh)
            return {k: int(v.split()[0]) for k, v in pairs if k.startswith(("Vm", "Rss"))}
    except OSError:
        return {}


def reset_peak():  # VmHWM back to the current RSS (Linux >= 4.0), so each step gets its own peak
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


overall = {"hwm": 0, "RssAnon": 0, "RssFile": 0}
current = {"RssAnon": 0, "RssFile": 0}
steps = {}
done = threading.Event()


def sample():  # how much of a peak is anonymous memory and how much mapped files (the spool's Arrow parts)
    while not done.wait(0.05):
        now = status()
        for k in current:
            current[k] = max(current[k], now.get(k, 0))
            overall[k] = max(overall[k], now.get(k, 0))


def step(name, fn):
    def run(*args, **kwargs):
        global current
        overall["hwm"] = max(overall["hwm"], status().get("VmHWM", 0))
        cleared = reset_peak()
        current = {"RssAnon": 0, "RssFile": 0}
        try:
            return fn(*args, **kwargs)
        finally:
            hwm = status().get("VmHWM", 0)
            overall["hwm"] = max(overall["hwm"], hwm)
            steps[name] = {"hwm_kib": hwm if cleared else None, "anon_kib": current["RssAnon"],
                           "file_kib": current["RssFile"]}
    return run


from tongban.core.engine import runs as run_steps
for name in ("extract", "validate", "seal", "load"):
    setattr(run_steps, name, step(name, getattr(run_steps, name)))
ex = load_exchange(config)
with engine.Libraries(ex) as libs:
    libs.get(county).migrate()
threading.Thread(target=sample, daemon=True).start()
start = time.perf_counter()
summary = engine.sync_edge(ex, edge) if mode == "sync" else {}
seconds = time.perf_counter() - start
done.set()
hwm = max(overall["hwm"], status().get("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
print(json.dumps({"maxrss_kib": hwm, "anon_kib": overall["RssAnon"], "file_kib": overall["RssFile"],
                  "seconds": seconds, "rows": summary.get("rows", 0), "steps": steps}))
"""


def child_rss(config: Path, target: Target, mode: str) -> dict[str, Any]:
    """Peak RSS (MiB) of a child process that syncs the edge into a fresh library (or only starts up)."""
    url = target.fresh()
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(config), COUNTY, EDGE, mode],
            env=dict(os.environ, **{LIB_ENV: url}),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            raise RuntimeError(f"child sync failed:\n{done.stderr[-2000:]}")
        out = json.loads(done.stdout.strip().splitlines()[-1])
        out["mib"] = out["maxrss_kib"] / 1024
        out["anon_mib"], out["file_mib"] = out["anon_kib"] / 1024, out["file_kib"] / 1024
        return out
    finally:
        target.forget(url)


# -- report ---------------------------------------------------------------------------------------------------


def rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f}/s" if seconds and seconds != float("inf") else "-"


def secs(seconds: float | None) -> str:
    return "-" if seconds is None or seconds == float("inf") else f"{seconds:.2f} s"


def print_breakdown(title: str, t: Timings, total: float, rows: int) -> None:
    print(f"\n{title}: {secs(total)} in all (wall clock), {rate(rows, total)}; busy time per thread:")
    for name in ("read", "validate + seal", "load"):
        s = t.steps.get(name)
        if name == "load":  # the calling thread: its batches' verify + load (the rest is waiting)
            s = t.inner.get("load: apply_batch (verify + load, one transaction)")
        label = f"{name} thread" + (" (the calling thread)" if name == "load" else "")
        print(f"  {label:<52}{s or 0.0:>8.2f} s {100 * (s or 0.0) / total:>5.1f}%")
        for item in t.order:
            v = t.inner.get(f"{name}: {item}")
            if v is not None:
                print(f"    {item:<50}{v:>8.2f} s {100 * v / total:>5.1f}%")
    print("  SQL statements of the load (time in the driver; COPY / raw executemany staging not included):")
    for label, (seconds, count) in sorted(t.statements.items(), key=lambda kv: -kv[1][0]):
        print(f"    {label:<50}{seconds:>8.2f} s {100 * seconds / total:>5.1f}%  x{count}")


def memory_note(run: dict[str, Any]) -> str:
    lines = [
        f"peak RSS split (sampled every 50 ms): anonymous memory {run['anon_mib']:,.0f} MiB, mapped files "
        f"{run['file_mib']:,.0f} MiB (the spool's memory-mapped Arrow parts and shared libraries)"
        + ("; by step:" if run.get("steps") else "")
    ]
    for name, st in run.get("steps", {}).items():
        hwm = "?" if st["hwm_kib"] is None else f"{st['hwm_kib'] / 1024:,.0f}"
        lines.append(
            f"  {name:<9} peak {hwm:>6} MiB  (anonymous {st['anon_kib'] / 1024:>6,.0f}, "
            f"mapped files {st['file_kib'] / 1024:>6,.0f})"
        )
    return "\n".join(lines)


def memory_config(base: Path, count: int, batch: int | None, main_rows: int) -> Path:
    """An exchange whose county system holds ``count`` rows (the keys of the main run's exchange)."""
    if count == main_rows:
        return base / "exchange.yaml"
    folder = base / f"memory-{count}"
    if not (folder / "exchange.yaml").exists():
        shutil.rmtree(folder, ignore_errors=True)
        make_source(folder, count)
        shutil.copytree(base / "keys", folder / "keys")
        write_exchange(folder, batch)
    return folder / "exchange.yaml"


def print_memory(
    kind: str, idle: dict[str, Any], peaks: list[tuple[int, dict[str, Any]]], *, table: bool = True
) -> None:
    """Peak RSS per row count, memory per row, and where each peak sits."""
    print(f"\npeak RSS of a sync in a child process ({kind} library); the same child without the sync: "
          f"{idle['mib']:,.0f} MiB")  # fmt: skip
    for count, peak in peaks:
        above = (peak["mib"] - idle["mib"]) * MiB
        if table:
            print(
                f"  {count:>12,} rows: peak {peak['mib']:,.0f} MiB (target < 1024 MiB: "
                f"{'met' if peak['mib'] < 1024 else 'NOT met'}), {peak['seconds']:.1f} s"
            )
        print(
            f"  {count:,} rows: {above / count:,.1f} B per row above the idle child; "
            + memory_note(peak).replace("\n", "\n  ")
        )
    if len(peaks) > 1:
        (lo_n, lo), (hi_n, hi) = peaks[0], peaks[-1]
        per_row = (hi["mib"] - lo["mib"]) * MiB / (hi_n - lo_n)
        print(
            f"  growth from {lo_n:,} to {hi_n:,} rows: {hi['mib'] - lo['mib']:+,.0f} MiB "
            f"({hi['mib'] / lo['mib'] - 1:+.1%}; {per_row:+.2f} B per added row); "
            f"target within 10 %: {'met' if hi['mib'] <= 1.1 * lo['mib'] else 'NOT met'}"
        )


def main() -> None:
    # The county's master key (encryption at rest) from the environment, as in production: every fresh
    # library of the run wraps its data keys with it.
    os.environ.setdefault(f"TONGBAN_MASTER_KEY_{COUNTY}", base64.b64encode(os.urandom(32)).decode())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("TONGBAN_BENCH_POSTGRES_URL") or DEFAULT_PG,
        help="PostgreSQL server for the PostgreSQL library (a fresh schema per run; dropped at the end)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="best of K runs per figure")
    parser.add_argument("--skip-dlt", action="store_true", help="leave out the dlt baselines")
    parser.add_argument(
        "--dlt-format",
        choices=("insert_values", "csv", "parquet"),
        help="dlt's loader file format (its default)",
    )
    parser.add_argument("--memory-only", action="store_true", help="only the peak-memory figures")
    parser.add_argument(
        "--memory-rows",
        default="1000000,10000000",
        help="row counts whose sync's peak RSS is measured (comma-separated; empty: none)",
    )
    parser.add_argument("--batch", type=int, help="rows per batch (default: the exchange's default)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
        f"pyarrow {pa.__version__}, sqlalchemy {sa.__version__}"
    )
    base = Path(tempfile.mkdtemp(prefix="tongban-bench-sync-"))
    targets: list[Target] = []
    try:
        start = time.perf_counter()
        source = make_source(base, args.rows)
        config = write_exchange(base, args.batch)
        ex = load_exchange(config)
        print(
            f"setup: {args.rows:,} population rows ({DEFECT_RATE:.1%} planted defects) in {source.name} "
            f"table czrk ({source.stat().st_size / MiB:,.0f} MiB), in {time.perf_counter() - start:.0f} s; "
            f"batch {ex.batch_size:,} rows, lookback {ex.lookback_seconds} s; best of {args.repeat}"
        )

        pg = PostgresTarget(args.postgres)
        problem = pg.reachable()
        if problem:
            print(f"PostgreSQL at {sa.make_url(args.postgres)!r} unreachable ({problem}): SQLite part only")
            pg.admin.dispose()
        else:
            targets.append(pg)
        lite = SqliteTarget(base)
        targets.append(lite)
        os.environ[LIB_ENV] = lite.fresh()  # initialize needs every library reachable
        initialize(ex)  # keys and the signed trust list
        lite.forget(os.environ[LIB_ENV])
        root_key = root_public_key(KeyStore(ex.keys_dir), TrustList.load(ex.trust_list))
        for target in targets:
            target.root_key = root_key
        mem_target: Target = targets[0]

        memory_rows = [int(x) for x in args.memory_rows.split(",") if x.strip()]

        def memory_figures() -> tuple[dict[str, Any], list[tuple[int, dict[str, Any]]]]:
            print(f"running: peak memory, child processes ({mem_target.kind} library) ...", flush=True)
            idle = child_rss(config, mem_target, "start")
            out = []
            for count in memory_rows:
                print(f"  {count:,} rows ...", flush=True)
                out.append(
                    (count, child_rss(memory_config(base, count, args.batch, args.rows), mem_target, "sync"))
                )
            return idle, out

        if args.memory_only:
            idle, peaks = memory_figures()
            print_memory(mem_target.kind, idle, peaks)
            return

        # Each figure against its baseline in turns: round i runs Tongban into PostgreSQL, raw COPY, Tongban
        # into SQLite and raw executemany one after another, so a machine whose load changes during the
        # bench slows a figure and its baseline alike; each figure is the best of its --repeat rounds.
        valid: list[pa.Table] = []
        pg_runs = None if problem else SyncFigures()
        lite_runs = SyncFigures()
        pairs: list[tuple[str, Target, SyncFigures, Callable[..., float], str]] = [
            *([("PostgreSQL", pg, pg_runs, copy_baseline, "raw COPY")] if pg_runs is not None else []),
            ("SQLite", lite, lite_runs, executemany_baseline, "raw executemany"),
        ]
        best: dict[str, float] = {}  # each baseline's best time
        rounds: list[str] = []
        rows: pa.Table | None = None
        for i in range(args.repeat):
            parts = []
            for label, target, figures, baseline, name in pairs:
                print(f"running: round {i + 1}, Tongban into {label} ...", flush=True)
                tb = figures.take(tongban_runs(ex, target, 1, valid if rows is None else None))
                rows = baseline_rows(valid) if rows is None else rows
                print(f"running: round {i + 1}, {name} ...", flush=True)
                b = baseline(target, rows, 1)
                best[name] = min(best.get(name, b), b)
                parts.append(f"{label} {tb:.2f} s vs {name} {b:.2f} s ({b / tb:.2f}x)")
            rounds.append(f"round {i + 1}: " + "; ".join(parts))
            print(rounds[-1], flush=True)
        copy_s, many_s = best.get("raw COPY"), best["raw executemany"]
        del valid
        assert rows is not None
        # The same syncs with encryption at rest switched off in this process (seal_table an identity): what
        # sealing the personal fields costs the whole sync.
        plain_pg = plain_lite = None
        real_seal = sealed.seal_table
        sealed.seal_table = lambda ring, dataset, rows: rows
        try:
            if pg_runs is not None:
                print("running: Tongban into PostgreSQL without encryption at rest ...", flush=True)
                plain_pg = tongban_runs(ex, pg, args.repeat, None)
            print("running: Tongban into SQLite without encryption at rest ...", flush=True)
            plain_lite = tongban_runs(ex, lite, args.repeat, None)
        finally:
            sealed.seal_table = real_seal
        n = rows.num_rows
        total = args.rows

        dlt_pg_s = dlt_lite_s = None
        dlt_note, dlt_pg_format, dlt_lite_format = "", "", ""
        if pg_runs is not None and not args.skip_dlt:
            print("running: dlt into PostgreSQL ...", flush=True)
            import dlt

            names = [f"{pg.tag}_dlt_{i}" for i in range(args.repeat)]
            pg.schemas += [x for name in names for x in (name, f"{name}_staging")]
            dlt_pg_s, dlt_pg_format = dlt_baseline(
                base, lambda i: dlt.destinations.postgres(credentials=pg.dlt_credentials()),
                lambda i: names[i], rows, args.repeat, "bench_pg", args.dlt_format,
            )  # fmt: skip
        if not args.skip_dlt:
            print("running: dlt into SQLite ...", flush=True)
            try:
                import dlt

                dlt_lite_s, dlt_lite_format = dlt_baseline(
                    base,
                    lambda i: dlt.destinations.sqlalchemy(
                        credentials=f"sqlite:///{base / f'dlt-{i}.sqlite'}"
                    ),
                    lambda i: "main",
                    rows,
                    args.repeat,
                    "bench_sqlite",
                    None,
                )
            except Exception as exc:  # the sqlalchemy destination is optional here
                dlt_note = f"dlt into SQLite skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        window_s = source_window_query(source, ex.lookback_seconds)
        idle, peaks = memory_figures()

        # -- the table
        print(
            f"\nrows: {total:,} in the source, {n:,} accepted and loaded "
            f"({lite_runs.summary.get('rejected', 0):,} rejected as failed transfers); Tongban rows/s count "
            "source rows, baselines loaded rows; ratio = baseline time / Tongban time (higher is better)\n"
        )
        table: list[list[str]] = [
            ["figure", "Tongban", "rows/s", "baseline", "rows/s", "ratio", "target", "met?"]
        ]

        def ratio_row(figure: str, tb: float, b: float | None, goal: float) -> None:
            if b is None:
                table.append([figure, secs(tb), rate(total, tb), "-", "-", "-", f">={goal:g}x", "-"])
                return
            r = b / tb
            table.append(
                [figure, secs(tb), rate(total, tb), secs(b), rate(n, b), f"{r:.2f}x", f">={goal:g}x",
                 "yes" if r >= goal else "NO"]
            )  # fmt: skip

        if pg_runs is not None:
            ratio_row("PostgreSQL: sync vs raw COPY (csv)", pg_runs.first, copy_s, 0.9)
            if not args.skip_dlt:
                ratio_row(
                    f"PostgreSQL: sync vs dlt (arrow, merge, {dlt_pg_format})", pg_runs.first, dlt_pg_s, 1.0
                )
        ratio_row("SQLite: sync vs raw executemany", lite_runs.first, many_s, 0.8)
        if not args.skip_dlt:
            ratio_row(
                f"SQLite: sync vs dlt sqlalchemy (merge, {dlt_lite_format or 'skipped'})",
                lite_runs.first, dlt_lite_s, 1.0,
            )  # fmt: skip
        for label, runs, plain in (("PostgreSQL", pg_runs, plain_pg), ("SQLite", lite_runs, plain_lite)):
            if runs is not None and plain is not None:
                table.append(
                    [f"{label}: sync vs the same sync without encryption at rest", secs(runs.first),
                     rate(total, runs.first), secs(plain.first), rate(total, plain.first),
                     f"{plain.first / runs.first:.2f}x", "-", "-"]
                )  # fmt: skip
        for label, runs in (("PostgreSQL", pg_runs), ("SQLite", lite_runs)):
            if runs is not None:
                table.append(
                    [f"{label}: no-change rerun ({runs.rerun_summary.get('rows', 0)} rows in the window)",
                     secs(runs.rerun), "-", f"{1000 * window_s:.1f} ms", "-", "-", "<1 s",
                     "yes" if runs.rerun < 1 else "NO"]
                )  # fmt: skip
        for count, peak in peaks:
            table.append(
                [f"peak RSS of a {count:,}-row sync ({mem_target.kind} library, child)", f"{peak['mib']:,.0f} MiB",
                 "-", f"{idle['mib']:,.0f} MiB", "-", f"+{peak['mib'] - idle['mib']:,.0f} MiB", "<1 GiB",
                 "yes" if peak["mib"] < 1024 else "NO"]
            )  # fmt: skip
        if len(peaks) > 1:
            (lo_n, lo), (hi_n, hi) = peaks[0], peaks[-1]
            growth = hi["mib"] / lo["mib"] - 1
            table.append(
                [f"peak RSS at {hi_n:,} rows beside {lo_n:,}", f"{hi['mib']:,.0f} MiB", "-", f"{lo['mib']:,.0f} MiB",
                 "-", f"{growth:+.1%}", "<=+10%", "yes" if growth <= 0.10 else "NO"]
            )  # fmt: skip
        widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
        for k, r in enumerate(table):
            print(
                "  ".join(
                    c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)
                ).rstrip()
            )
            if k == 0:
                print("-" * (sum(widths) + 2 * (len(widths) - 1)))
        print(
            "\nbaselines (same rows, same empty table):\n"
            "  raw COPY       = pyarrow.csv.write_csv + COPY ... FROM STDIN (FORMAT csv) + commit\n"
            "  raw executemany = tuples from Arrow + sqlite3 executemany + commit (WAL, synchronous=NORMAL)\n"
            "  dlt            = pipeline.run(pyarrow table, write_disposition=merge, primary_key=id_number),\n"
            "                   fresh dataset, its own table; the loader file format dlt used is named\n"
            "  no encryption  = the same sync with sealing of personal fields switched off (seal_table identity)\n"
            "  rerun          = the bare lookback-window query on the source by sqlite3 (the floor of any rerun)\n"
            "  peak RSS       = the same child process (imports, config, migrate) without the sync"
        )
        print("\nrounds (each figure then its baseline, in turns; the table shows the best of each):")
        for line in rounds:
            print("  " + line)
        print_memory(mem_target.kind, idle, peaks, table=False)
        if dlt_note:
            print(dlt_note)

        if pg_runs is not None:
            print_breakdown("PostgreSQL library, first sync by step", pg_runs.timings, pg_runs.first, total)
        print_breakdown("SQLite library, first sync by step", lite_runs.timings, lite_runs.first, total)
        for label, runs in (("PostgreSQL", pg_runs), ("SQLite", lite_runs)):
            if runs is not None:
                s = runs.summary
                print(
                    f"{label} first sync summary: rows {s['rows']:,}, inserted {s['inserted']:,}, "
                    f"rejected {s['rejected']:,}, batches {s['batches']}; rerun: rows {runs.rerun_summary['rows']}, "
                    f"unchanged {runs.rerun_summary['unchanged']}"
                )
    finally:
        for t in targets:
            with contextlib.suppress(Exception):
                t.cleanup()
        if args.keep:
            print(f"kept: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
