"""Run a dataset contract over Arrow batches: read, check, report.

>>> from schemas import population
>>> v = Validator(population.DATASET)
>>> batch = pa.table({
...     'id_number': ['11010519491231002X', '110105194912310021'],
...     'name': ['张三', '李四'], 'gender': ['2', '2'], 'ethnicity': ['01', '01'],
...     'birth_date': ['1949-12-31', '1949-12-31'], 'household_division': ['110105', '110105'],
...     'household_address': ['北京市朝阳区', '北京市朝阳区'], 'status': ['normal', 'normal'],
...     'updated_at': ['2024-01-01T08:00:00+08:00', '2024-01-01T08:00:00+08:00']})
>>> result = v.validate(batch)
>>> [(r.row, r.codes) for r in result.reports()]
[(2, ['ID_CHECKSUM'])]
>>> result.accepted().num_rows
1
"""

from __future__ import annotations

import datetime as _dt
import os
from collections import Counter
from collections.abc import Iterable, Iterator, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas import coerce
from schemas.contract import Dataset, Kind
from schemas.contract import Field as FieldSpec
from schemas.keys import KeyTracker
from schemas.rules import RULES, Severity
from schemas.standards import gb11643, gb32100, gbt2260
from schemas.standards.arrays import decimal, fixed_width, valid_mask
from schemas.standards.dates import today_days

__all__ = ["BatchResult", "Checker", "ContractError", "Finding", "RowReport", "Summary", "Validator"]


_PARALLEL_ROWS = 50_000


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2)), thread_name_prefix="validate")


class _Columns(MutableMapping[str, pa.Array]):
    """A batch's canonical columns; one still being read on a worker thread is waited for when used."""

    def __init__(self, dataset: Dataset, n: int) -> None:
        self._dataset = dataset
        self._n = n
        self._values: dict[str, pa.Array] = {}
        self._pending: dict[str, Future[tuple[pa.Array, list[Finding]]]] = {}
        self._findings: dict[str, list[Finding]] = {}

    def put(
        self, name: str, read: Future[tuple[pa.Array, list[Finding]]] | tuple[pa.Array, list[Finding]]
    ) -> None:
        if isinstance(read, Future):
            self._pending[name] = read
        else:
            self._values[name], self._findings[name] = read

    def __getitem__(self, name: str) -> pa.Array:
        if name in self._pending:
            self._values[name], self._findings[name] = self._pending.pop(name).result()
        if name not in self._values:
            if name not in self._dataset.names:
                raise KeyError(name)
            self._values[name] = pa.nulls(self._n, self._dataset.field(name).type)  # optional, not supplied
        return self._values[name]

    def __setitem__(self, name: str, values: pa.Array) -> None:
        self[name]  # settle a pending read first, so that its findings are kept
        self._values[name] = values

    def __delitem__(self, name: str) -> None:
        raise TypeError("columns cannot be removed")

    def __iter__(self) -> Iterator[str]:
        return iter(self._dataset.names)

    def __len__(self) -> int:
        return len(self._dataset.names)

    def reading_findings(self) -> list[Finding]:
        """What reading found, in field order (waits for every column)."""
        for name in self._dataset.names:
            self[name]  # wait for the read
        return [f for name in self._dataset.names for f in self._findings.get(name, [])]


class ContractError(ValueError):
    """An extract that cannot be validated at all (e.g. a required column is missing)."""

    def __init__(self, code: str, message_zh: str, message_en: str) -> None:
        super().__init__(message_en)
        self.code = code
        self.message_zh = message_zh
        self.message_en = message_en


@dataclass(frozen=True, slots=True)
class Finding:
    """Rows of one batch that break one rule in one field."""

    code: str
    field: str
    mask: np.ndarray
    detail: dict[int, tuple[str, str]] | None = None  # per row index: (zh, en) words for the message

    @property
    def severity(self) -> Severity:
        return RULES[self.code].severity


@dataclass(frozen=True, slots=True)
class RowReport:
    """Everything wrong with one row."""

    row: int  # 1-based data row in the extract
    key: str | None
    severity: Severity
    findings: tuple[tuple[str, str], ...]  # (code, field)
    message_zh: str
    message_en: str

    @property
    def codes(self) -> list[str]:
        seen: dict[str, None] = {}
        for code, _ in self.findings:
            seen.setdefault(code)
        return list(seen)

    def as_dict(self) -> dict[str, object]:
        return {
            "row": self.row,
            "key": self.key,
            "severity": str(self.severity),
            "codes": self.codes,
            "fields": [f for _, f in self.findings],
            "message_zh": self.message_zh,
            "message_en": self.message_en,
        }


class Checker:
    """What a dataset's own checks see: canonical columns and a way to report rows."""

    def __init__(
        self, dataset: Dataset, columns: MutableMapping[str, pa.Array], today: int, options: dict, n: int
    ) -> None:
        self.dataset = dataset
        self.columns = columns
        self.n = n
        self.today = today
        self.options = options
        self.findings: list[Finding] = []
        self._np_cache: dict[str, np.ndarray] = {}

    def flag(
        self, code: str, field_name: str, mask: np.ndarray, detail: dict[int, tuple[str, str]] | None = None
    ) -> None:
        """Report the rows of ``mask`` as breaking ``code`` in ``field_name``."""
        if code not in RULES:
            raise KeyError(f"unknown rule code {code}")
        if mask.any():
            self.findings.append(Finding(code, field_name, mask, detail))

    def present(self, name: str) -> np.ndarray:
        """True where the canonical value is not null."""
        return valid_mask(self.columns[name])

    def days(self, name: str) -> np.ndarray:
        """A date column as int64 day numbers (0 where null; check :meth:`present`)."""
        if name not in self._np_cache:
            col = self.columns[name]
            self._np_cache[name] = pc.fill_null(col.cast(pa.int32()), 0).to_numpy(zero_copy_only=False)
        return self._np_cache[name]

    def equals(self, name: str, value: str) -> np.ndarray:
        """True where the column equals ``value`` (False for nulls)."""
        return pc.fill_null(pc.equal(self.columns[name], value), False).to_numpy(zero_copy_only=False)

    def not_in(self, name: str, allowed: Iterable[str]) -> np.ndarray:
        """True where the value is present and not among ``allowed``."""
        col = self.columns[name]
        inside = pc.is_in(col, value_set=pa.array(sorted(allowed), type=col.type))
        return (~inside.to_numpy(zero_copy_only=False)) & self.present(name)

    def check_identity(
        self,
        name: str,
        *,
        rows: np.ndarray | None = None,
        gender: str | None = None,
        birth: str | None = None,
    ) -> None:
        """GB 11643 rules on an ID-number field (only ``rows`` when given); legacy numbers converted."""
        result = gb11643.check(self.columns[name])
        scope = result.present if rows is None else (rows & result.present)
        faults = result.faults
        self.flag("ID_FORMAT", name, scope & (faults == gb11643.BAD_FORMAT))
        self.flag("ID_CHECKSUM", name, scope & (faults == gb11643.BAD_CHECKSUM))
        self.flag(
            "ID_BIRTH_DATE",
            name,
            scope & ((faults == gb11643.BAD_BIRTH_DATE) | (faults == gb11643.FUTURE_BIRTH_DATE)),
        )
        ok = scope & (faults == gb11643.OK)
        self.flag("ID_LEGACY_15", name, ok & result.legacy)
        self.flag("ID_AREA_UNKNOWN", name, ok & ~result.area_known)
        if result.legacy.any():
            legacy = pa.array(result.legacy & scope)
            self.columns[name] = pc.if_else(legacy, result.normalized, self.columns[name])
        if gender is not None:
            male = self.equals(gender, "1")
            female = self.equals(gender, "2")
            self.flag("ID_GENDER_MISMATCH", gender, ok & ((male & ~result.male) | (female & result.male)))
        if birth is not None:
            differs = self.present(birth) & (self.days(birth) != result.birth_days)
            self.flag("ID_BIRTH_MISMATCH", birth, ok & differs)

    def check_uscc(self, name: str, *, rows: np.ndarray | None = None) -> None:
        """GB 32100 rules (with the embedded GB 11714 check) on a USCC field."""
        result = gb32100.check(self.columns[name], allowlist=self.options.get("uscc_allowlist", ()))
        scope = self.present(name) if rows is None else (rows & self.present(name))
        faults = result.faults
        self.flag("USCC_FORMAT", name, scope & (faults == gb32100.BAD_FORMAT))
        self.flag("USCC_CHECKSUM", name, scope & (faults == gb32100.BAD_CHECKSUM))
        self.flag("USCC_ORG_CHECKSUM", name, scope & (faults == gb32100.BAD_ORG_CHECKSUM))
        self.flag("USCC_ALLOWLISTED", name, scope & result.allowlisted)
        readable = scope & (faults == gb32100.OK) & (result.division != 0)
        self.flag("USCC_DIVISION_UNKNOWN", name, readable & ~result.division_known)

    def check_division(self, name: str) -> None:
        """GB/T 2260 rules on a division-code field."""
        cols, fits = fixed_width(self.columns[name], 6)
        digits = cols - np.uint8(48)
        six_digits = fits & (np.maximum.reduce(digits, axis=0) <= 9)
        present = self.present(name)
        self.flag("DIVISION_INVALID", name, present & ~six_digits)
        codes = np.where(six_digits, decimal(digits, np.int32), 0)
        self.flag("DIVISION_UNKNOWN", name, six_digits & ~gbt2260.is_known_array(codes))

    def check_migration(
        self, status: str = "status", moved_out: str = "moved_out", moved_to: str = "moved_to"
    ) -> None:
        """A record that moved (户口迁移, 企业迁移登记) names a real division as ``moved_to``, and only then."""
        self.check_division(moved_to)
        self.check_moved(status, moved_out, moved_to)

    def check_moved(self, status: str, moved_out: str, moved_to: str) -> None:
        """``moved_to`` is required when the status is moved out, and only then."""
        moving = self.equals(status, moved_out)
        has_target = self.present(moved_to)
        self.flag("MOVED_TO_MISSING", moved_to, moving & ~has_target)
        self.flag("MOVED_TO_UNEXPECTED", moved_to, ~moving & has_target & self.present(status))

    def not_future_time(self, name: str) -> None:
        """Times more than five minutes ahead of now are TIME_FUTURE (a clock is off)."""
        col = self.columns[name]
        ahead = pc.fill_null(pc.greater(col.cast(pa.int64()), self.options["now_us"] + 300_000_000), False)
        self.flag("TIME_FUTURE", name, ahead.to_numpy(zero_copy_only=False))

    def not_future(self, name: str) -> None:
        """Dates after today are DATE_FUTURE."""
        self.flag("DATE_FUTURE", name, self.present(name) & (self.days(name) > self.today))


@dataclass
class Summary:
    """Counts over everything validated so far."""

    dataset: str
    rows: int = 0
    accepted: int = 0
    rejected: int = 0
    flagged: int = 0  # accepted with warnings
    codes: Counter[str] = field(default_factory=Counter)
    ignored_columns: list[str] = field(default_factory=list)  # columns of the extract no field takes

    def as_dict(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "rows": self.rows,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "flagged": self.flagged,
            "codes": dict(sorted(self.codes.items())),
            "ignored_columns": self.ignored_columns,
        }


@dataclass
class BatchResult:
    """A validated batch: canonical rows and what is wrong with them."""

    dataset: Dataset
    first_row: int
    table: pa.Table
    findings: list[Finding]
    rejected: np.ndarray
    flagged: np.ndarray

    def accepted(self) -> pa.Table:
        """The rows that load (warnings included)."""
        return self.table.filter(pa.array(~self.rejected))

    def reports(self) -> Iterator[RowReport]:
        """One report per row with a finding, in row order."""
        per_row: dict[int, list[Finding]] = {}
        for finding in self.findings:
            for i in np.flatnonzero(finding.mask):
                per_row.setdefault(int(i), []).append(finding)
        keys = self.table.column(self.dataset.key)
        labels = {f.name: f.label for f in self.dataset.fields}
        for i in sorted(per_row):
            found = per_row[i]
            zh, en = [], []
            for f in found:
                rule = RULES[f.code]
                extra = f.detail.get(i) if f.detail else None
                label = f"{labels.get(f.field, f.field)}（{f.field}）"
                zh.append(rule.message("zh", label) + (f"，{extra[0]}" if extra else ""))
                en.append(rule.message("en", f.field) + (f", {extra[1]}" if extra else ""))
            severity = Severity.ERROR if self.rejected[i] else Severity.WARNING
            yield RowReport(
                row=self.first_row + i,
                key=keys[i].as_py(),
                severity=severity,
                findings=tuple((f.code, f.field) for f in found),
                message_zh="；".join(zh),
                message_en="; ".join(en),
            )


class Validator:
    """Validates the batches of one extract in order, remembering keys across batches."""

    def __init__(
        self,
        dataset: Dataset,
        *,
        timezone: str | None = None,
        uscc_allowlist: Iterable[str] = (),
        today: _dt.date | None = None,
        check_duplicates: bool = True,
        spill_dir: Path | None = None,
    ) -> None:
        """``spill_dir``: a private folder where the keys seen spill beyond a bound (memory stays
        bounded whatever the extract's size); without it every key seen stays in memory."""
        self.dataset = dataset
        self.timezone = coerce.check_zone(timezone) if timezone else None
        self.today = today_days(today)
        now = _dt.datetime.now(_dt.UTC)
        if today is not None:
            now = _dt.datetime.combine(
                today, _dt.time(23, 59, 59), tzinfo=_dt.timezone(_dt.timedelta(hours=8))
            )
        self.options = {
            "uscc_allowlist": frozenset(uscc_allowlist),
            "now_us": int(now.timestamp() * 1_000_000),
        }
        self.summary = Summary(dataset.name)
        self._keys = KeyTracker(spill_dir) if check_duplicates else None
        self._next_row = 1

    def close(self) -> None:
        """Remove the keys spilled to disk (the validator finds no repeats after this)."""
        if self._keys is not None:
            self._keys.close()

    def _read(self, batch: pa.Table) -> _Columns:
        names = set(batch.column_names)
        missing = [f.name for f in self.dataset.fields if f.required and f.name not in names]
        if missing:
            joined = ", ".join(missing)
            raise ContractError(
                "COLUMN_MISSING", f"缺少必需的列：{joined}", f"missing required columns: {joined}"
            )
        self.summary.ignored_columns = sorted(names - set(self.dataset.names))
        columns = _Columns(self.dataset, batch.num_rows)
        # Columns are independent and the kernels release the GIL: large batches read them on worker
        # threads, and the checks start on the first columns while the others are still being read.
        parallel = batch.num_rows >= _PARALLEL_ROWS
        for f in self.dataset.fields:
            if f.name in names:
                raw = batch.column(f.name)
                columns.put(
                    f.name, _pool().submit(self._read_field, f, raw) if parallel else self._read_field(f, raw)
                )
        return columns

    def _read_field(self, f: FieldSpec, raw: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, list[Finding]]:
        """One raw column in the field's canonical type, with its reading faults and REQUIRED."""
        raw = raw.combine_chunks() if isinstance(raw, pa.ChunkedArray) else raw
        if f.kind is Kind.DATE:
            values, faults = coerce.read_date(raw)
        elif f.kind is Kind.TIMESTAMP:
            values, faults = coerce.read_timestamp(raw, timezone=self.timezone)
        elif f.kind is Kind.DECIMAL:
            values, faults = coerce.read_decimal(raw)
        elif f.kind is Kind.JSON:
            values, faults = coerce.read_json(raw)
        else:
            values, faults = coerce.read_text(raw, max_length=f.max_length, upper=f.kind is Kind.IDENTIFIER)
        findings: list[Finding] = []
        unreadable = np.zeros(len(raw), dtype=bool)
        for code, mask in faults.items():
            if mask.any():
                findings.append(Finding(code, f.name, mask))
                unreadable |= mask
        if f.required:
            missing_value = ~valid_mask(values) & ~unreadable
            if missing_value.any():
                findings.append(Finding("REQUIRED", f.name, missing_value))
        return values, findings

    def validate(self, batch: pa.Table | pa.RecordBatch) -> BatchResult:
        """Validate the next batch of the extract (rows are numbered on from the last batch)."""
        if isinstance(batch, pa.RecordBatch):
            batch = pa.Table.from_batches([batch])
        n = batch.num_rows
        columns = self._read(batch)
        checker = Checker(self.dataset, columns, self.today, self.options, n)
        first_row = self._next_row
        self.dataset.key_checks(checker)
        # The key is final now: look for repeated keys on another thread while the other checks run.
        pending = None
        if self._keys is not None:
            keys = checker.columns[self.dataset.key]
            if n >= _PARALLEL_ROWS:
                pending = _pool().submit(self._keys.add, keys, first_row=first_row)
            else:
                earlier = self._keys.add(keys, first_row=first_row)
        for f in self.dataset.fields:
            if f.kind is Kind.CODE and f.codes:
                checker.flag(f.code_rule, f.name, checker.not_in(f.name, f.codes))
        self.dataset.checks(checker)
        if self._keys is not None:
            if pending is not None:
                earlier = pending.result()
            dup = earlier > 0
            if dup.any():
                detail = {
                    int(i): (f"与第 {earlier[i]} 行重复", f"same as row {earlier[i]}")
                    for i in np.flatnonzero(dup)
                }
                checker.flag("KEY_DUPLICATE", self.dataset.key, dup, detail)
        # Findings of reading come first, in field order, then those of the checks.
        checker.findings[:0] = columns.reading_findings()
        rejected = np.zeros(n, dtype=bool)
        warned = np.zeros(n, dtype=bool)
        for finding in checker.findings:
            if finding.severity is Severity.ERROR:
                rejected |= finding.mask
            else:
                warned |= finding.mask
        flagged = warned & ~rejected
        table = self._table(checker.columns)
        self._next_row += n
        s = self.summary
        s.rows += n
        s.rejected += int(rejected.sum())
        s.accepted += n - int(rejected.sum())
        s.flagged += int(flagged.sum())
        for finding in checker.findings:
            s.codes[finding.code] += int(finding.mask.sum())
        return BatchResult(self.dataset, first_row, table, checker.findings, rejected, flagged)

    def _table(self, columns: MutableMapping[str, pa.Array]) -> pa.Table:
        schema = self.dataset.schema
        arrays = []
        for f in schema:
            col = columns[f.name]
            arrays.append(col if col.type == f.type else pc.cast(col, f.type))
        # Rejected rows may hold nulls in required fields, so the table's schema is nullable.
        nullable = pa.schema([f.with_nullable(True) for f in schema], metadata=schema.metadata)
        return pa.Table.from_arrays(arrays, schema=nullable)
