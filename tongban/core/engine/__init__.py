"""The sync engine: one edge's run as four steps, extract -> validate -> seal -> load.

Each step reads the files of the one before from the run's spool folder and writes its own, so the
steps can run as separate Airflow tasks that pass only the folder's URI, or one after another from
``tongban sync``. Nothing here imports Airflow.

- **extract** reads the source from the edge's cursor (a local SQL system by ``(cursor column, key)``
  with lookback, a drop folder's settled files, or a child library exactly by its load sequence
  ``(_seq, key)``) into Arrow IPC parts; every column is kept as raw bytes for the contract to read.
- **validate** maps and checks each batch; accepted rows are written in canonical types, rejected rows
  with their codes and raw payload.
- **seal** hashes the accepted rows, builds the Merkle root and signs one manifest per batch, chained
  to the edge's last loaded manifest.
- **load** verifies key, signature, what the signature is bound to (the edge's own signer, edge,
  target and dataset, and rows owned by the signer or a node below it), chain and root, then applies
  each batch in one transaction with its failed rows and the cursor
  (:meth:`tongban.core.store.Library.load_batch`).

Memory stays bounded by the batch size: every step streams batch by batch. The spool's files are
private and short-lived (:mod:`tongban.core.engine.spool`); each step holds the edge's lock; a stop asked for
(:mod:`tongban.core.engine.interrupt`) is honoured between batches.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import schemas
from connectors.dropfolder import DropFile, archive, pending_files, quarantine
from connectors.files import read_file
from connectors.mapping import Mapping
from connectors.sql import Cursor, read_sql_incremental
from schemas.errors import TongbanError
from schemas.validate import ContractError, Severity, Validator
from tongban.core.config import Edge, Exchange
from tongban.core.engine import spool
from tongban.core.engine.interrupt import CancelToken, Interrupted
from tongban.core.errors import SyncError
from tongban.core.store import SEQ, FailedRow, Library, StoreError, dumps
from tongban.core.trust import KeyStore, TrustList
from tongban.core.trust.manifest import Manifest, ManifestError, schema_fingerprint, verify
from tongban.core.trust.manifest import seal as seal_manifest
from tongban.core.trust.merkle import merkle_root, row_hashes

__all__ = [
    "SyncError",
    "extract",
    "libraries",
    "load",
    "record_run_failure",
    "seal",
    "status",
    "sync_edge",
    "validate",
]

ResolveConn = Callable[[str], str] | None

#: How long a step started on its own (an Airflow task) waits for its edge's lock before EDGE_BUSY.
STEP_LOCK_WAIT = 600.0


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def uri(path: Path) -> str:
    return path.resolve().as_uri()


def path_of(run_uri: str) -> Path:
    parsed = urlparse(run_uri)
    if parsed.scheme not in ("file", ""):
        raise SyncError("SPOOL_URI", "仅支持 file:// 地址", "only file:// URIs are supported", run_uri)
    return Path(unquote(parsed.path))


def _read_json(path: Path) -> dict[str, Any]:
    return spool.read_json(path)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    spool.write_json(path, data, dumps)


def _check(cancel: CancelToken | None) -> None:
    if cancel is not None:
        cancel.check()


_LIBRARIES: dict[str, Library] = {}


def libraries(ex: Exchange, node: str, resolve_conn: ResolveConn = None) -> Library:
    """The node's library (one engine per URL and process)."""
    url = ex.library_url(node, resolve_conn)
    lib = _LIBRARIES.get(url)
    if lib is None:
        lib = Library(url, node)
        _LIBRARIES[url] = lib
    return lib


@dataclass(frozen=True)
class _Plan:
    """What an edge reads and how: derived from the exchange config."""

    edge: Edge
    dataset: str
    signer: str  # the node that seals the batches
    owner: str | None  # owner of every row (system edges), None: rows carry their _owner
    mapping: Mapping
    timezone: str | None
    allowlist: tuple[str, ...]
    folder: Path | None = None  # a drop folder's, for quarantining its files


def _plan(ex: Exchange, edge_id: str) -> _Plan:
    edge = ex.edge(edge_id)
    if edge.source_kind == "system":
        system = ex.systems[edge.source]
        return _Plan(
            edge,
            edge.dataset,
            signer=edge.target,
            owner=edge.target,
            mapping=system.mapping,
            timezone=system.mapping.timezone,
            allowlist=system.mapping.uscc_allowlist,
            folder=system.folder,
        )
    allow = tuple(sorted({c for s in ex.systems.values() for c in s.mapping.uscc_allowlist}))
    return _Plan(
        edge, edge.dataset, signer=edge.source, owner=None, mapping=Mapping(), timezone="UTC", allowlist=allow
    )


# -- extract ------------------------------------------------------------------------------------------


def _raw(batch: pa.RecordBatch, keep: set[str] | None = None) -> pa.RecordBatch:
    """Every column as binary: one schema across batches, and the contract reads the values."""
    arrays, names = [], []
    for name, col in zip(batch.schema.names, batch.columns, strict=True):
        if keep is not None and name not in keep:
            continue
        t = col.type
        if pa.types.is_null(t):
            col = pa.nulls(len(col), pa.binary())
        elif pa.types.is_binary(t):
            pass
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            col = col.cast(pa.string()).view(pa.binary()) if pa.types.is_string(t) else col.cast(pa.binary())
        elif pa.types.is_timestamp(t) and t.tz is None:
            col = pc.strftime(col, format="%Y-%m-%d %H:%M:%S").cast(pa.binary())
        else:
            col = pc.cast(col, pa.string()).cast(pa.binary())
        arrays.append(col)
        names.append(name)
    return pa.RecordBatch.from_arrays(arrays, names=names)


class _PartWriter:
    """Writes one extract part: an Arrow IPC file whose record batches are the sync batches."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: pa.ipc.RecordBatchFileWriter | None = None
        self.schema: pa.Schema | None = None
        self.batches: list[dict[str, Any]] = []

    def write(self, batch: pa.RecordBatch, cursor: dict[str, Any] | None) -> None:
        if self.writer is None:
            self.schema = batch.schema
            self.writer = pa.ipc.new_file(_private_sink(self.path), batch.schema)
        elif batch.schema != self.schema:
            assert self.schema is not None
            cols = {n: batch.column(n) for n in batch.schema.names}
            batch = pa.RecordBatch.from_arrays(
                [cols.get(f.name, pa.nulls(batch.num_rows, pa.binary())) for f in self.schema],
                schema=self.schema,
            )
        self.writer.write_batch(batch)
        self.batches.append({"rows": batch.num_rows, "cursor": cursor})

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _private_sink(path: Path) -> pa.NativeFile:
    """An Arrow output file created readable by the owner only (it holds whole rows)."""
    spool.open_private(path, "wb").close()
    return pa.OSFile(str(path), "w")


def _local_key(mapping: Mapping, key: str) -> str:
    for local, canonical in mapping.columns.items():
        if canonical == key:
            return local
    return key


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
) -> str:
    """Read what changed at the edge's source since its cursor; returns the run folder's URI."""
    plan = _plan(ex, edge_id)
    with spool.edge_lock(ex.spool, plan.edge.id, wait=lock_wait):
        run_id = run_id or _now().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        run = ex.spool / plan.edge.id / run_id
        try:
            return _extract(
                ex, plan, run, full=full, resolve_conn=resolve_conn, on_rows=on_rows, cancel=cancel
            )
        except BaseException:
            spool.discard(run)  # nothing of a failed or interrupted extract is ever read
            raise


def _extract(
    ex: Exchange,
    plan: _Plan,
    run: Path,
    *,
    full: bool,
    resolve_conn: ResolveConn,
    on_rows: Callable[[int], None] | None,
    cancel: CancelToken | None,
) -> str:
    edge = plan.edge
    spec = schemas.get(plan.dataset)
    target = libraries(ex, edge.target, resolve_conn)
    target.migrate()
    started = time.time()
    if run.exists():
        shutil.rmtree(run)  # a retried extract starts over
    spool.private_dir(run)
    state = None if full else target.state(edge.id)
    after = Cursor.from_json(state["cursor"]) if state and state.get("cursor") else None
    if edge.source_kind == "node" and after is not None and not isinstance(after.value, int):
        after = None  # a cursor from before load sequence numbers: read the child whole, once
    parts: list[dict[str, Any]] = []
    quarantined: list[dict[str, Any]] = []
    left: list[dict[str, Any]] = []
    total = 0

    def counted(batches: Iterator[tuple[pa.RecordBatch, Cursor | None]]) -> Iterator[Any]:
        nonlocal total
        for batch, cur in batches:
            _check(cancel)
            total += batch.num_rows
            if on_rows:
                on_rows(batch.num_rows)
            yield batch, cur

    def write_part(batches: Iterator[tuple[pa.RecordBatch, Cursor | None]]) -> None:
        name = f"extract-{len(parts) + 1:04d}.arrow"
        writer = _PartWriter(run / name)
        try:
            for batch, cur in counted(batches):
                writer.write(batch, cur.to_json() if cur else None)
        finally:
            writer.close()
        if writer.batches:
            parts.append({"file": name, "origin": None, "batches": writer.batches})

    if edge.source_kind == "system":
        system = ex.systems[edge.source]
        if system.kind == "sql":
            url = ex.system_url(system.name, resolve_conn)
            mapping = system.mapping
            stream = read_sql_incremental(
                url,
                table=system.table or mapping.table if not (system.query or mapping.query) else None,
                query=system.query or mapping.query,
                cursor_column=system.cursor,
                key_column=_local_key(mapping, spec.key),
                after=after,
                lookback_seconds=0 if full else ex.lookback_seconds,
                batch_size=ex.batch_size,
            )
            write_part((_raw(b), c) for b, c in stream)
        else:
            assert system.folder is not None
            drops = pending_files(
                system.folder, pattern=system.pattern or "*", settle_seconds=system.settle_seconds
            )
            for drop in drops:
                _check(cancel)
                part = _extract_file(ex, plan, target, run, drop, len(parts) + 1, quarantined, left, cancel)
                if part is not None:
                    parts.append(part)
                    n = sum(b["rows"] for b in part["batches"])
                    total += n
                    if on_rows:
                        on_rows(n)
    else:
        url = ex.library_url(edge.source, resolve_conn)
        libraries(ex, edge.source, resolve_conn).migrate()
        keep = {*spec.names, "_owner"}
        # Exact: the child numbers its loads in commit order, so nothing is missed or sent twice.
        stream = read_sql_incremental(
            url,
            table=plan.dataset,
            cursor_column=SEQ,
            key_column=spec.key,
            after=after,
            lookback_seconds=0,
            batch_size=ex.batch_size,
        )
        write_part((_raw(b, keep), c) for b, c in stream)

    _write_json(
        run / "run.json",
        {
            "edge": edge.id,
            "dataset": plan.dataset,
            "source": edge.source,
            "source_kind": edge.source_kind,
            "target": edge.target,
            "run_id": run.name,
            "started_at": _dt.datetime.fromtimestamp(started, _dt.UTC).isoformat(),
            "started_epoch": started,
            "full": full,
            "cursor_from": after.to_json() if after else None,
        },
    )
    _write_json(
        run / "extract.json", {"rows": total, "parts": parts, "quarantined": quarantined, "left": left}
    )
    return uri(run)


def _drop_of(origin: str, fingerprint: dict[str, Any] | None) -> DropFile | None:
    return DropFile.from_dict(origin, fingerprint) if fingerprint else None


def _extract_file(
    ex: Exchange,
    plan: _Plan,
    target: Library,
    run: Path,
    drop: DropFile,
    number: int,
    quarantined: list[dict[str, Any]],
    left: list[dict[str, Any]],
    cancel: CancelToken | None,
) -> dict[str, Any] | None:
    """One settled drop file read whole into a part, or quarantined, or left for a later run."""
    system = ex.systems[plan.edge.source]
    assert system.folder is not None
    name = f"extract-{number:04d}.arrow"
    writer = _PartWriter(run / name)
    problem: TongbanError | None = None
    try:
        # The whole file is read before it joins the run, so a truncated file adds no rows.
        try:
            for b in read_file(drop.path, batch_size=ex.batch_size, encoding=system.mapping.encoding):
                _check(cancel)
                writer.write(_raw(b), None)
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
        left.append({"file": str(drop.path), "why": "changed while it was read"})
        return None
    if problem is not None:
        (run / name).unlink(missing_ok=True)
        if not _quarantine_file(target, plan, drop, problem, quarantined):
            left.append({"file": str(drop.path), "why": "changed while it was read"})
        return None
    part = {
        "file": name,
        "origin": str(drop.path),
        "fingerprint": drop.as_dict(),
        "batches": writer.batches,
    }
    if not writer.batches:  # an empty drop file: nothing to load, archived after the run commits
        (run / name).unlink(missing_ok=True)
        part["file"] = None
    return part


def _quarantine_file(
    target: Library, plan: _Plan, drop: DropFile, exc: TongbanError, quarantined: list[dict[str, Any]]
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
    quarantined.append({"file": str(drop.path), "moved_to": str(moved), "code": exc.code})
    return True


# -- validate -----------------------------------------------------------------------------------------


def _batches(path: Path) -> Iterator[pa.RecordBatch]:
    """The record batches of an IPC file, one read at a time (not mapped: memory stays per batch).

    A file that is missing, truncated or not Arrow IPC is SPOOL_MISSING / SPOOL_CORRUPT (permanent).
    """
    try:
        with pa.OSFile(str(path)) as source:
            reader = pa.ipc.open_file(source)
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i)
    except FileNotFoundError:
        raise spool.SpoolError(
            "SPOOL_MISSING",
            "运行目录中缺少上一步的文件：请重新运行同步",
            "a file of the previous step is missing from the run folder: run the sync again",
            str(path),
        ) from None
    except (pa.ArrowException, OSError) as exc:
        raise spool.corrupt(path, exc) from None


def _payloads(table: pa.Table, rows: np.ndarray) -> list[dict[str, Any]]:
    picked = table.take(pa.array(rows, pa.int64()))
    return picked.to_pylist()


class _FileRefused(Exception):
    """A drop file the contract cannot read at all (e.g. a required column missing)."""

    def __init__(self, error: TongbanError) -> None:
        super().__init__(error.code)
        self.error = error


def validate(
    ex: Exchange, run_uri: str, *, cancel: CancelToken | None = None, lock_wait: float = STEP_LOCK_WAIT
) -> str:
    """Check every extracted batch against the dataset's contract; returns the run folder's URI.

    A drop file the contract cannot read at all (a required column missing) is quarantined and kept
    as a failed transfer; the other files go on. For a SQL system the same is a failed run.
    """
    run = path_of(run_uri)
    meta = _read_json(run / "run.json")
    plan = _plan(ex, meta["edge"])
    with spool.edge_lock(ex.spool, plan.edge.id, wait=lock_wait):
        extracted = _read_json(run / "extract.json")
        out_parts = []
        quarantined: list[dict[str, Any]] = []
        left: list[dict[str, Any]] = []
        totals = {"rows": 0, "accepted": 0, "rejected": 0, "flagged": 0}
        for p, part in enumerate(extracted["parts"], start=1):
            if part["file"] is None:
                out_parts.append({"file": None, "rejects": None, "batches": [], "origin": part["origin"]})
                continue
            try:
                out, counts = _validate_part(plan, run, p, part, cancel)
            except _FileRefused as refused:
                for name in (f"valid-{p:04d}.arrow", f"rejects-{p:04d}.jsonl"):
                    (run / name).unlink(missing_ok=True)
                drop = _drop_of(part["origin"], part.get("fingerprint"))
                assert drop is not None
                if drop.unchanged():
                    lib = libraries(ex, plan.edge.target)
                    if not _quarantine_file(lib, plan, drop, refused.error, quarantined):
                        left.append({"file": str(drop.path), "why": "changed while it was read"})
                else:
                    left.append({"file": str(drop.path), "why": "changed while it was read"})
                out_parts.append({"file": None, "rejects": None, "batches": [], "origin": None})
                continue
            out_parts.append(out)
            for k, v in counts.items():
                totals[k] += v
        _write_json(
            run / "validate.json", {**totals, "parts": out_parts, "quarantined": quarantined, "left": left}
        )
    return uri(run)


def _validate_part(
    plan: _Plan, run: Path, p: int, part: dict[str, Any], cancel: CancelToken | None
) -> tuple[dict[str, Any], dict[str, int]]:
    spec = schemas.get(plan.dataset)
    totals = {"rows": 0, "accepted": 0, "rejected": 0, "flagged": 0}
    # A library's key is its primary key: only a local system's extract can repeat one.
    validator = Validator(
        spec,
        timezone=plan.timezone,
        uscc_allowlist=plan.allowlist,
        check_duplicates=plan.edge.source_kind == "system",
    )
    valid_name, rejects_name = f"valid-{p:04d}.arrow", f"rejects-{p:04d}.jsonl"
    schema = spec.schema
    out_schema = pa.schema(
        [f.with_nullable(True) for f in schema]
        + [pa.field("_owner", pa.string()), pa.field("_flags", pa.string())],
        metadata=schema.metadata,
    )
    batches_meta = []
    where = part["origin"] or plan.edge.source
    with (
        pa.ipc.new_file(_private_sink(run / valid_name), out_schema) as writer,
        spool.open_private(run / rejects_name) as rejects,
    ):
        for j, raw in enumerate(_batches(run / part["file"])):
            _check(cancel)
            table = pa.Table.from_batches([raw])
            owners = table.column("_owner") if "_owner" in table.column_names else None
            mapped = plan.mapping.apply(table.drop_columns(["_owner"]) if owners is not None else table)
            try:
                result = validator.validate(mapped)
            except ContractError as exc:
                error = SyncError(exc.code, exc.message_zh, exc.message_en, where)
                if part["origin"]:
                    raise _FileRefused(error) from None
                raise error from None
            n = mapped.num_rows
            flags: list[str | None] = [None] * n
            bad_rows: list[int] = []
            reports = []
            for report in result.reports():
                i = report.row - result.first_row
                if report.severity is Severity.ERROR:
                    bad_rows.append(i)
                    reports.append(report)
                else:
                    flags[i] = ",".join(report.codes)
            payloads = _payloads(mapped, np.array(bad_rows, dtype=np.int64)) if bad_rows else []
            for report, payload in zip(reports, payloads, strict=True):
                rejects.write(
                    dumps(
                        {
                            "batch": j,
                            "row": report.row,
                            "key": report.key,
                            "codes": report.codes,
                            "zh": report.message_zh,
                            "en": report.message_en,
                            "payload": payload,
                            "where": f"{where}:{report.row}",
                        }
                    )
                    + "\n"
                )
            keep = pa.array(~result.rejected)
            accepted = result.table.filter(keep)
            if owners is not None:
                owner_col = pc.cast(owners, pa.string()).filter(keep)
            else:
                owner_col = pa.array([plan.owner] * accepted.num_rows, pa.string())
            flag_col = pa.array(flags, pa.string()).filter(keep)
            arrays = [*accepted.columns, owner_col, flag_col]
            writer.write_batch(
                pa.RecordBatch.from_arrays(
                    [a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in arrays],
                    schema=out_schema,
                )
            )
            rejected = int(result.rejected.sum())
            batches_meta.append(
                {"rows": accepted.num_rows, "rejected": rejected, "cursor": part["batches"][j]["cursor"]}
            )
            totals["rows"] += n
            totals["accepted"] += accepted.num_rows
            totals["rejected"] += rejected
            totals["flagged"] += int(result.flagged.sum())
    out = {
        "file": valid_name,
        "rejects": rejects_name,
        "batches": batches_meta,
        "origin": part["origin"],
        "fingerprint": part.get("fingerprint"),
    }
    return out, totals


# -- seal ---------------------------------------------------------------------------------------------


def hash_columns(dataset: str) -> list[str]:
    """The columns a row's leaf hash covers: every field of the dataset, then its owner."""
    return [*schemas.get(dataset).names, "_owner"]


def seal(
    ex: Exchange,
    run_uri: str,
    *,
    resolve_conn: ResolveConn = None,
    cancel: CancelToken | None = None,
    lock_wait: float = STEP_LOCK_WAIT,
) -> str:
    """Sign one manifest per validated batch, chained to the edge's last loaded manifest."""
    run = path_of(run_uri)
    meta = _read_json(run / "run.json")
    plan = _plan(ex, meta["edge"])
    with spool.edge_lock(ex.spool, plan.edge.id, wait=lock_wait):
        validated = _read_json(run / "validate.json")
        key_id, private = KeyStore(ex.keys_dir).signer(plan.signer)
        state = libraries(ex, plan.edge.target, resolve_conn).state(plan.edge.id)
        prev = state["last_manifest_hash"] if state else ""
        cursor_from = meta["cursor_from"]
        cols = hash_columns(plan.dataset)
        schema_id = schema_fingerprint(schemas.get(plan.dataset).schema)
        sealed = []
        for p, part in enumerate(validated["parts"]):
            if part["file"] is None:
                continue
            for j, batch in enumerate(_batches(run / part["file"])):
                _check(cancel)
                leaves = row_hashes(pa.Table.from_batches([batch]), cols)
                cursor_to = part["batches"][j]["cursor"]
                manifest = seal_manifest(
                    dataset=plan.dataset,
                    edge=plan.edge.id,
                    source=plan.signer,
                    target=plan.edge.target,
                    cursor_from=cursor_from,
                    cursor_to=cursor_to,
                    rows=batch.num_rows,
                    rejected=part["batches"][j]["rejected"],
                    merkle_root=merkle_root(leaves).hex(),
                    prev_hash=prev,
                    schema=schema_id,
                    key_id=key_id,
                    private_key=private,
                )
                sealed.append({"part": p, "batch": j, "manifest": json.loads(manifest.to_json())})
                prev = manifest.hash
                cursor_from = cursor_to if cursor_to is not None else cursor_from
        _write_json(run / "sealed.json", {"manifests": sealed})
    return uri(run)


# -- load ---------------------------------------------------------------------------------------------


def _rejects(run: Path, name: str | None) -> dict[int, list[FailedRow]]:
    out: dict[int, list[FailedRow]] = {}
    if not name:
        return out
    path = run / name
    try:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                out.setdefault(r["batch"], []).append(
                    FailedRow(
                        r["row"], r["key"], r["codes"], r["zh"], r["en"], r["payload"], r.get("where", "")
                    )
                )
    except FileNotFoundError:
        raise spool.SpoolError(
            "SPOOL_MISSING",
            "运行目录中缺少被拒绝行的文件：请重新运行同步",
            "the rejected rows' file is missing from the run folder: run the sync again",
            str(path),
        ) from None
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise spool.corrupt(path, exc) from None
    return out


def _owner_problem(ex: Exchange, plan: _Plan, manifest: Manifest, table: pa.Table) -> ManifestError | None:
    """BATCH_OWNER when a row is owned by neither the signer nor a node below it in the topology.

    A county sends only its own records; a province forwards its counties' (and its own). Migration
    does not change this: the new owner's row is the new owner's, the old owner's release its own.
    """
    allowed = ex.below(plan.signer)
    owners = set(pc.unique(table.column("_owner")).to_pylist())
    foreign = sorted(str(o) for o in owners if o not in allowed)
    if not foreign:
        return None
    shown = ", ".join(foreign[:5]) + (" …" if len(foreign) > 5 else "")
    return ManifestError(
        "BATCH_OWNER",
        f"批次含有不属于签名节点 {plan.signer} 及其下级节点的记录（所有者 {shown}），整批拒绝",
        f"the batch holds records owned by {shown}, neither the signer {plan.signer} nor a node below it; "
        "the whole batch is refused",
        f"{manifest.edge} batch {manifest.batch_id}",
    )


def load(
    ex: Exchange,
    run_uri: str,
    *,
    resolve_conn: ResolveConn = None,
    keep_files: bool = False,
    cancel: CancelToken | None = None,
    lock_wait: float = STEP_LOCK_WAIT,
) -> dict[str, Any]:
    """Verify and apply every sealed batch of the run; returns the run's summary.

    A batch that fails verification is recorded as a failed transfer and stops the run
    (SyncError); batches loaded before it stay loaded. Once the run has committed, its folder keeps
    only the summary (``keep_files`` keeps the step files, for tests and benchmarks).
    """
    run = path_of(run_uri)
    meta = _read_json(run / "run.json")
    plan = _plan(ex, meta["edge"])
    with spool.edge_lock(ex.spool, plan.edge.id, wait=lock_wait):
        summary = _load(ex, plan, run, meta, resolve_conn=resolve_conn, cancel=cancel)
        if keep_files:
            _write_json(run / spool.SUMMARY, summary)
        else:
            spool.finish(run, summary, dumps)
        spool.abandon_older(run.parent, keep=run.name, started=float(meta.get("started_epoch") or 0))
    return summary


def _load(
    ex: Exchange,
    plan: _Plan,
    run: Path,
    meta: dict[str, Any],
    *,
    resolve_conn: ResolveConn,
    cancel: CancelToken | None,
) -> dict[str, Any]:
    edge = plan.edge
    spec = schemas.get(plan.dataset)
    lib = libraries(ex, edge.target, resolve_conn)
    extracted = _read_json(run / "extract.json")
    validated = _read_json(run / "validate.json")
    sealed = _read_json(run / "sealed.json")["manifests"]
    trust = TrustList.load(ex.trust_list)
    cols = hash_columns(plan.dataset)
    schema_id = schema_fingerprint(spec.schema)
    counters = ("batches", "rows", "inserted", "updated", "unchanged", "stale", "conflicts", "rejected")
    totals = dict.fromkeys((*counters, "duplicates"), 0)
    by_part: dict[int, list[dict[str, Any]]] = {}
    for entry in sealed:
        by_part.setdefault(entry["part"], []).append(entry)

    def prepare(item: tuple[int, dict[str, Any]]) -> tuple[Manifest, pa.Table, np.ndarray]:
        p, entry = item
        manifest = Manifest.from_json(json.dumps(entry["manifest"]))
        table = pa.Table.from_batches([_read_batch(run / validated["parts"][p]["file"], entry["batch"])])
        return manifest, table, row_hashes(table, cols)

    # The next batch is read and hashed on a worker thread while the current one is written.
    items = [(p, entry) for p in range(len(validated["parts"])) for entry in by_part.get(p, [])]
    prepared = _prefetched(items, prepare)
    archived: list[str] = []
    left = [*extracted.get("left", []), *validated.get("left", [])]
    for p, part in enumerate(validated["parts"]):
        entries = by_part.get(p, [])
        rejects = _rejects(run, part["rejects"]) if entries else {}
        for entry in entries:
            _check(cancel)  # between batches: each batch's transaction is whole or absent
            manifest, table, leaves = next(prepared)
            if lib.loaded(manifest.batch_id):
                totals["duplicates"] += 1
                continue
            state = lib.state(edge.id)
            expected = state["last_manifest_hash"] if state else ""
            try:
                verify(
                    manifest,
                    trust,
                    expected_prev=expected,
                    leaves=leaves,
                    rows=table.num_rows,
                    schema=schema_id,
                    signer=plan.signer,
                    edge=edge.id,
                    target=edge.target,
                    dataset=plan.dataset,
                )
                problem = _owner_problem(ex, plan, manifest, table)
                if problem is not None:
                    raise problem
            except ManifestError as exc:
                _reject_batch(lib, plan, manifest, exc)
                raise SyncError(
                    exc.code, exc.message_zh, exc.message_en, f"{edge.id} batch {manifest.batch_id[:12]}"
                ) from None
            rows = _with_meta(
                table,
                spec.names,
                leaves,
                manifest.batch_id,
                manifest.source if edge.source_kind == "node" else edge.source,
            )
            try:
                result = lib.load_batch(
                    edge=edge.id,
                    dataset=plan.dataset,
                    source=edge.source,
                    manifest_json=manifest.to_json(),
                    manifest_hash=manifest.hash,
                    batch_id=manifest.batch_id,
                    prev_hash=manifest.prev_hash,
                    rows=rows,
                    rejected=rejects.get(entry["batch"], []),
                    cursor=manifest.cursor_to,
                )
            except StoreError as exc:
                raise SyncError(exc.code, exc.message_zh, exc.message_en, exc.where) from None
            totals["batches"] += 1
            for k in counters[1:]:
                totals[k] += getattr(result, k)
        origin = part.get("origin")
        if origin and edge.source_kind == "system" and plan.folder is not None and Path(origin).exists():
            # Archived only if it is still the file that was read: a writer that appended since
            # gets the whole file read again by the next run (the rows already loaded are no-ops).
            drop = _drop_of(origin, part.get("fingerprint"))
            if archive(Path(origin), plan.folder, expect=drop) is None:
                left.append({"file": origin, "why": "changed since it was read"})
            else:
                archived.append(origin)
    if not sealed:
        lib.note_success(edge.id, plan.dataset, edge.source)
    quarantined = [*extracted.get("quarantined", []), *validated.get("quarantined", [])]
    return {
        **{k: v for k, v in meta.items() if k not in ("cursor_from", "started_epoch")},
        **totals,
        "quarantined": [{"file": Path(q["file"]).name, "code": q["code"]} for q in quarantined],
        "left": [{"file": Path(f["file"]).name, "why": f["why"]} for f in left],
        "archived": len(archived),
        "finished_at": _now().isoformat(),
    }


def _prefetched(items: list[Any], fn: Callable[[Any], Any]) -> Iterator[Any]:
    """``fn`` of each item in order, computing the next one on a worker thread meanwhile."""
    if not items:
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(fn, items[0])
        for i in range(len(items)):
            current = pending.result()
            if i + 1 < len(items):
                pending = pool.submit(fn, items[i + 1])
            yield current


def _read_batch(path: Path, index: int) -> pa.RecordBatch:
    try:
        with pa.OSFile(str(path)) as source:
            return pa.ipc.open_file(source).get_batch(index)
    except FileNotFoundError:
        raise spool.SpoolError(
            "SPOOL_MISSING",
            "运行目录中缺少上一步的文件：请重新运行同步",
            "a file of the previous step is missing from the run folder: run the sync again",
            str(path),
        ) from None
    except (pa.ArrowException, OSError, IndexError) as exc:
        raise spool.corrupt(path, exc) from None


_HEX = np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)), dtype=np.uint8).reshape(256, 2)


def hex_column(leaves: np.ndarray) -> pa.Array:
    """Leaf hashes (n, 32) as a string column of 64 lowercase hex digits, without a Python loop.

    >>> hex_column(np.array([[0xAB] * 32], dtype=np.uint8))[0].as_py() == "ab" * 32
    True
    """
    n = len(leaves)
    digits = _HEX[leaves].reshape(n * 64)
    offsets = np.arange(0, 64 * (n + 1), 64, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(digits.tobytes()))


def _with_meta(table: pa.Table, names: list[str], leaves: np.ndarray, batch_id: str, source: str) -> pa.Table:
    n = table.num_rows
    stamp = pa.scalar(_now(), pa.timestamp("us", tz="UTC"))
    return pa.table(
        {
            **{name: table.column(name) for name in names},
            "_owner": table.column("_owner"),
            "_hash": hex_column(leaves),
            "_batch": pa.repeat(pa.scalar(batch_id, pa.string()), n),
            "_leaf": pa.array(np.arange(n, dtype=np.int32)),
            "_source": pa.repeat(pa.scalar(source, pa.string()), n),
            "_flags": table.column("_flags"),
            "_synced_at": pa.repeat(stamp, n),  # restamped inside the load's transaction
        }
    )


def _reject_batch(lib: Library, plan: _Plan, manifest: Manifest, exc: TongbanError) -> None:
    lib.record_failure(
        kind="batch",
        edge=plan.edge.id,
        dataset=plan.dataset,
        source=plan.edge.source,
        codes=[exc.code],
        message_zh=exc.message_zh,
        message_en=exc.message_en,
        where=exc.where,
        batch_id=manifest.batch_id,
        payload={"manifest": json.loads(manifest.to_json())},
    )


# -- whole runs, failures and status ------------------------------------------------------------------


def record_run_failure(
    ex: Exchange, edge_id: str, exc: BaseException, *, log_url: str = "", resolve_conn: ResolveConn = None
) -> None:
    """Keep a failed run of the edge as a failed transfer (counting attempts) and note the error."""
    edge = ex.edge(edge_id)
    if isinstance(exc, TongbanError):
        code, zh, en, where = exc.code, exc.message_zh, exc.message_en, exc.where
    else:
        code, zh, en, where = "RUN_FAILED", f"运行失败：{exc}", f"run failed: {exc}", ""
    try:
        lib = libraries(ex, edge.target, resolve_conn)
        lib.migrate()
        lib.record_failure(
            kind="run",
            edge=edge.id,
            dataset=edge.dataset,
            source=edge.source,
            codes=[code],
            message_zh=zh,
            message_en=en,
            where=where,
            payload={"log_url": log_url} if log_url else None,
        )
        lib.note_attempt(edge.id, edge.dataset, edge.source, f"{code}: {en}")
    except TongbanError:
        pass  # the target library itself is down: the scheduler's own log keeps the failure


def sync_edge(
    ex: Exchange,
    edge_id: str,
    *,
    full: bool = False,
    resolve_conn: ResolveConn = None,
    on_rows: Callable[[int], None] | None = None,
    cancel: CancelToken | None = None,
    lock_wait: float = 0.0,
) -> dict[str, Any]:
    """Run the four steps of one edge in this process, holding the edge's lock throughout.

    A failure is recorded as a failed run, then raised. Another run holding the edge waits up to
    ``lock_wait`` seconds, then EDGE_BUSY (not recorded: that other run is doing the work). A stop
    asked for through ``cancel`` ends the run between batches (:class:`Interrupted`); what committed
    stays committed, the run's folder is removed, and the next run resumes from the committed cursor.
    """
    edge = ex.edge(edge_id)
    with spool.edge_lock(ex.spool, edge.id, wait=lock_wait):
        run_uri = None
        try:
            run_uri = extract(
                ex, edge_id, full=full, resolve_conn=resolve_conn, on_rows=on_rows, cancel=cancel
            )
            validate(ex, run_uri, cancel=cancel)
            seal(ex, run_uri, resolve_conn=resolve_conn, cancel=cancel)
            return load(ex, run_uri, resolve_conn=resolve_conn, cancel=cancel)
        except TongbanError as exc:
            record_run_failure(ex, edge_id, exc, resolve_conn=resolve_conn)
            raise
        except Interrupted:
            if run_uri is not None:
                spool.discard(path_of(run_uri))
            raise


def status(
    ex: Exchange, *, resolve_conn: ResolveConn = None, now: _dt.datetime | None = None
) -> list[dict[str, Any]]:
    """One entry per edge: rows loaded and failed, open failures, last success and lag in seconds.

    Lag is the time since the edge last loaded successfully (None before its first load).
    """
    now = now or _now()
    out = []
    states: dict[str, dict[str, dict[str, Any]]] = {}
    open_failures: dict[str, dict[str, int]] = {}
    for edge in ex.edges:
        if edge.target not in states:
            try:
                lib = libraries(ex, edge.target, resolve_conn)
                lib.migrate()
                states[edge.target] = {s["edge"]: s for s in lib.states()}
                open_failures[edge.target] = lib.failure_counts()
            except TongbanError:
                states[edge.target], open_failures[edge.target] = {}, {}
        st = states[edge.target].get(edge.id) or {}
        last = st.get("last_success")
        out.append(
            {
                "edge": edge.id,
                "dataset": edge.dataset,
                "source": edge.source,
                "target": edge.target,
                "rows_loaded": int(st.get("rows_loaded") or 0),
                "rows_failed": int(st.get("rows_failed") or 0),
                "batches": int(st.get("batches") or 0),
                "open_failures": open_failures[edge.target].get(edge.id, 0),
                "last_success": last.isoformat() if last else None,
                "lag_seconds": round((now - last).total_seconds(), 3) if last else None,
                "last_error": st.get("last_error"),
            }
        )
    return out
