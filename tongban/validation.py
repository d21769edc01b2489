"""Validate an extract from a local system: open it, map it, run the dataset contract.

This is what ``tongban validate`` and the demo run; it imports nothing from Airflow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import schemas
from connectors.errors import ExtractError
from connectors.files import read_file
from connectors.mapping import Mapping, load_mapping
from connectors.sql import SQLITE_SUFFIXES, read_sql, sqlite_url
from schemas.validate import BatchResult, ContractError, Validator

__all__ = ["Extract", "open_extract", "validate_extract"]


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


def open_extract(
    dataset: str, path: str | Path, *, mapping: str | Path | None = None, table: str | None = None
) -> Extract:
    """Check the arguments of a validation run; ExtractError with a code otherwise."""
    if dataset not in schemas.DATASETS:
        known = ", ".join(schemas.DATASETS)
        raise ExtractError("DATASET_UNKNOWN", f"未知数据集 {dataset}（可用：{known}）",
                           f"unknown dataset {dataset} (known: {known})", dataset)
    loaded = load_mapping(mapping) if mapping else Mapping()
    if loaded.dataset and loaded.dataset != dataset:
        raise ExtractError("MAPPING_DATASET", f"映射文件用于数据集 {loaded.dataset}，不是 {dataset}",
                           f"the mapping is for dataset {loaded.dataset}, not {dataset}", str(mapping))
    path = Path(path)
    if not path.exists():
        raise ExtractError("FILE_NOT_FOUND", "找不到文件", "file not found", str(path))
    extract = Extract(dataset, path, loaded, table or loaded.table)
    if extract.is_database and not (extract.table or loaded.query):
        raise ExtractError("SQL_NO_TABLE", "数据库文件需要 --table 或映射中的 table",
                           "a database file needs --table or a table in the mapping", str(path))
    return extract


def validate_extract(
    extract: Extract,
    *,
    batch_size: int = 65_536,
    on_batch: Callable[[int], None] | None = None,
    today: object = None,
) -> tuple[Validator, Iterator[BatchResult]]:
    """The validator (its ``summary`` fills as you go) and the stream of validated batches."""
    validator = Validator(
        schemas.get(extract.dataset),
        timezone=extract.mapping.timezone,
        uscc_allowlist=extract.mapping.uscc_allowlist,
        today=today,  # type: ignore[arg-type]
    )

    def run() -> Iterator[BatchResult]:
        if extract.is_database:
            batches = read_sql(sqlite_url(extract.path), table=extract.table, query=extract.mapping.query,
                               batch_size=batch_size)
        else:
            batches = read_file(extract.path, batch_size=batch_size, encoding=extract.mapping.encoding)
        import pyarrow as pa

        for batch in batches:
            table = extract.mapping.apply(pa.Table.from_batches([batch]))
            try:
                result = validator.validate(table)
            except ContractError as exc:
                raise ExtractError(exc.code, exc.message_zh, exc.message_en, str(extract.path)) from None
            if on_batch:
                on_batch(table.num_rows)
            yield result

    return validator, run()
