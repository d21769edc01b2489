"""GB 32100-2015 (法人和其他组织统一社会信用代码): unified social credit code (USCC).

Eighteen characters from ``0123456789ABCDEFGHJKLMNPQRTUWXY`` (value = index):
a registration-authority character, an entity-category character, a six-digit
GB/T 2260 division code, a nine-character GB 11714 organization code (with its
own check) and a check character ``charset[(31 - sum mod 31) mod 31]`` with
weights ``3^(i-1) mod 31``.

The checksum agrees with python-stdnum (``stdnum.cn.uscc``), which checks the
form and the check character but not the embedded organization code.

>>> calc_check_digit('91110000600037341')
'L'
>>> validate('91110000600037341L')
'91110000600037341L'
>>> validate('91110000600037341M')
Traceback (most recent call last):
    ...
ValueError: checksum: check character does not match
>>> division('91110000600037341L')
'110000'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.standards import gb11714, gbt2260
from schemas.standards.arrays import as_string_array, decimal, fixed_width, valid_mask

__all__ = ["CHARSET", "UsccCheck", "calc_check_digit", "check", "division", "is_valid", "validate"]

CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = tuple(pow(3, i, 31) for i in range(17))

# Registration authorities of the central government write 100000 in the division part.
CENTRAL = 100000

# Fault codes of the vectorized check, in order of precedence.
OK, BAD_FORMAT, BAD_CHECKSUM, BAD_ORG_CHECKSUM = 0, 1, 2, 3


def calc_check_digit(body: str) -> str:
    """Check character for the first 17 characters of a code."""
    total = sum(CHARSET.index(c) * w for c, w in zip(body[:17], WEIGHTS, strict=True))
    return CHARSET[(31 - total % 31) % 31]


def validate(code: str) -> str:
    """Return ``code`` when valid; raise ValueError naming the fault otherwise."""
    if len(code) != 18 or not code[:8].isascii() or not code[:8].isdigit():
        raise ValueError("format: 8 digits and 10 code characters expected")
    if any(c not in CHARSET for c in code[8:]):
        raise ValueError("format: 8 digits and 10 code characters expected")
    if calc_check_digit(code) != code[17]:
        raise ValueError("checksum: check character does not match")
    if not gb11714.is_valid(code[8:17]):
        raise ValueError("organization code: GB 11714 check character does not match")
    return code


def is_valid(code: str) -> bool:
    """True when ``code`` is a valid USCC, embedded organization code included."""
    try:
        validate(code)
    except ValueError:
        return False
    return True


def division(code: str) -> str:
    """The division code (characters 3 to 8) of a USCC."""
    return code[2:8]


@dataclass(frozen=True, slots=True)
class UsccCheck:
    """Result of the vectorized check over an array of codes."""

    faults: np.ndarray  # int8 fault code per row (OK for nulls and allowlisted codes)
    allowlisted: np.ndarray  # bool: failed a check but is on the allowlist
    division: np.ndarray  # int32 division code (0 where unreadable)
    division_known: np.ndarray  # bool: the division is a current or retired GB/T 2260 code


_VALUE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(CHARSET):
    _VALUE[ord(_c)] = _i
_CHARSET_BYTES = np.frombuffer(CHARSET.encode(), dtype=np.uint8)


def check_columns(columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fault codes and division codes of an ``(18, n)`` uint8 matrix, one column per code."""
    values = _VALUE[columns]
    digits8 = columns[:8] - np.uint8(48)
    well_formed = (np.maximum.reduce(digits8, axis=0) <= 9) & (np.maximum.reduce(values[8:], axis=0) != 255)
    total = np.zeros(columns.shape[1], dtype=np.uint16)
    for row, weight in zip(values[:17], WEIGHTS, strict=True):
        total += (row % 31).astype(np.uint16) * np.uint16(weight)
    expected = _CHARSET_BYTES[(31 - total % 31) % 31]
    faults = np.zeros(columns.shape[1], dtype=np.int8)
    faults[gb11714.check_columns(columns[8:17]) != gb11714.OK] = BAD_ORG_CHECKSUM
    faults[expected != columns[17]] = BAD_CHECKSUM
    faults[~well_formed] = BAD_FORMAT
    divisions = np.where(well_formed, decimal(digits8[2:8]), 0)
    return faults, divisions


def check(values: pa.Array | pa.ChunkedArray, *, allowlist: Iterable[str] = ()) -> UsccCheck:
    """Validate every USCC of ``values`` at once.

    Codes on ``allowlist`` (real early codes that fail a check) count as valid
    and are reported in ``allowlisted``. Nulls are not faults here.

    >>> r = check(pa.array(['91110000600037341L', '91110000600037341M', None, 'ABC']))
    >>> r.faults.tolist(), r.division.tolist()
    ([0, 2, 0, 1], [110000, 110000, 0, 0])
    >>> check(pa.array(['91110000600037341M']), allowlist={'91110000600037341M'}).allowlisted.tolist()
    [True]
    """
    values = as_string_array(values)
    columns, fits = fixed_width(values, 18)
    faults, divisions = check_columns(columns)
    faults[~fits] = BAD_FORMAT
    faults[~valid_mask(values)] = OK
    allowlisted = np.zeros(len(values), dtype=bool)
    allow = sorted(set(allowlist))
    if allow and (faults != OK).any():
        listed = pc.is_in(values, value_set=pa.array(allow, type=values.type))
        allowlisted = listed.to_numpy(zero_copy_only=False) & (faults != OK)
        faults[allowlisted] = OK
    return UsccCheck(
        faults=faults,
        allowlisted=allowlisted,
        division=divisions.astype(np.int32),
        division_known=gbt2260.is_known_array(divisions) | (divisions == CENTRAL),
    )
