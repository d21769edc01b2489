"""Validate an extract from a local system: open it, map it, run the dataset contract.

This is what ``tongban validate`` and the demo run; it imports nothing from Airflow.
"""

from __future__ import annotations

import datetime
import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa

import schemas
from connectors.files import read_file
from connectors.mapping import Mapping, load_mapping
from connectors.sql import SQLITE_SUFFIXES, read_sql, sqlite_url
from schemas.contract import Dataset
from schemas.errors import TongbanError
from schemas.validate import BatchResult, ContractError, Validator

__all__ = ["Extract", "dataset_named", "load_allowlist", "open_extract", "validate_extract"]


@dataclass(frozen=True)
class Extract:
    """An extract to validate: where it is and how it maps onto the dataset."""

    dataset: str
    path: Path
    mapping: Mapping
    table: str | None = None

    @property
    def is_database(self) -> bool:
        return self.path.suffix.lower() in SQLITE_SUFFIXES


def dataset_named(name: str) -> Dataset:
    """The dataset called ``name``; TongbanError DATASET_UNKNOWN naming the known ones otherwise."""
    if name not in schemas.DATASETS:
        known = ", ".join(schemas.DATASETS)
        close = difflib.get_close_matches(name, list(schemas.DATASETS), n=1)
        zh, en = (f"，是否想用 {close[0]}？", f"; did you mean '{close[0]}'?") if close else ("", "")
        raise TongbanError(
            "DATASET_UNKNOWN",
            f"未知数据集 {name}（可用：{known}）{zh}",
            f"unknown dataset {name} (known: {known}){en}",
            name,
        )
    return schemas.DATASETS[name]


def load_allowlist(path: str | Path) -> tuple[str, ...]:
    """Early USCCs to accept although they fail a check: one per line, ``#`` starts a comment."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TongbanError(
            "ALLOWLIST_UNREADABLE", f"无法读取白名单：{exc}", f"cannot read the allowlist: {exc}", str(path)
        ) from None
    codes = []
    for lineno, line in enumerate(lines, start=1):
        code = line.split("#", 1)[0].strip().upper()
        if not code:
            continue
        if len(code) != 18 or not code.isalnum() or not code.isascii():
            raise TongbanError(
                "ALLOWLIST_INVALID",
                f"第 {lineno} 行不是 18 位代码",
                f"line {lineno} is not an 18-character code",
                f"{path}:{lineno}",
            )
        codes.append(code)
    return tuple(codes)


def open_extract(
    dataset: str,
    path: str | Path,
    *,
    mapping: str | Path | None = None,
    table: str | None = None,
    allowlist: str | Path | None = None,
) -> Extract:
    """Check the arguments of a validation run; TongbanError with a code otherwise."""
    contract = dataset_named(dataset)
    loaded = load_mapping(mapping) if mapping else Mapping()
    if loaded.dataset and loaded.dataset != dataset:
        raise TongbanError(
            "MAPPING_DATASET",
            f"映射文件用于数据集 {loaded.dataset}，不是 {dataset}",
            f"the mapping is for dataset {loaded.dataset}, not {dataset}",
            str(mapping),
        )
    loaded.check_dataset(contract)
    path = Path(path)
    if not path.exists():
        raise TongbanError("FILE_NOT_FOUND", "找不到文件", "file not found", str(path))
    if allowlist:
        loaded = replace(loaded, uscc_allowlist=loaded.uscc_allowlist + load_allowlist(allowlist))
    extract = Extract(dataset, path, loaded, table or loaded.table)
    if extract.is_database and not (extract.table or loaded.query):
        raise TongbanError(
            "SQL_NO_TABLE",
            "数据库文件需要 --table 或映射中的 table",
            "a database file needs --table or a table in the mapping",
            str(path),
        )
    return extract


def validate_extract(
    extract: Extract,
    *,
    batch_size: int = 262_144,
    on_batch: Callable[[int], None] | None = None,
    today: datetime.date | None = None,
) -> tuple[Validator, Iterator[BatchResult]]:
    """The validator (its ``summary`` fills as you go) and the stream of validated batches."""
    validator = Validator(
        schemas.get(extract.dataset),
        timezone=extract.mapping.timezone,
        uscc_allowlist=extract.mapping.uscc_allowlist,
        today=today,
    )

    def run() -> Iterator[BatchResult]:
        if extract.is_database:
            batches = read_sql(
                sqlite_url(extract.path),
                table=extract.table,
                query=extract.mapping.query,
                batch_size=batch_size,
            )
        else:
            batches = read_file(extract.path, batch_size=batch_size, encoding=extract.mapping.encoding)
        for batch in batches:
            table = extract.mapping.apply(pa.Table.from_batches([batch]))
            try:
                result = validator.validate(table)
            except ContractError as exc:
                raise TongbanError(exc.code, exc.message_zh, exc.message_en, str(extract.path)) from None
            if on_batch:
                on_batch(table.num_rows)
            yield result

    return validator, run()
