"""Step 1, extract: read what changed at the edge's source since its cursor into Arrow IPC parts.

A local SQL system is read by ``(cursor column, key)`` with a lookback window (its clock is not ours);
a drop folder's settled files one part each (a file that changes while it is read is left for a later
run, one that cannot be read is quarantined); a child library exactly by its load sequence number
``(_seq, key)``. Every column is kept as raw bytes for the contract to read.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

import schemas
from connectors.dropfolder import DropFile, pending_files, quarantine, release
from connectors.files import read_file
from connectors.sql import Cursor, read_sql_incremental, read_sql_keys
from schemas.errors import TongbanError
from tongban.core import logs
from tongban.core.config import Exchange
from tongban.core.engine import allocators, spool
from tongban.core.engine.arrowio import PartWriter, raw_columns
from tongban.core.engine.base import STEP_LOCK_WAIT, ResolveConn, check, uri
from tongban.core.engine.interrupt import CancelToken
from tongban.core.engine.libraries import Libraries, using
from tongban.core.engine.plan import Plan, local_key, plan_for
from tongban.core.engine.records import (
    ExtractPart,
    ExtractRecord,
    LeftFile,
    QuarantinedFile,
    RunRecord,
    write,
)
from tongban.core.store import SEQ, Library

__all__ = ["drop_of", "extract", "quarantine_file", "sql_source"]

_log = logs.get("tongban.engine")


def extract(
    ex: Exchange,
    edge_id: str,
    *,
    run_id: str | None = None,
    full: bool = False,
    resolve_conn: ResolveConn = None,
    on_rows: Callable[[int], None] | None = None,
    cancel: CancelToken | None = None,
    lock_wait: float = STEP_LOCK_WAIT,
    libs: Libraries | None = None,
) -> str:
    """Read what changed at the edge's source since its cursor; returns the run folder's URI."""
    allocators.give_back()
    plan = plan_for(ex, edge_id)
    with spool.edge_lock(ex.spool, plan.edge.id, wait=lock_wait), using(ex, libs, resolve_conn) as libs:
        run_id = run_id or datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        run = ex.spool / plan.edge.id / run_id
        try:
            return _extract(ex, plan, run, full=full, libs=libs, on_rows=on_rows, cancel=cancel)
        except BaseException:
            spool.discard(run)  # nothing of a failed or interrupted extract is ever read
            raise


def _extract(
    ex: Exchange,
    plan: Plan,
    run: Path,
    *,
    full: bool,
    libs: Libraries,
    on_rows: Callable[[int], None] | None,
    cancel: CancelToken | None,
) -> str:
    edge = plan.edge
    target = libs.get(edge.target)
    target.migrate()
    started = time.time()
    # Runs of this edge that never finished and are older than a day will never load: their rows go.
    spool.abandon_older(run.parent, keep=run.name, started=started - spool.STALE_AFTER)
    if run.exists():
        shutil.rmtree(run)  # a retried extract starts over
    spool.private_dir(run)
    state = None if full else target.state(edge.id)
    after = Cursor.from_json(state["cursor"]) if state and state.get("cursor") else None
    if edge.source_kind == "node" and after is not None and not isinstance(after.value, int):
        after = None  # a cursor from before load sequence numbers: read the child whole, once
    parts: list[ExtractPart] = []
    quarantined: list[QuarantinedFile] = []
    left: list[LeftFile] = []
    total = 0

    def write_part(batches: Iterator[tuple[pa.RecordBatch, Cursor | None]]) -> None:
        nonlocal total
        name = f"extract-{len(parts) + 1:04d}.arrow"
        writer = PartWriter(run / name)
        try:
            for batch, cur in batches:
                check(cancel)
                writer.write(batch, cur.to_json() if cur else None)
                total += batch.num_rows
                if on_rows:
                    on_rows(batch.num_rows)
        finally:
            writer.close()
        if writer.batches:
            parts.append(ExtractPart(name, None, None, writer.batches))

    if edge.source_kind == "system" and ex.systems[edge.source].kind != "sql":
        system = ex.systems[edge.source]
        _release_files(plan, target)  # quarantined files queued for a retry go back into the folder
        assert system.folder is not None
        drops = pending_files(
            system.folder, pattern=system.pattern or "*", settle_seconds=system.settle_seconds
        )
        for drop in drops:
            check(cancel)
            part = _extract_file(ex, plan, target, run, drop, len(parts) + 1, quarantined, left, cancel)
            if part is not None:
                parts.append(part)
                n = sum(b.rows for b in part.batches)
                total += n
                if on_rows:
                    on_rows(n)
    else:
        write_part(sql_source(ex, plan, libs, after, full=full))

    if edge.source_kind == "system":
        # What operators queued for this edge: rows to re-read from the source, edited rows to send.
        # Their parts come last and carry no cursor: the edge's cursor moves only with the source.
        for part in _queued_parts(ex, plan, target, run, len(parts) + 1, libs.resolve_conn):
            parts.append(part)
            n = sum(b.rows for b in part.batches)
            total += n
            if on_rows:
                on_rows(n)

    write(run / "run.json", run_record(plan, run, started, full, after))
    write(run / "extract.json", ExtractRecord(total, parts, quarantined, left))
    last = next((b.cursor for part in reversed(parts) for b in reversed(part.batches) if b.cursor), None)
    logs.event(
        _log,
        "extract",
        f"extract {edge.id}: {total} rows read",
        step="extract",
        edge=edge.id,
        run_id=run.name,
        rows=total,
        cursor_from=after.to_json() if after else None,
        cursor_to=last,
        quarantined=[q.code for q in quarantined] or None,
        seconds=round(time.time() - started, 3),
    )
    return uri(run)


def run_record(plan: Plan, run: Path, started: float, full: bool, after: Cursor | None) -> RunRecord:
    """What ``run.json`` says of a run: its edge, when it started, and the cursor it reads from."""
    edge = plan.edge
    return RunRecord(
        edge=edge.id,
        dataset=plan.dataset,
        source=edge.source,
        source_kind=edge.source_kind,
        target=edge.target,
        run_id=run.name,
        started_at=datetime.fromtimestamp(started, UTC).isoformat(),
        started_epoch=started,
        full=full,
        cursor_from=after.to_json() if after else None,
    )


def sql_source(
    ex: Exchange,
    plan: Plan,
    libs: Libraries,
    after: Cursor | None,
    *,
    full: bool,
    first_batch: int | None = None,
) -> Iterator[tuple[pa.RecordBatch, Cursor | None]]:
    """The edge's SQL source (a local system, or a child library) as raw batches with their cursors,
    read from ``after`` (a local system's first batch at most ``first_batch`` rows, where the connector
    can)."""
    edge = plan.edge
    spec = schemas.get(plan.dataset)
    if edge.source_kind == "system":
        system = ex.systems[edge.source]
        mapping = system.mapping
        stream = read_sql_incremental(
            ex.system_url(system.name, libs.resolve_conn),
            table=system.table or mapping.table if not (system.query or mapping.query) else None,
            query=system.query or mapping.query,
            cursor_column=system.cursor,
            key_column=local_key(mapping, spec.key),
            after=after,
            lookback_seconds=0 if full else ex.lookback_seconds,
            batch_size=ex.batch_size,
            as_text=True,  # kept as raw bytes: a SQLite system is read straight into Arrow
            first_batch=first_batch,
        )
        try:
            for b, c in stream:
                yield raw_columns(b), c
        finally:
            stream.close()
        return
    child = libs.get(edge.source)
    child.migrate()
    keep = {*spec.names, "_owner"}
    # Exact: the child numbers its loads in commit order, so nothing is missed or sent twice.
    # Only records owned by the source or a node below it travel up: records that came down to it
    # (read-only foreign records) or of a node no longer in the exchange stay where they are.
    table, query = plan.dataset, None
    owners = sorted(ex.below(edge.source))
    if not set(ex.nodes) <= set(owners):
        listed = ", ".join(f"'{code}'" for code in owners)  # node codes: six digits, checked on load
        table, query = None, f'SELECT * FROM "{plan.dataset}" WHERE "_owner" IN ({listed})'
    stream = read_sql_incremental(
        ex.library_url(edge.source, libs.resolve_conn),
        table=table,
        query=query,
        cursor_column=SEQ,
        key_column=spec.key,
        after=after,
        lookback_seconds=0,
        batch_size=ex.batch_size,
    )
    try:
        # The child's sealed fields are opened here: the batch is re-validated and its leaves hashed over
        # the plaintext rows, and the parent seals them again under its own keys when it loads.
        for b, c in stream:
            yield raw_columns(child.open_batch(plan.dataset, b), keep), c
    finally:
        stream.close()


def drop_of(origin: str, fingerprint: dict | None) -> DropFile | None:
    """The drop file a part was read from, as it was when read."""
    return DropFile.from_dict(origin, fingerprint) if fingerprint else None


def _extract_file(
    ex: Exchange,
    plan: Plan,
    target: Library,
    run: Path,
    drop: DropFile,
    number: int,
    quarantined: list[QuarantinedFile],
    left: list[LeftFile],
    cancel: CancelToken | None,
) -> ExtractPart | None:
    """One settled drop file read whole into a part, or quarantined, or left for a later run."""
    system = ex.systems[plan.edge.source]
    name = f"extract-{number:04d}.arrow"
    writer = PartWriter(run / name)
    problem: TongbanError | None = None
    try:
        # The whole file is read before it joins the run, so a truncated file adds no rows.
        try:
            for b in read_file(drop.path, batch_size=ex.batch_size, encoding=system.mapping.encoding):
                check(cancel)
                writer.write(raw_columns(b), None)
        finally:
            writer.close()
    except TongbanError as exc:
        problem = exc
    except Exception as exc:  # whatever else a hostile file does to a reader (RecursionError too)
        problem = TongbanError(
            "FILE_MALFORMED",
            f"文件无法读取：{type(exc).__name__}",
            f"the file cannot be read: {type(exc).__name__}",
            str(drop.path),
        )
    if not drop.unchanged():
        # Written to while we read it: neither loaded nor quarantined; a later run reads it whole.
        (run / name).unlink(missing_ok=True)
        left.append(LeftFile(str(drop.path), "changed while it was read"))
        return None
    if problem is None:
        drop = drop.with_digest()  # what was read, to tell a same-size, same-time rewrite apart later
    else:
        (run / name).unlink(missing_ok=True)
        if not quarantine_file(target, plan, drop, problem, quarantined):
            left.append(LeftFile(str(drop.path), "changed while it was read"))
        return None
    if not writer.batches:  # an empty drop file: nothing to load, archived after the run commits
        (run / name).unlink(missing_ok=True)
        return ExtractPart(None, str(drop.path), drop.as_dict(), [])
    return ExtractPart(name, str(drop.path), drop.as_dict(), writer.batches)


def quarantine_file(
    target: Library, plan: Plan, drop: DropFile, exc: TongbanError, quarantined: list[QuarantinedFile]
) -> bool:
    """Move a bad drop file to ``failed/`` and keep it as a failed transfer; the rest goes on.

    False when the file changed since it was read (a writer is at it): it stays for a later run.
    """
    assert plan.folder is not None
    digest = drop.sha256  # (read before the file moves)
    moved = quarantine(drop.path, plan.folder, exc.code, expect=drop)
    if moved is None:
        return False
    target.record_failure(
        kind="file",
        edge=plan.edge.id,
        dataset=plan.dataset,
        source=plan.edge.source,
        codes=[exc.code],
        message_zh=exc.message_zh,
        message_en=exc.message_en,
        where=exc.where,
        payload={"file": str(moved), "name": drop.path.name, "sha256": digest},
    )
    quarantined.append(QuarantinedFile(str(drop.path), str(moved), exc.code))
    return True


def _queued_parts(
    ex: Exchange, plan: Plan, target: Library, run: Path, number: int, resolve_conn: ResolveConn
) -> list[ExtractPart]:
    """The parts of what operators queued for the edge: the rows of queued retries re-read from a SQL
    source (by key), and resubmitted rows (already in the dataset's names, validated when queued)."""
    out: list[ExtractPart] = []
    system = ex.systems[plan.edge.source]
    spec = schemas.get(plan.dataset)
    retries = [r for r in target.queued(plan.edge.id, "retry") if r["kind"] == "row" and r["row_key"]]
    if retries and system.kind == "sql":
        mapping = system.mapping
        keys = sorted({r["row_key"] for r in retries})
        name = f"extract-{number + len(out):04d}.arrow"
        writer = PartWriter(run / name)
        key_col = local_key(mapping, spec.key)
        found: set[str] = set()
        try:
            for batch in read_sql_keys(
                ex.system_url(system.name, resolve_conn),
                table=system.table or mapping.table if not (system.query or mapping.query) else None,
                query=system.query or mapping.query,
                key_column=key_col,
                keys=keys,
                batch_size=ex.batch_size,
            ):
                if key_col in batch.schema.names:
                    found.update(str(v) for v in batch.column(key_col).to_pylist() if v is not None)
                writer.write(raw_columns(batch), None)
        finally:
            writer.close()
        gone = [r["id"] for r in retries if r["row_key"] not in found]
        target.requeue_missing(
            gone,
            "重试时源系统中已没有这一行",
            "the row is no longer in the source system",
            "FAILED_RETRY_NOT_FOUND",
        )
        if writer.batches:
            out.append(ExtractPart(name, None, None, writer.batches, queued="retry"))
    resubmits = [
        r for r in target.queued(plan.edge.id, "resubmit") if isinstance(r["pending"].get("row"), dict)
    ]
    if resubmits:
        name = f"extract-{number + len(out):04d}.arrow"
        writer = PartWriter(run / name)
        try:
            for start in range(0, len(resubmits), ex.batch_size):
                chunk = resubmits[start : start + ex.batch_size]
                columns = {
                    f: pa.array([_text(r["pending"]["row"].get(f)) for r in chunk], pa.string())
                    for f in spec.names
                }
                writer.write(raw_columns(pa.RecordBatch.from_pydict(columns)), None)
        finally:
            writer.close()
        ids = [r["id"] for r in resubmits]
        target.claim(ids, run.name)
        out.append(ExtractPart(name, None, None, writer.batches, queued="resubmit", failures=ids))
    return out


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _release_files(plan: Plan, target: Library) -> None:
    """Quarantined files queued for a retry go back into the drop folder, to be read by this run."""
    assert plan.folder is not None
    gone = []
    for r in target.queued(plan.edge.id, "retry"):
        if r["kind"] != "file":
            continue
        payload = json.loads(r["payload"]) if r["payload"] else {}
        moved, name = payload.get("file"), payload.get("name")
        released = bool(moved and name) and release(Path(moved), plan.folder, name) is not None
        if not released and not (name and (plan.folder / name).exists()):  # (a replacement resolves it)
            gone.append(r["id"])
    target.requeue_missing(
        gone,
        "重试时隔离目录中已没有这个文件",
        "the file is no longer in quarantine",
        "FAILED_RETRY_NOT_FOUND",
    )
