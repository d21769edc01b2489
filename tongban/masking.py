"""Mask personal and sensitive values before a person sees them (CLI, page, API answers).

>>> mask_value("11010519491231002X")
'1101**********002X'
>>> mask_value("1949-12-31")
'1949-**-**'
>>> mask_value("蒋秀珍")
'蒋*珍'
>>> mask_value("青海省西宁市城西区匡路220号")
'青海省西宁市*********'
>>> mask_row("population", {"id_number": "11010519491231002X", "gender": "2"})["gender"]
'2'
"""

from __future__ import annotations

from typing import Any

import schemas
from schemas.contract import Sensitivity

__all__ = ["mask_row", "mask_value"]


def mask_value(value: object) -> object:
    """Keep a value's shape but hide its middle (codes) or tail (long text)."""
    if value is None or not isinstance(value, str) or not value:
        return value
    n = len(value)
    if n == 10 and value[4] == "-" and value[7] == "-":  # dates: keep the year
        return value[:4] + "-**-**"
    if value.isascii() and n >= 8:  # identifiers: keep the division and the last four
        return value[:4] + "*" * (n - 8) + value[-4:]
    if n <= 1:
        return "*"
    if n <= 4:  # names: first and last character
        return value[0] + "*" * (n - 2) + value[-1] if n > 2 else value[0] + "*"
    keep = min(6, n // 2)
    return value[:keep] + "*" * (n - keep)


def mask_row(dataset: str, row: dict[str, Any], *, reveal: bool = False) -> dict[str, Any]:
    """A copy of ``row`` with every non-public field of the dataset masked (unless ``reveal``)."""
    if reveal or dataset not in schemas.DATASETS:
        return dict(row)
    spec = schemas.get(dataset)
    hidden = {f.name for f in spec.fields if f.sensitivity is not Sensitivity.PUBLIC}
    return {k: (mask_value(v) if k in hidden else v) for k, v in row.items()}
