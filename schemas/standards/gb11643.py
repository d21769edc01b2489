"""GB 11643-1999 (公民身份号码): citizen identity numbers.

Eighteen characters: a six-digit GB/T 2260 area code, the birth date as
``YYYYMMDD``, a three-digit sequence (odd for men, even for women) and a check
character ``"10X98765432"[sum(d_i * w_i) mod 11]`` with weights
7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2. Numbers issued before 1999 have fifteen
digits (two-digit year, no check); they convert by inserting ``19`` after the
area code and computing the check.

Scalar functions follow python-stdnum (``stdnum.cn.ric``), which is the
reference the vectorized :func:`check` is tested against.

>>> calc_check_digit('11010519491231002')
'X'
>>> validate('11010519491231002X')
'11010519491231002X'
>>> to_18('110105491231002')
'11010519491231002X'
>>> validate('110105194912310021')
Traceback (most recent call last):
    ...
ValueError: checksum: check character does not match
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.standards import gbt2260
from schemas.standards.arrays import as_string_array, decimal, fixed_width, valid_mask
from schemas.standards.dates import days_since_epoch, real_date, today_days

__all__ = ["IdCheck", "calc_check_digit", "check", "is_valid", "to_18", "validate"]

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"

# Fault codes of the vectorized check, in order of precedence.
OK, BAD_FORMAT, BAD_CHECKSUM, BAD_BIRTH_DATE, FUTURE_BIRTH_DATE = 0, 1, 2, 3, 4


def calc_check_digit(body: str) -> str:
    """Check character for the first 17 digits of a number."""
    return CHECK_CHARS[sum(int(c) * w for c, w in zip(body[:17], WEIGHTS, strict=True)) % 11]


def to_18(number: str) -> str:
    """Convert a 15-digit legacy number to its 18-character form."""
    if len(number) != 15 or not number.isdigit():
        raise ValueError("format: 15 digits expected")
    body = number[:6] + "19" + number[6:]
    return body + calc_check_digit(body)


def birth_date(number: str) -> _dt.date:
    """The birth date coded in an 18-character number."""
    try:
        return _dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError as exc:
        raise ValueError("birth date: not a real date") from exc


def validate(number: str) -> str:
    """Return an 18-character number when valid; raise ValueError naming the fault otherwise."""
    if len(number) != 18 or not number[:17].isascii() or not number[:17].isdigit():
        raise ValueError("format: 17 digits and a check character expected")
    if number[17] not in CHECK_CHARS:
        raise ValueError("format: 17 digits and a check character expected")
    if calc_check_digit(number) != number[17]:
        raise ValueError("checksum: check character does not match")
    birth_date(number)
    return number


def is_valid(number: str) -> bool:
    """True when ``number`` is a valid 18-character identity number."""
    try:
        validate(number)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class IdCheck:
    """Result of the vectorized check over an array of identity numbers."""

    faults: np.ndarray  # int8 fault code per row (OK for nulls)
    present: np.ndarray  # bool: value is not null
    legacy: np.ndarray  # bool: a valid-format 15-digit number, converted
    normalized: pa.Array  # 18-character form (legacy converted), else the input
    birth_days: np.ndarray  # int64 date32 value of the coded birth date (where it is real)
    male: np.ndarray  # bool: sequence is odd
    area: np.ndarray  # int32 area code (0 where unreadable)
    area_known: np.ndarray  # bool: area code is a current or retired GB/T 2260 code

    @property
    def ok(self) -> np.ndarray:
        """True where the number is valid (or null)."""
        return self.faults == OK


_CHECK_BYTES = np.frombuffer(CHECK_CHARS.encode(), dtype=np.uint8)
_IS_CHECK_BYTE = np.zeros(256, dtype=bool)
_IS_CHECK_BYTE[_CHECK_BYTES] = True


def check_bytes(digits: np.ndarray) -> np.ndarray:
    """Check characters (ASCII codes) of a ``(17, n)`` matrix of digit values."""
    total = digits[0].astype(np.uint16) * np.uint16(WEIGHTS[0])
    for row, weight in zip(digits[1:17], WEIGHTS[1:], strict=True):
        total += row.astype(np.uint16) * np.uint16(weight)
    return _CHECK_BYTES[total % 11]


def _strings_from_columns(columns: np.ndarray) -> pa.Array:
    width, n = columns.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(columns.T).tobytes()
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def check(values: pa.Array | pa.ChunkedArray, *, today: _dt.date | None = None) -> IdCheck:
    """Validate every identity number of ``values`` at once.

    Nulls are not faults here (a required-field rule reports them). Numbers
    must be in canonical form: ASCII digits and an upper-case ``X``.

    >>> r = check(pa.array(['11010519491231002X', '110105194912310021', None, '110105491231002']))
    >>> r.faults.tolist(), r.legacy.tolist(), r.male.tolist()
    ([0, 2, 0, 0], [False, False, False, True], [False, False, False, False])
    >>> r.normalized.to_pylist()[3]
    '11010519491231002X'
    """
    values = as_string_array(values)
    present = valid_mask(values)
    cols, is18 = fixed_width(values, 18)
    legacy = np.zeros(len(values), dtype=bool)
    if not is18[present].all():
        cols15, is15 = fixed_width(values, 15)
        legacy = is15 & (np.maximum.reduce(cols15 - np.uint8(48), axis=0) <= 9)
        if legacy.any():
            # 15 digits -> area + "19" + yymmdd + seq; the check character is computed below.
            cols[:6, legacy] = cols15[:6, legacy]
            cols[6, legacy] = ord("1")
            cols[7, legacy] = ord("9")
            cols[8:17, legacy] = cols15[6:15, legacy]
    digits = cols[:17] - np.uint8(48)
    well_formed = (is18 | legacy) & (np.maximum.reduce(digits, axis=0) <= 9)
    expected = check_bytes(digits)
    if legacy.any():
        cols[17, legacy] = expected[legacy]
    last = cols[17]
    well_formed &= _IS_CHECK_BYTE[last]

    year = decimal(digits[6:10])
    month = decimal(digits[10:12])
    day = decimal(digits[12:14])
    real = real_date(year, month, day)
    birth = np.where(real, days_since_epoch(np.where(real, year, 1970), month, day), 0)

    faults = np.zeros(len(values), dtype=np.int8)
    faults[well_formed & (birth > today_days(today))] = FUTURE_BIRTH_DATE
    faults[well_formed & ~real] = BAD_BIRTH_DATE
    faults[well_formed & (expected != last)] = BAD_CHECKSUM
    faults[present & ~well_formed] = BAD_FORMAT

    area = np.where(well_formed, decimal(digits[:6]), 0)
    normalized: pa.Array = values
    if legacy.any():
        normalized = pc.if_else(pa.array(legacy), _strings_from_columns(cols), pc.cast(values, pa.string()))
    return IdCheck(
        faults=faults,
        present=present,
        legacy=legacy,
        normalized=normalized,
        birth_days=birth,
        male=(digits[16] % 2 == 1) & well_formed,
        area=area,
        area_known=gbt2260.is_known_array(area),
    )
