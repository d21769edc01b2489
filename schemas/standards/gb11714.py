"""GB 11714-1997 (全国组织机构代码): organization code.

Nine characters: an eight-character body of digits and capital letters and a
check character. Body characters count 0-9 for digits and 10-35 for A-Z; the
weights are 3 7 9 10 5 8 4 2; the check is ``11 - sum mod 11``, written ``X``
for 10 and ``0`` for 11. The code is embedded in a USCC (GB 32100) as its
characters 9 to 17.

python-stdnum has no module for this code, so this module's scalar functions
are the reference that the vectorized checks are tested against.

>>> calc_check_digit('60003734')
'1'
>>> validate('600037341')
'600037341'
>>> is_valid('600037342')
False
>>> validate('60003734')
Traceback (most recent call last):
    ...
ValueError: length: 9 characters expected
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from schemas.standards.arrays import as_string_array, fixed_width, valid_mask

__all__ = ["WEIGHTS", "calc_check_digit", "check", "check_columns", "is_valid", "validate"]

WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_BODY = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# Fault codes returned by the vectorized check.
OK, BAD_LENGTH, BAD_FORMAT, BAD_CHECKSUM = 0, 1, 2, 3


def calc_check_digit(body: str) -> str:
    """Check character for an eight-character body."""
    total = sum(_BODY.index(c) * w for c, w in zip(body, WEIGHTS, strict=True))
    check = 11 - total % 11
    return "X" if check == 10 else "0" if check == 11 else str(check)


def validate(code: str) -> str:
    """Return ``code`` when valid; raise ValueError naming the fault otherwise."""
    if len(code) != 9:
        raise ValueError("length: 9 characters expected")
    if any(c not in _BODY for c in code[:8]) or code[8] not in "0123456789X":
        raise ValueError("format: digits and capital letters expected")
    if calc_check_digit(code[:8]) != code[8]:
        raise ValueError("checksum: check character does not match")
    return code


def is_valid(code: str) -> bool:
    """True when ``code`` is a valid organization code."""
    try:
        validate(code)
    except ValueError:
        return False
    return True


_VALUE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(_BODY):
    _VALUE[ord(_c)] = _i
_CHECK = np.frombuffer(b"0123456789X0", dtype=np.uint8)  # index = 11 - sum % 11 (10 -> X, 11 -> 0)
_IS_CHECK = np.zeros(256, dtype=bool)
_IS_CHECK[_CHECK] = True


def check_columns(columns: np.ndarray) -> np.ndarray:
    """Vectorized validation of a ``(9, n)`` uint8 matrix of ASCII codes, one column per code.

    Returns an int8 array of fault codes: OK, BAD_FORMAT or BAD_CHECKSUM.

    >>> cols = np.frombuffer(b'600037341600037342', dtype=np.uint8).reshape(2, 9).T
    >>> check_columns(cols).tolist()
    [0, 3]
    """
    values = _VALUE[columns[:8]]
    body_ok = np.maximum.reduce(values, axis=0) != 255
    total = np.zeros(columns.shape[1], dtype=np.uint16)
    for row, weight in zip(values, WEIGHTS, strict=True):
        total += row.astype(np.uint16) * np.uint16(weight)
    expected = _CHECK[11 - total % 11]
    last = columns[8]
    faults = np.zeros(columns.shape[1], dtype=np.int8)
    faults[expected != last] = BAD_CHECKSUM
    faults[~(body_ok & _IS_CHECK[last])] = BAD_FORMAT
    return faults


def check(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Fault code per value of an array of organization codes (OK for nulls).

    >>> check(pa.array(['600037341', '60003734', None, '60003734x'])).tolist()
    [0, 1, 0, 2]
    """
    values = as_string_array(values)
    columns, fits = fixed_width(values, 9)
    faults = check_columns(columns)
    faults[~fits] = BAD_LENGTH
    faults[~valid_mask(values)] = OK
    return faults
