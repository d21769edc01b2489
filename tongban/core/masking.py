"""Mask personal and sensitive values before a person sees them (CLI, page, API answers).

Sensitivity follows the value, not only the field's name: a field the contract marks personal or
sensitive is masked, a field that is personal in this row (a license holder who is not a business) is
masked, a column the contract does not know is masked (nobody vouched for it), and any text anywhere
that carries an identity number has the number masked.

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
>>> person = {"holder_code_type": "111", "holder_code": "11010519491231002X", "holder_name": "蒋秀珍"}
>>> mask_row("license", person)["holder_name"], mask_row("license", person)["holder_code"]
('蒋*珍', '1101**********002X')
>>> mask_row("license", {**person, "holder_code_type": "1"})["holder_name"]  # unrecognised: masked
'蒋*珍'
>>> firm = {"holder_code_type": "001", "holder_code": "91110000600037341L", "holder_name": "某某公司"}
>>> mask_row("license", firm)["holder_code"]
'91110000600037341L'
>>> mask_text("cursor key 11010519491231002X, row 7")
'cursor key 1101**********002X, row 7'
"""

from __future__ import annotations

import json
import re
from typing import Any

import schemas
from schemas.contract import Kind, Sensitivity

__all__ = ["mask_any", "mask_row", "mask_text", "mask_value"]

#: An identity number inside any text: 18 characters (17 digits and a check character) or a 15-digit
#: legacy number, not part of a longer run of letters or digits. A wrong check character is still a
#: person's number (rejected rows carry exactly those), so the checksum is not asked for.
_ID_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])(?:[0-9]{17}[0-9Xx]|[0-9]{15})(?![0-9A-Za-z])")


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


def mask_text(text: str) -> str:
    """``text`` with every identity number in it masked (the rest unchanged)."""
    return _ID_IN_TEXT.sub(lambda m: str(mask_value(m.group(0))), text)


def mask_any(value: Any) -> Any:
    """Any JSON-like value with identity numbers masked in every string, at any depth (bounded)."""
    return _mask_any(value, 0)


def _mask_any(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if depth > 64:  # deeper than any payload we write: hide it rather than walk it
        return "…"
    if isinstance(value, dict):
        return {k: _mask_any(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_any(v, depth + 1) for v in value]
    return value


def _mask_json_text(text: str) -> str:
    """A JSON object's text with every string value masked (keys kept): a person's printed fields."""
    try:
        data = json.loads(text)
    except ValueError:
        return str(mask_value(text))
    if not isinstance(data, dict):
        return str(mask_value(text))
    masked = {k: mask_value(v) if isinstance(v, str) else mask_any(v) for k, v in data.items()}
    return json.dumps(masked, ensure_ascii=False)


def mask_row(dataset: str, row: dict[str, Any], *, reveal: bool = False) -> dict[str, Any]:
    """A copy of ``row`` with its personal and sensitive values masked (unless ``reveal``).

    A field is masked when the contract marks it non-public, when it is personal in this row
    (``public_when`` does not hold), or when the contract does not know it; every other text has
    identity numbers masked inside it.
    """
    if reveal:
        return dict(row)
    if dataset not in schemas.DATASETS:
        return mask_any(dict(row))
    spec = schemas.get(dataset)
    known = set(spec.names)
    out: dict[str, Any] = {}
    for k, v in row.items():
        field = spec.field(k) if k in known else None
        if field is None:
            out[k] = mask_value(v) if isinstance(v, str) else mask_any(v)
        elif field.sensitivity_in(row) is not Sensitivity.PUBLIC:
            if field.kind is Kind.JSON and isinstance(v, str):
                out[k] = _mask_json_text(v)
            else:
                out[k] = mask_value(v) if isinstance(v, str) else v
        else:
            out[k] = mask_any(v)
    return out
