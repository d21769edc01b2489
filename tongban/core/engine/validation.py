"""Step 2, validate: map and check every extracted batch against the dataset's contract.

Accepted rows are written in canonical types with their owner and flags (``valid-NNNN.arrow``);
rejected rows with their codes and raw payload (``rejects-NNNN.jsonl``, private, gone once the run
commits). A drop file the contract cannot read at all (a required column missing) is quarantined and
kept as a failed transfer, and the other files go on; for a SQL system the same is a failed run.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import schemas
from connectors.mapping import Mapping
from schemas.errors import TongbanError
from schemas.validate import ContractError, Severity, Validator
from tongban.core import logs
from tongban.core.config import Exchange
from tongban.core.engine import spool
from tongban.core.engine.arrowio import private_sink, read_batches
from tongban.core.engine.base import STEP_LOCK_WAIT, check, path_of, uri
from tongban.core.engine.extraction import drop_of, quarantine_file
from tongban.core.engine.interrupt import CancelToken
from tongban.core.engine.libraries import Libraries, using
from tongban.core.engine.plan import Plan, plan_for
from tongban.core.engine.records import (
    ExtractPart,
    ExtractRecord,
    LeftFile,
    QuarantinedFile,
    RunRecord,
    ValidateRecord,
    ValidBatch,
    ValidPart,
    read,
    write,
)
from tongban.core.errors import SyncError
from tongban.core.store import META_COLUMNS, SEQ, dumps

__all__ = ["validate"]

#: Columns of a library's rows that are not the dataset's: never taken from a local system's extract.
_META = {*META_COLUMNS, SEQ}
_log = logs.get("tongban.engine")


class _FileRefused(Exception):
    """A drop file the contract cannot read at all (e.g. a required column missing)."""

    def __init__(self, error: TongbanError) -> None:
        super().__init__(error.code)
        self.error = error


def validate(
    ex: Exchange,
    run_uri: str,
    *,
    cancel: CancelToken | None = None,
    lock_wait: float = STEP_LOCK_WAIT,
    libs: Libraries | None = None,
) -> str:
    """Check every extracted batch against the dataset's contract; returns the run folder's URI."""
    run = path_of(run_uri)
    meta = read(run / "run.json", RunRecord)
    plan = plan_for(ex, meta.edge)
    started = time.monotonic()
    by_code: Counter[str] = Counter()
    with spool.edge_lock(ex.spool, plan.edge.id, wait=lock_wait), using(ex, libs) as libs:
        extracted = read(run / "extract.json", ExtractRecord)
        out_parts: list[ValidPart] = []
        quarantined: list[QuarantinedFile] = []
        left: list[LeftFile] = []
        totals = {"rows": 0, "accepted": 0, "rejected": 0, "flagged": 0}
        for p, part in enumerate(extracted.parts, start=1):
            if part.file is None:
                out_parts.append(ValidPart(None, None, part.origin, part.fingerprint, []))
                continue
            try:
                out, counts = _validate_part(plan, run, p, part, cancel, by_code)
            except _FileRefused as refused:
                for name in (f"valid-{p:04d}.arrow", f"rejects-{p:04d}.jsonl"):
                    (run / name).unlink(missing_ok=True)
                drop = drop_of(part.origin or "", part.fingerprint)
                assert drop is not None
                lib = libs.get(plan.edge.target)
                if not (drop.unchanged() and quarantine_file(lib, plan, drop, refused.error, quarantined)):
                    left.append(LeftFile(str(drop.path), "changed while it was read"))
                out_parts.append(ValidPart(None, None, None, None, []))
                continue
            out_parts.append(out)
            for k, v in counts.items():
                totals[k] += v
        write(
            run / "validate.json",
            ValidateRecord(**totals, parts=out_parts, quarantined=quarantined, left=left),
        )
    logs.event(
        _log,
        "validate",
        f"validate {plan.edge.id}: {totals['accepted']} accepted, {totals['rejected']} rejected",
        step="validate",
        edge=plan.edge.id,
        run_id=meta.run_id,
        **totals,
        rejected_by_code=dict(by_code.most_common()) or None,
        quarantined=[q.code for q in quarantined] or None,
        seconds=round(time.monotonic() - started, 3),
    )
    return uri(run)


def _validate_part(
    plan: Plan,
    run: Path,
    p: int,
    part: ExtractPart,
    cancel: CancelToken | None,
    by_code: Counter[str] | None = None,
) -> tuple[ValidPart, dict[str, int]]:
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
    out_schema = pa.schema(
        [f.with_nullable(True) for f in spec.schema]
        + [pa.field("_owner", pa.string()), pa.field("_flags", pa.string())],
        metadata=spec.schema.metadata,
    )
    batches: list[ValidBatch] = []
    where = part.origin or plan.edge.source
    mapping = plan.mapping
    if part.queued == "resubmit":  # operators' edited rows: already in the dataset's names and codes
        mapping, where = Mapping(), f"{plan.edge.source} resubmitted"
    assert part.file is not None
    with (
        pa.ipc.new_file(private_sink(run / valid_name), out_schema) as writer,
        spool.open_private(run / rejects_name) as rejects,
    ):
        for j, raw in enumerate(read_batches(run / part.file)):
            check(cancel)
            table = pa.Table.from_batches([raw])
            # A library's rows carry their owners; a local system's rows are all the county's, whatever
            # columns its extract happens to have (a file exported from a library keeps its meta columns).
            owners = table.column("_owner") if plan.owner is None and "_owner" in table.column_names else None
            meta = [name for name in table.column_names if name in _META]
            mapped = mapping.apply(table.drop_columns(meta))
            try:
                result = validator.validate(mapped)
            except ContractError as exc:
                error = SyncError(exc.code, exc.message_zh, exc.message_en, where)
                if part.origin:
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
                    if by_code is not None:
                        by_code.update(report.codes)
                else:
                    flags[i] = ",".join(report.codes)
            fields = [name for name in spec.names if name in mapped.column_names]
            picked = np.array(bad_rows, dtype=np.int64)
            # Only the dataset's fields are kept: columns the mapping does not map (a register's phone
            # number, a former name) are nobody's business here.
            payloads = _payloads(mapped.select(fields), picked) if bad_rows else []
            for report, payload in zip(reports, payloads, strict=True):
                line = {
                    "batch": j,
                    "row": report.row,
                    "key": report.key,
                    "codes": report.codes,
                    "zh": report.message_zh,
                    "en": report.message_en,
                    "payload": payload,
                    "where": f"{where}:{report.row}",
                }
                if part.failures and 0 < report.row <= len(part.failures):
                    line["failure"] = part.failures[report.row - 1]
                rejects.write(dumps(line) + "\n")
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
            batches.append(ValidBatch(accepted.num_rows, rejected, part.batches[j].cursor))
            totals["rows"] += n
            totals["accepted"] += accepted.num_rows
            totals["rejected"] += rejected
            totals["flagged"] += int(result.flagged.sum())
    return ValidPart(valid_name, rejects_name, part.origin, part.fingerprint, batches, part.queued), totals


def _payloads(table: pa.Table, rows: np.ndarray) -> list[dict]:
    return table.take(pa.array(rows, pa.int64())).to_pylist()
