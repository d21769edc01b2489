"""One edge's run with its steps overlapped: batch N+1 is read, validated and sealed while batch N loads.

Three threads hand batches to each other one at a time: a thread that finished a batch waits until the
next thread takes it before it starts on another, so at most two batches are in flight between two threads
(the one the next thread works on, the one handed over) and memory stays bounded by a fixed number of
batches whatever the source's size, and whichever thread is the slowest:

- the reader streams the SQL source (a local system or a child library) from the edge's cursor and
  writes ``extract-0001.arrow``;
- the checker maps and validates each batch (``valid-0001.arrow``, ``rejects-0001.jsonl``), hashes its
  rows and signs its manifest, chained to the one before;
- the calling thread verifies each manifest (key, signature, binding, chain, root, owners) and loads the
  batch in one transaction with its failed rows and its cursor, as :func:`.loading.apply_batch` does
  for the step-by-step run.

Each step's files are written as in the step-by-step run (``run.json``, ``extract.json``,
``validate.json``, ``sealed.json``, ``load.json``), and a run that stops anywhere (killed, failed,
interrupted) leaves only whole batches committed with their cursors: the next run resumes from there.
A batch never leaves memory between sealing and loading here, so the loader verifies the leaves the
checker computed from the very rows it loads; the step-by-step run (separate Airflow tasks) re-reads
and re-hashes the spool's files instead. Drop folders keep the step-by-step run (a file is validated
whole before any of it loads, and quarantined whole).
"""

from __future__ import annotations

import json
import queue
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

import schemas
from connectors.sql import Cursor
from schemas.errors import TongbanError
from tongban.core import logs
from tongban.core.config import Exchange
from tongban.core.engine import spool
from tongban.core.engine.arrowio import PartWriter
from tongban.core.engine.base import check, uri
from tongban.core.engine.extraction import run_record, sql_source
from tongban.core.engine.interrupt import CancelToken
from tongban.core.engine.libraries import Libraries
from tongban.core.engine.loading import (
    COUNTERS,
    apply_batch,
    finish_run,
    rows_with_meta,
    summary_of,
    trusted_list,
)
from tongban.core.engine.plan import Plan, plan_for
from tongban.core.engine.records import (
    BatchInfo,
    ExtractPart,
    ExtractRecord,
    SealRecord,
    ValidateRecord,
    write,
)
from tongban.core.engine.sealing import Sealer
from tongban.core.engine.validation import PartValidator
from tongban.core.store import FailedRow
from tongban.core.store.sealed import seal_table
from tongban.core.trust.manifest import Manifest, schema_fingerprint

__all__ = ["FIRST_BATCH", "IN_FLIGHT", "overlapped", "sync_overlapped"]

#: Batches waiting between two threads, each handed over (the thread that made it waits until it is
#: taken before starting on another; the thread that takes it holds it while it works on it).
IN_FLIGHT = 1
#: Rows of an overlapped run's first batch at most (where the source can; the later ones hold the
#: exchange's batch size).
FIRST_BATCH = 8_192
_log = logs.get("tongban.engine")
_DONE = object()


def overlapped(ex: Exchange, edge_id: str, libs: Libraries | None = None) -> bool:
    """Whether the edge's run overlaps its steps: a SQL source (a local system or a child library),
    unless operators queued retries or resubmissions for it (``libs`` given): those travel in the
    step-by-step run, whose extract adds them after the source's rows."""
    edge = ex.edge(edge_id)
    if edge.source_kind == "node":
        return True
    if not (edge.source in ex.systems and ex.systems[edge.source].kind == "sql"):
        return False
    if libs is None:
        return True
    try:
        return edge.id not in libs.get(edge.target).queued_edges()
    except (sa.exc.SQLAlchemyError, TongbanError):
        return True  # a library not made yet, or unreachable: the run itself says so, with its code


class _Stopped(Exception):
    """Another thread of the run failed: this one stops too."""


class _Stage:
    """A thread that hands its results over one at a time (:meth:`put` returns once the item was taken)."""

    def __init__(
        self, name: str, work: Callable[[Callable[[Any], None]], None], stop: threading.Event
    ) -> None:
        self.out: queue.Queue[Any] = queue.Queue(maxsize=IN_FLIGHT)
        self.taken = threading.Semaphore(0)  # released by :func:`_take` for every item it takes
        self.error: BaseException | None = None
        self._stop = stop
        self._work = work
        self.thread = threading.Thread(target=self._run, name=f"tongban-{name}", daemon=True)

    def put(self, item: Any) -> None:
        """Hand ``item`` over and wait until the next thread took it: a finished batch is never held
        beside the next one, whatever the speeds of the threads (which is what bounds a run's peak)."""
        while True:
            if self._stop.is_set():
                raise _Stopped
            try:
                self.out.put(item, timeout=0.1)
                break
            except queue.Full:
                continue
        while not self.taken.acquire(timeout=0.1):
            if self._stop.is_set():
                raise _Stopped

    def _run(self) -> None:
        try:
            self._work(self.put)
        except _Stopped:
            return
        except BaseException as exc:  # handed to the calling thread, which raises it
            self.error = exc
            self._stop.set()
            return
        try:
            self.put(_DONE)
        except _Stopped:
            return


def _take(stage: _Stage, stop: threading.Event) -> Iterator[Any]:
    """The items a stage puts, until it is done; _Stopped once any thread of the run failed."""
    while True:
        try:
            item = stage.out.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                raise _Stopped from None
            continue
        stage.taken.release()
        if item is _DONE:
            return
        box = [item]
        del item
        yield box.pop()  # this frame holds nothing while the consumer works or awaits the next one


def sync_overlapped(
    ex: Exchange,
    edge_id: str,
    *,
    full: bool,
    libs: Libraries,
    on_rows: Callable[[int], None] | None,
    cancel: CancelToken | None,
) -> tuple[str, dict[str, Any]]:
    """Run the edge's four steps overlapped (the caller holds the edge's lock); returns the run's URI
    and summary. A run that stops removes its folder (what committed stays committed)."""
    plan = plan_for(ex, edge_id)
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    run = ex.spool / plan.edge.id / run_id
    try:
        return _sync(ex, plan, run, full=full, libs=libs, on_rows=on_rows, cancel=cancel)
    except BaseException:
        spool.discard(run)
        raise


def _sync(
    ex: Exchange,
    plan: Plan,
    run: Path,
    *,
    full: bool,
    libs: Libraries,
    on_rows: Callable[[int], None] | None,
    cancel: CancelToken | None,
) -> tuple[str, dict[str, Any]]:
    edge = plan.edge
    spec = schemas.get(plan.dataset)
    target = libs.get(edge.target)
    target.migrate()
    started = time.time()
    clock = time.monotonic()
    spool.abandon_older(run.parent, keep=run.name, started=started - spool.STALE_AFTER)
    if run.exists():
        shutil.rmtree(run)
    spool.private_dir(run)
    state = None if full else target.state(edge.id)
    after = Cursor.from_json(state["cursor"]) if state and state.get("cursor") else None
    if edge.source_kind == "node" and after is not None and not isinstance(after.value, int):
        after = None  # a cursor from before load sequence numbers: read the child whole, once
    meta = run_record(plan, run, started, full, after)
    write(run / "run.json", meta)  # first: an unfinished run is abandoned by its start time
    # A small first batch: the loader, the run's slowest thread, starts once it is checked, not a whole
    # batch later (the later batches keep the exchange's size).
    stream = sql_source(ex, plan, libs, after, full=full, first_batch=FIRST_BATCH)
    trust = trusted_list(ex, target)
    sealer = Sealer(ex, plan, meta, libs)
    schema_id = schema_fingerprint(spec.schema)
    stop = threading.Event()
    extracted: list[BatchInfo] = []
    by_code: Counter[str] = Counter()
    part_name = "extract-0001.arrow"

    def read(put: Callable[[Any], None]) -> None:
        writer = PartWriter(run / part_name)
        try:
            for j, (batch, cur) in enumerate(stream):
                check(cancel)
                cursor = cur.to_json() if cur else None
                writer.write(batch, cursor)
                extracted.append(BatchInfo(batch.num_rows, cursor))
                put((j, batch, cursor))
        finally:
            writer.close()
            stream.close()

    reader = _Stage("read", read, stop)
    validator: PartValidator | None = None
    sealed: list[Any] = []

    def validate_and_seal(put: Callable[[Any], None]) -> None:
        nonlocal validator
        validator = PartValidator(plan, run, 1, None, None, by_code)
        with validator:
            for j, raw, cursor in _take(reader, stop):
                check(cancel)
                accepted, lines = validator.add(j, raw, cursor)
                entry, leaves = sealer.seal(0, j, accepted, cursor, len(lines))
                sealed.append(entry)
                table = pa.Table.from_batches([accepted])
                # The rows as the table holds them, built here from the rows, leaves and batch id the
                # loader verifies, so the loader only verifies and writes.
                rows = rows_with_meta(
                    plan, table, leaves, entry.manifest["batch_id"], entry.manifest["source"]
                )
                # Sealed here too, off the loader's path; the loader uses it if the key that sealed it is
                # still the active one in its transaction (a rotation meanwhile: it seals again).
                ring = target.keyring()
                presealed = (ring.active, seal_table(ring, plan.dataset, rows)) if rows.num_rows else None
                n = raw.num_rows
                del raw, accepted  # not held while the loader is busy: in flight is what the loader takes
                put((n, entry, table, leaves, lines, rows, presealed))
                del entry, table, leaves, lines, rows, presealed  # the loader's now

    checker = _Stage("check", validate_and_seal, stop)
    totals = dict.fromkeys((*COUNTERS, "duplicates"), 0)
    try:
        reader.thread.start()
        checker.thread.start()
        for n, entry, table, leaves, lines, rows, presealed in _take(checker, stop):
            check(cancel)  # between batches: each batch's transaction is whole or absent
            manifest = Manifest.from_json(json.dumps(entry.manifest))
            rejected = [
                FailedRow(r["row"], r["key"], r["codes"], r["zh"], r["en"], r["payload"], r["where"])
                for r in lines
            ]
            apply_batch(
                ex, plan, target, trust, schema_id, manifest, table, leaves, rejected, totals, rows, presealed
            )
            del table, leaves, rows, presealed, rejected  # not held while the next batch is awaited
            if on_rows:
                on_rows(n)
    except _Stopped:
        pass  # a thread failed: its error is raised below
    finally:
        stop.set()
        for stage in (checker, reader):
            if stage.thread.ident is not None:  # started (a thread that failed to start has none)
                stage.thread.join()
    for stage in (reader, checker):
        if stage.error is not None and not isinstance(stage.error, _Stopped):
            raise stage.error
    assert validator is not None
    rows = sum(b.rows for b in extracted)
    parts = [ExtractPart(part_name, None, None, extracted)] if extracted else []
    if not extracted:
        (run / part_name).unlink(missing_ok=True)
    write(run / "extract.json", ExtractRecord(rows, parts))
    valid = validator.part if extracted else None
    counts = validator.totals
    write(run / "validate.json", ValidateRecord(**counts, parts=[valid] if valid else []))
    write(run / "sealed.json", SealRecord(sealed))
    if not sealed:
        target.note_success(edge.id, plan.dataset, edge.source)
    summary = summary_of(meta, totals, [], [], 0)
    # The same events as the step-by-step run, once the run is through (the steps ran side by side).
    seconds = round(time.monotonic() - clock, 3)
    common = {"edge": edge.id, "run_id": run.name, "seconds": seconds}
    logs.event(
        _log,
        "extract",
        f"extract {edge.id}: {rows} rows read",
        step="extract",
        rows=rows,
        cursor_from=meta.cursor_from,
        cursor_to=extracted[-1].cursor if extracted else None,
        **common,
    )
    logs.event(
        _log,
        "validate",
        f"validate {edge.id}: {counts['accepted']} accepted, {counts['rejected']} rejected",
        step="validate",
        **counts,
        rejected_by_code=dict(by_code.most_common()) or None,
        **common,
    )
    logs.event(
        _log,
        "seal",
        f"seal {edge.id}: {len(sealed)} batches signed by {plan.signer}",
        step="seal",
        batches=len(sealed),
        rows=sum(int(x.manifest.get("rows") or 0) for x in sealed),
        batch_id=[x.manifest.get("batch_id") for x in sealed] or None,
        root=[x.manifest.get("merkle_root") for x in sealed] or None,
        **common,
    )
    out = finish_run(plan, run, meta, summary, [s.manifest for s in sealed], clock)
    return uri(run), out
