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
from tongban.core.engine import allocators, spool
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
    allocators.give_back()
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
    assert part.file is not None
    with PartValidator(
        plan, run, p, part.origin, part.fingerprint, by_code, queued=part.queued, failures=part.failures
    ) as validator:
        for j, raw in enumerate(read_batches(run / part.file)):
            check(cancel)
            validator.add(j, raw, part.batches[j].cursor)
    return validator.part, validator.totals


class PartValidator:
    """Validates the batches of one extract part in order, writing ``valid-NNNN.arrow`` and
    ``rejects-NNNN.jsonl``; :meth:`add` also returns each batch's accepted rows and rejected rows,
    for a run whose steps overlap (:mod:`.pipeline`)."""

    def __init__(
        self,
        plan: Plan,
        run: Path,
        p: int,
        origin: str | None,
        fingerprint: dict | None,
        by_code: Counter[str] | None = None,
        *,
        queued: str | None = None,
        failures: list[int] | None = None,
    ) -> None:
        self.plan, self.origin, self.fingerprint, self.by_code = plan, origin, fingerprint, by_code
        self.queued, self.failures = queued, failures
        self.spec = spec = schemas.get(plan.dataset)
        self.totals = {"rows": 0, "accepted": 0, "rejected": 0, "flagged": 0}
        # A library's key is its primary key: only a local system's extract can repeat one. Keys seen
        # spill to the run's private folder beyond a bound, so memory does not grow with the extract.
        self.validator = Validator(
            spec,
            timezone=plan.timezone,
            uscc_allowlist=plan.allowlist,
            check_duplicates=plan.edge.source_kind == "system",
            spill_dir=run,
        )
        self.valid_name, self.rejects_name = f"valid-{p:04d}.arrow", f"rejects-{p:04d}.jsonl"
        self.schema = pa.schema(
            [f.with_nullable(True) for f in spec.schema]
            + [pa.field("_owner", pa.string()), pa.field("_flags", pa.string())],
            metadata=spec.schema.metadata,
        )
        self.batches: list[ValidBatch] = []
        self.where = origin or plan.edge.source
        self.mapping = plan.mapping
        if queued == "resubmit":  # operators' edited rows: already in the dataset's names and codes
            self.mapping, self.where = Mapping(), f"{plan.edge.source} resubmitted"
        self._writer = pa.ipc.new_file(private_sink(run / self.valid_name), self.schema)
        self._rejects = spool.open_private(run / self.rejects_name)

    def __enter__(self) -> PartValidator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._writer.close()
            self._rejects.close()
        finally:
            self.validator.close()

    @property
    def part(self) -> ValidPart:
        return ValidPart(
            self.valid_name, self.rejects_name, self.origin, self.fingerprint, self.batches, self.queued
        )

    def add(self, j: int, raw: pa.RecordBatch, cursor: dict | None) -> tuple[pa.RecordBatch, list[dict]]:
        """Validate batch ``j``; returns its accepted rows (as written) and its rejected rows (as lines)."""
        plan, spec, where = self.plan, self.spec, self.where
        table = pa.Table.from_batches([raw])
        # A library's rows carry their owners; a local system's rows are all the county's, whatever
        # columns its extract happens to have (a file exported from a library keeps its meta columns).
        owners = table.column("_owner") if plan.owner is None and "_owner" in table.column_names else None
        meta = [name for name in table.column_names if name in _META]
        mapped = self.mapping.apply(table.drop_columns(meta))
        try:
            result = self.validator.validate(mapped)
        except ContractError as exc:
            error = SyncError(exc.code, exc.message_zh, exc.message_en, where)
            if self.origin:
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
                if self.by_code is not None:
                    self.by_code.update(report.codes)
            else:
                flags[i] = ",".join(report.codes)
        fields = [name for name in spec.names if name in mapped.column_names]
        picked = np.array(bad_rows, dtype=np.int64)
        # Only the dataset's fields are kept: columns the mapping does not map (a register's phone
        # number, a former name) are nobody's business here.
        payloads = _payloads(mapped.select(fields), picked) if bad_rows else []
        lines = []
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
            if self.failures and 0 < report.row <= len(self.failures):
                line["failure"] = self.failures[report.row - 1]  # the failed transfer this row resubmits
            lines.append(line)
            self._rejects.write(dumps(line) + "\n")
        keep = pa.array(~result.rejected)
        accepted = result.table.filter(keep)
        if owners is not None:
            owner_col = pc.cast(owners, pa.string()).filter(keep)
        else:
            owner_col = pa.array([plan.owner] * accepted.num_rows, pa.string())
        flag_col = pa.array(flags, pa.string()).filter(keep)
        arrays = [*accepted.columns, owner_col, flag_col]
        out = pa.RecordBatch.from_arrays(
            [a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in arrays],
            schema=self.schema,
        )
        self._writer.write_batch(out)
        rejected = int(result.rejected.sum())
        self.batches.append(ValidBatch(accepted.num_rows, rejected, cursor))
        self.totals["rows"] += n
        self.totals["accepted"] += accepted.num_rows
        self.totals["rejected"] += rejected
        self.totals["flagged"] += int(result.flagged.sum())
        return out, lines


def _payloads(table: pa.Table, rows: np.ndarray) -> list[dict]:
    return table.take(pa.array(rows, pa.int64())).to_pylist()
