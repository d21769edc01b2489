"""Step 4, load: verify every sealed batch and apply it to the target library, one transaction each.

A batch is checked for its key, its signature and what the signature is bound to (the edge's own
signer, edge, target and dataset, and rows owned by the signer or a node below it), then its chain and
root; one that fails is refused whole, kept as a failed transfer, and the run stops. A loaded drop
file is archived only if it is still the file that was read. Once the run has committed its folder
keeps only the summary.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import schemas
from connectors.dropfolder import archive
from schemas.errors import TongbanError
from tongban.core import logs
from tongban.core.config import Exchange
from tongban.core.engine import allocators, spool
from tongban.core.engine.arrowio import hex_column, read_batch
from tongban.core.engine.base import STEP_LOCK_WAIT, ResolveConn, check, now, path_of
from tongban.core.engine.extraction import drop_of
from tongban.core.engine.interrupt import CancelToken
from tongban.core.engine.libraries import Libraries, using
from tongban.core.engine.plan import Plan, plan_for
from tongban.core.engine.records import (
    ExtractRecord,
    LeftFile,
    LoadSummary,
    QuarantinedFile,
    RunRecord,
    SealRecord,
    ValidateRecord,
    read,
    write,
)
from tongban.core.engine.sealing import hash_columns
from tongban.core.errors import SyncError
from tongban.core.masking import mask_text
from tongban.core.store import FailedRow, Library, StoreError
from tongban.core.trust import TrustList, from_b64url, from_iso
from tongban.core.trust.manifest import Manifest, ManifestError, schema_fingerprint, verify
from tongban.core.trust.merkle import row_hashes

__all__ = ["COUNTERS", "apply_batch", "load", "rows_with_meta", "summary_of", "trusted_list"]

_log = logs.get("tongban.engine")

COUNTERS = ("batches", "rows", "inserted", "updated", "unchanged", "stale", "conflicts", "rejected")


def load(
    ex: Exchange,
    run_uri: str,
    *,
    resolve_conn: ResolveConn = None,
    keep_files: bool = False,
    cancel: CancelToken | None = None,
    lock_wait: float = STEP_LOCK_WAIT,
    libs: Libraries | None = None,
) -> dict[str, Any]:
    """Verify and apply every sealed batch of the run; returns the run's summary.

    A batch that fails verification is recorded as a failed transfer and stops the run
    (SyncError); batches loaded before it stay loaded. Once the run has committed, its folder keeps
    only the summary (``keep_files`` keeps the step files, for tests and benchmarks).
    """
    allocators.give_back()
    run = path_of(run_uri)
    if (run / spool.SUMMARY).exists() and not (run / "run.json").exists():
        # The run committed and kept only its summary: this is a retry of a task whose worker died
        # after the commit (Airflow runs it again). Loading is done; the answer is the same summary.
        return read(run / spool.SUMMARY, LoadSummary).as_dict()
    meta = read(run / "run.json", RunRecord)
    plan = plan_for(ex, meta.edge)
    started = time.monotonic()
    with spool.edge_lock(ex.spool, plan.edge.id, wait=lock_wait), using(ex, libs, resolve_conn) as libs:
        signed = [entry.manifest for entry in read(run / "sealed.json", SealRecord).manifests]
        summary = _load(ex, plan, run, meta, lib=libs.get(plan.edge.target), cancel=cancel)
        return finish_run(plan, run, meta, summary, signed, started, keep_files=keep_files)


def finish_run(
    plan: Plan,
    run: Path,
    meta: RunRecord,
    summary: LoadSummary,
    signed: list[dict[str, Any]],
    started: float,
    *,
    keep_files: bool = False,
) -> dict[str, Any]:
    """Keep the committed run's summary (only it, unless ``keep_files``), abandon the edge's older
    unfinished runs, and log the load; returns the summary."""
    write(run / spool.SUMMARY, summary)
    if not keep_files:
        spool.finish(run)
    spool.abandon_older(run.parent, keep=run.name, started=meta.started_epoch)
    out = summary.as_dict()
    logs.event(
        _log,
        "load",
        f"load {plan.edge.id}: {out['inserted']} inserted, {out['updated']} updated, "
        f"{out['unchanged']} unchanged, {out['rejected']} rejected, {out['conflicts']} conflicts",
        step="load",
        edge=plan.edge.id,
        run_id=meta.run_id,
        target=plan.edge.target,
        **{k: out.get(k) for k in (*COUNTERS, "duplicates", "archived")},
        quarantined=[q["code"] for q in out.get("quarantined") or []] or None,
        batch_id=[m.get("batch_id") for m in signed] or None,
        root=[m.get("merkle_root") for m in signed] or None,
        seconds=round(time.monotonic() - started, 3),
    )
    return out


def _load(
    ex: Exchange,
    plan: Plan,
    run: Path,
    meta: RunRecord,
    *,
    lib: Library,
    cancel: CancelToken | None,
) -> LoadSummary:
    edge = plan.edge
    spec = schemas.get(plan.dataset)
    extracted = read(run / "extract.json", ExtractRecord)
    validated = read(run / "validate.json", ValidateRecord)
    sealed = read(run / "sealed.json", SealRecord).manifests
    trust = trusted_list(ex, lib)
    cols = hash_columns(plan.dataset)
    schema_id = schema_fingerprint(spec.schema)
    totals = dict.fromkeys((*COUNTERS, "duplicates"), 0)
    by_part: dict[int, list[Any]] = {}
    for entry in sealed:
        by_part.setdefault(entry.part, []).append(entry)

    def prepare(item: tuple[int, Any]) -> tuple[Manifest, pa.Table, np.ndarray]:
        p, entry = item
        manifest = Manifest.from_json(json.dumps(entry.manifest))
        file = validated.parts[p].file
        assert file is not None
        table = pa.Table.from_batches([read_batch(run / file, entry.batch, require=[*cols, "_flags"])])
        return manifest, table, row_hashes(table, cols)

    # The next batch is read and hashed on a worker thread while the current one is written.
    items = [(p, entry) for p in range(len(validated.parts)) for entry in by_part.get(p, [])]
    prepared = _prefetched(items, prepare)
    archived = 0
    left = [*extracted.left, *validated.left]
    for p, part in enumerate(validated.parts):
        entries = by_part.get(p, [])
        rejects = _rejects(run, part.rejects) if entries else {}
        loaded_ids: list[str] = []
        for entry in entries:
            check(cancel)  # between batches: each batch's transaction is whole or absent
            manifest, table, leaves = next(prepared)
            if apply_batch(
                ex, plan, lib, trust, schema_id, manifest, table, leaves, rejects.get(entry.batch, []), totals
            ):
                loaded_ids.append(manifest.batch_id)
        if extracted.parts[p].queued == "resubmit" and entries:
            # Operators' edited rows loaded: their failures are resolved (those rejected again reopened).
            lib.resolve_resubmitted(extracted.parts[p].failures, loaded_ids)
        if (
            part.origin
            and edge.source_kind == "system"
            and plan.folder is not None
            and Path(part.origin).exists()
        ):
            # Archived only if it is still the file that was read: a writer that appended since
            # gets the whole file read again by the next run (the rows already loaded are no-ops).
            if archive(Path(part.origin), plan.folder, expect=drop_of(part.origin, part.fingerprint)) is None:
                left.append(LeftFile(part.origin, "changed since it was read"))
            else:
                archived += 1
                # A file of this name loaded: a quarantined one it replaces (or a retry) is resolved.
                lib.resolve_file(edge.id, Path(part.origin).name)
    if not sealed:
        lib.note_success(edge.id, plan.dataset, edge.source)
    return summary_of(meta, totals, [*extracted.quarantined, *validated.quarantined], left, archived)


def summary_of(
    meta: RunRecord,
    totals: dict[str, int],
    quarantined: list[QuarantinedFile],
    left: list[LeftFile],
    archived: int,
) -> LoadSummary:
    """The run's summary (``load.json``): counts, and masked names of the files it left or quarantined."""
    return LoadSummary(
        edge=meta.edge,
        dataset=meta.dataset,
        source=meta.source,
        source_kind=meta.source_kind,
        target=meta.target,
        run_id=meta.run_id,
        started_at=meta.started_at,
        full=meta.full,
        **totals,
        # File names may hold an identity number (one file per application): masked, like every output.
        quarantined=[{"file": mask_text(Path(q.file).name), "code": q.code} for q in quarantined],
        left=[{"file": mask_text(Path(f.file).name), "why": f.why} for f in left],
        archived=archived,
        finished_at=now().isoformat(),
    )


def apply_batch(
    ex: Exchange,
    plan: Plan,
    lib: Library,
    trust: TrustList,
    schema_id: str,
    manifest: Manifest,
    table: pa.Table,
    leaves: np.ndarray,
    rejected: list[FailedRow],
    totals: dict[str, int],
    prepared: pa.Table | None = None,
    presealed: tuple[str, pa.Table] | None = None,
) -> bool:
    """Verify one sealed batch (key, signature, binding, chain, root, owners) and apply it in one
    transaction with its failed rows and its cursor; counts go into ``totals``. A batch that fails
    verification is kept as a failed transfer and stops the run (SyncError). ``prepared``: the rows
    with their meta columns, built beforehand by :func:`rows_with_meta` from this very ``table``,
    ``leaves`` and ``manifest`` (an overlapped run builds them on its checker thread), and
    ``presealed`` those rows sealed there too (see :meth:`Library.load_batch`). Returns whether
    the batch was loaded (False: it had been already)."""
    edge = plan.edge
    if lib.loaded(manifest.batch_id, edge.id, manifest.hash):
        totals["duplicates"] += 1
        return False
    state = lib.state(edge.id)
    last = lib.last_manifest(edge.id)
    try:
        verify(
            manifest,
            trust,
            expected_prev=state["last_manifest_hash"] if state else "",
            leaves=leaves,
            rows=table.num_rows,
            schema=schema_id,
            signer=plan.signer,
            edge=edge.id,
            target=edge.target,
            dataset=plan.dataset,
            not_before=from_iso(last["created_at"]) if last and last.get("created_at") else None,
        )
        problem = _owner_problem(ex, plan, manifest, table)
        if problem is not None:
            raise problem
    except ManifestError as exc:
        _reject_batch(lib, plan, manifest, exc)
        raise SyncError(
            exc.code, exc.message_zh, exc.message_en, f"{edge.id} batch {manifest.batch_id[:12]}"
        ) from None
    rows = (
        prepared
        if prepared is not None
        else rows_with_meta(plan, table, leaves, manifest.batch_id, manifest.source)
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
            rejected=rejected,
            cursor=manifest.cursor_to,
            presealed=presealed,
        )
    except StoreError as exc:
        raise SyncError(exc.code, exc.message_zh, exc.message_en, exc.where) from None
    totals["batches"] += 1
    for k in COUNTERS[1:]:
        totals[k] += getattr(result, k)
    return True


def rows_with_meta(plan: Plan, table: pa.Table, leaves: np.ndarray, batch_id: str, signer: str) -> pa.Table:
    """The batch's rows as the records table holds them: fields, owner, leaf hash, batch, position,
    source (a child library's batches keep their signer) and flags."""
    source = signer if plan.edge.source_kind == "node" else plan.edge.source
    return _with_meta(table, schemas.get(plan.dataset).names, leaves, batch_id, source)


def trusted_list(ex: Exchange, lib: Library) -> TrustList:
    """The trust list, checked against the root key the library pinned at init (TRUST_UNPINNED when it
    has none: a list signed by any other root key — a swapped file — is refused, TRUST_SIGNATURE)."""
    pin = lib.pinned_root()
    if pin is None:
        raise SyncError(
            "TRUST_UNPINNED",
            f"节点 {lib.node} 的库中没有固定的根公钥：先运行 tongban init",
            f"the library of node {lib.node} has no pinned root key: run `tongban init` first",
            lib.node,
        )
    try:
        return TrustList.load(ex.trust_list, root_public_key=from_b64url(pin))
    except TongbanError as exc:
        raise SyncError(exc.code, exc.message_zh, exc.message_en, exc.where) from None


def _rejects(run: Path, name: str | None) -> dict[int, list[FailedRow]]:
    """The rejected rows of a part, by batch (SPOOL_MISSING / SPOOL_CORRUPT when the file is bad)."""
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
                        r["row"],
                        r["key"],
                        r["codes"],
                        r["zh"],
                        r["en"],
                        r["payload"],
                        r.get("where", ""),
                        r.get("failure"),
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


def _owner_problem(ex: Exchange, plan: Plan, manifest: Manifest, table: pa.Table) -> ManifestError | None:
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


def _with_meta(table: pa.Table, names: list[str], leaves: np.ndarray, batch_id: str, source: str) -> pa.Table:
    n = table.num_rows
    stamp = pa.scalar(now(), pa.timestamp("us", tz="UTC"))
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


def _reject_batch(lib: Library, plan: Plan, manifest: Manifest, exc: TongbanError) -> None:
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
