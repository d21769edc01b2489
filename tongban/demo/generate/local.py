"""How a local system writes canonical rows (its column names, its own codes, its times) and the mapping
YAML that reads them back into the canonical schema."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import yaml

from tongban.demo.generate.dates import LOCAL_TIMEZONE, OFFSET_S

__all__ = ["Layout", "local_rows", "write_mapping"]


@dataclass(frozen=True)
class Layout:
    """How one local system writes its rows."""

    columns: dict[str, str]  # local column -> canonical field, in file order
    values: dict[str, dict[str, str]]  # canonical field -> canonical value -> local code
    naive_times: bool  # timestamps as naive local time (else ISO 8601 with +08:00)


def _text_column(column: pa.ChunkedArray, naive_times: bool) -> list[str | None]:
    """A canonical column as the strings a local system stores (ISO dates, local times)."""
    if pa.types.is_timestamp(column.type):
        seconds = column.cast(pa.int64()).to_numpy() // 1_000_000 + OFFSET_S
        text = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s").astype(object)
        return [t.replace("T", " ") for t in text] if naive_times else [f"{t}+08:00" for t in text]
    if pa.types.is_date(column.type) or pa.types.is_decimal(column.type):
        column = column.cast(pa.string())
    return column.to_pylist()


def local_rows(table: pa.Table, layout: Layout, text: dict[str, dict[int, str]], start: int) -> list[list]:
    """Rows of ``table`` as written by a local system; ``text`` overrides fields (by global row index)."""
    columns = []
    for canonical in layout.columns.values():
        values = _text_column(table.column(canonical), layout.naive_times)
        for row, value in text.get(canonical, {}).items():
            if start <= row < start + len(values):
                values[row - start] = value
        codes = layout.values.get(canonical)
        if codes:
            values = [codes.get(v, v) if v is not None else None for v in values]
        columns.append(values)
    return [list(row) for row in zip(*columns, strict=True)]


def write_mapping(path: Path, dataset: str, layout: Layout, table: str | None) -> None:
    """Write the mapping YAML that turns the layout's columns and codes into the dataset's."""
    doc: dict[str, Any] = {
        "dataset": dataset,
        "columns": {local: canonical for local, canonical in layout.columns.items() if local != canonical},
    }
    if layout.values:
        doc["values"] = {
            f: {local: canonical for canonical, local in codes.items()} for f, codes in layout.values.items()
        }
    if layout.naive_times:
        doc["timezone"] = LOCAL_TIMEZONE
    if table:
        doc["table"] = table
    header = (
        f"# Mapping of a demo local system ({dataset}) to the canonical schema; generated, do not edit.\n"
    )
    path.write_text(header + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
