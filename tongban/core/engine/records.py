"""The files a run's steps hand each other, as typed records with a format version.

Each step writes one JSON file into the run's spool folder (``run.json`` and ``extract.json`` from
extract, ``validate.json``, ``sealed.json``, ``load.json``). Each is a dataclass here, written with
its ``kind`` and :data:`FORMAT`; reading checks both and every field, so a step that finds a file of
another version, another kind or with a field missing stops with SPOOL_FORMAT (a coded, permanent
error: run the sync again), never a ``KeyError``.

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "extract.json"
>>> write(path, ExtractRecord(rows=3, parts=[ExtractPart("extract-0001.arrow", None, None, [BatchInfo(3, None)])]))
>>> read(path, ExtractRecord).parts[0].batches[0].rows
3
>>> read(path, ValidateRecord)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
tongban.core.engine.spool.SpoolError: SPOOL_FORMAT: ...
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tongban.core.engine import spool

__all__ = [
    "FORMAT",
    "BatchInfo",
    "ExtractPart",
    "ExtractRecord",
    "LeftFile",
    "LoadSummary",
    "QuarantinedFile",
    "RunRecord",
    "SealRecord",
    "SealedBatch",
    "ValidBatch",
    "ValidPart",
    "ValidateRecord",
    "read",
    "write",
]

#: The version of the spool's files; a run folder written by another version is not read.
FORMAT = 1


@dataclass(frozen=True)
class RunRecord:
    """``run.json``: which edge the run belongs to and where its cursor started."""

    edge: str
    dataset: str
    source: str
    source_kind: str
    target: str
    run_id: str
    started_at: str
    started_epoch: float
    full: bool
    cursor_from: dict[str, Any] | None


@dataclass(frozen=True)
class QuarantinedFile:
    """A drop file moved to ``failed/`` (kept as a failed transfer)."""

    file: str
    moved_to: str
    code: str


@dataclass(frozen=True)
class LeftFile:
    """A drop file left in place for a later run (it changed while or after it was read)."""

    file: str
    why: str


@dataclass(frozen=True)
class BatchInfo:
    """One extracted batch: its rows and the cursor after it (None for files)."""

    rows: int
    cursor: dict[str, Any] | None


@dataclass(frozen=True)
class ExtractPart:
    """One Arrow IPC part of the extract: a SQL source's rows, or one drop file's."""

    file: str | None  # None: an empty drop file (archived once the run commits)
    origin: str | None  # the drop file it was read from
    fingerprint: dict[str, Any] | None  # the drop file's stat as read (see DropFile.as_dict)
    batches: list[BatchInfo]
    queued: str | None = None  # "retry" (re-read from the source) or "resubmit" (operators' edited rows)
    failures: list[int] = field(default_factory=list)  # a resubmit part's failure per row, in order


@dataclass(frozen=True)
class ExtractRecord:
    """``extract.json``."""

    rows: int
    parts: list[ExtractPart]
    quarantined: list[QuarantinedFile] = field(default_factory=list)
    left: list[LeftFile] = field(default_factory=list)


@dataclass(frozen=True)
class ValidBatch:
    """One validated batch: rows accepted, rows rejected, and its cursor."""

    rows: int
    rejected: int
    cursor: dict[str, Any] | None


@dataclass(frozen=True)
class ValidPart:
    """The validated rows of one extract part (``valid-NNNN.arrow``) and its rejects (``.jsonl``)."""

    file: str | None
    rejects: str | None
    origin: str | None
    fingerprint: dict[str, Any] | None
    batches: list[ValidBatch]
    queued: str | None = None


@dataclass(frozen=True)
class ValidateRecord:
    """``validate.json``."""

    rows: int
    accepted: int
    rejected: int
    flagged: int
    parts: list[ValidPart]
    quarantined: list[QuarantinedFile] = field(default_factory=list)
    left: list[LeftFile] = field(default_factory=list)


@dataclass(frozen=True)
class SealedBatch:
    """One signed manifest and the batch it describes (part and batch index)."""

    part: int
    batch: int
    manifest: dict[str, Any]


@dataclass(frozen=True)
class SealRecord:
    """``sealed.json``."""

    manifests: list[SealedBatch]


@dataclass(frozen=True)
class LoadSummary:
    """``load.json``: what the run did, in counts (no values: it outlives the run)."""

    edge: str
    dataset: str
    source: str
    source_kind: str
    target: str
    run_id: str
    started_at: str
    full: bool
    batches: int
    rows: int
    inserted: int
    updated: int
    unchanged: int
    stale: int
    conflicts: int
    rejected: int
    duplicates: int
    quarantined: list[dict[str, str]]
    left: list[dict[str, str]]
    archived: int
    finished_at: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_KINDS: dict[type, str] = {
    RunRecord: "run",
    ExtractRecord: "extract",
    ValidateRecord: "validate",
    SealRecord: "sealed",
    LoadSummary: "load",
}
R = TypeVar("R")


def write(path: Path, record: Any) -> None:
    """Write ``record`` (one of the step records) as JSON with its kind and format, privately."""
    from tongban.core.store import dumps

    data = {"format": FORMAT, "kind": _KINDS[type(record)], **dataclasses.asdict(record)}
    spool.write_json(path, data, dumps)


def read(path: Path, cls: type[R]) -> R:
    """The record of type ``cls`` at ``path``; SPOOL_MISSING, SPOOL_CORRUPT or SPOOL_FORMAT."""
    data = spool.read_json(path)
    kind = _KINDS[cls]
    if data.get("format") != FORMAT or data.get("kind") != kind:
        raise _format(
            path,
            f"应为第 {FORMAT} 版的 {kind} 文件，实为 {data.get('kind')!r} 第 {data.get('format')!r} 版",
            f"expected a {kind} file of format {FORMAT}, found {data.get('kind')!r} format {data.get('format')!r}",
        )
    return _build(cls, data, path, kind)


def _format(path: Path, zh: str, en: str) -> spool.SpoolError:
    return spool.SpoolError(
        "SPOOL_FORMAT",
        f"运行目录中的文件来自另一版本或不完整：{zh}；请重新运行同步",
        f"a file of the run folder is of another version or incomplete: {en}; run the sync again",
        str(path),
    )


def _build(cls: type[R], data: Any, path: Path, where: str) -> R:
    if not isinstance(data, dict):
        raise _format(path, f"{where} 应为对象", f"{where} must be an object")
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
                continue
            raise _format(path, f"缺少字段 {where}.{f.name}", f"field {where}.{f.name} is missing")
        values[f.name] = _value(hints[f.name], data[f.name], path, f"{where}.{f.name}")
    return cls(**values)


def _value(hint: Any, value: Any, path: Path, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise _format(path, f"{where} 应为列表", f"{where} must be a list")
        return [_value(item, v, path, f"{where}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return _value(hint, value, path, where)
    base = origin or hint
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is Any or (isinstance(base, type) and isinstance(value, base)):
        return value
    raise _format(
        path,
        f"{where} 的类型应为 {getattr(base, '__name__', base)}",
        f"{where} must be of type {getattr(base, '__name__', base)}",
    )
