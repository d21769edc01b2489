"""GB/T 36904-2018 (电子证照 标识): electronic license identifiers.

An identifier reads ``1.2.156.3005.2.<type code>.<issuer code>.<serial>.<version>.<check>``:
the national OID arc of electronic licenses, the 21-character license type
code (a USCC and three digits), the issuer's 18-character USCC, the issuer's
serial number of the license, a three-digit version, and a check character
computed with ISO 7064 MOD 37,36 over the four middle parts joined without
dots (python-stdnum's ``stdnum.iso7064.mod_37_36`` is the reference).

>>> ident = compose('11100000000013338W001', '11630104MB0000123M', '2024000123', '001')
>>> ident
'1.2.156.3005.2.11100000000013338W001.11630104MB0000123M.2024000123.001.N'
>>> validate(ident) == ident
True
>>> split(ident)['serial']
'2024000123'
>>> validate(ident[:-1] + 'A')
Traceback (most recent call last):
    ...
ValueError: checksum: check character does not match
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from stdnum.iso7064 import mod_37_36

from schemas.standards.arrays import as_string_array, valid_mask

__all__ = ["PREFIX", "LicenseIdCheck", "check", "compose", "is_valid", "split", "validate"]

PREFIX = "1.2.156.3005.2."
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_SERIAL = 64
_PATTERN = re.compile(
    r"^1\.2\.156\.3005\.2\.(?P<type_code>[0-9A-Z]{21})\.(?P<issuer_code>[0-9A-Z]{18})\."
    r"(?P<serial>[0-9A-Z]{1," + str(MAX_SERIAL) + r"})\.(?P<version>[0-9]{3})\.(?P<check>[0-9A-Z])$"
)
_PARTS = ("type_code", "issuer_code", "serial", "version", "check")

# Fault codes of the vectorized check.
OK, BAD_FORMAT, BAD_CHECKSUM = 0, 1, 2


def compose(type_code: str, issuer_code: str, serial: str, version: str) -> str:
    """Build an identifier, check character included."""
    body = type_code + issuer_code + serial + version
    return f"{PREFIX}{type_code}.{issuer_code}.{serial}.{version}.{mod_37_36.calc_check_digit(body)}"


def split(identifier: str) -> dict[str, str]:
    """The parts of a well-formed identifier; ValueError otherwise."""
    match = _PATTERN.fullmatch(identifier)
    if not match:
        raise ValueError("format: 1.2.156.3005.2.<type>.<issuer>.<serial>.<version>.<check> expected")
    return match.groupdict()


def validate(identifier: str) -> str:
    """Return ``identifier`` when valid; raise ValueError naming the fault otherwise."""
    parts = split(identifier)
    body = "".join(parts[p] for p in _PARTS)
    if mod_37_36.checksum(body) != 1:
        raise ValueError("checksum: check character does not match")
    return identifier


def is_valid(identifier: str) -> bool:
    """True when ``identifier`` is well formed and its check character matches."""
    try:
        validate(identifier)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class LicenseIdCheck:
    """Result of the vectorized check over an array of identifiers."""

    faults: np.ndarray  # int8 fault code per row (OK for nulls)
    type_code: pa.Array  # string part, null where malformed
    issuer_code: pa.Array  # string part, null where malformed


_VALUE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(ALPHABET):
    _VALUE[ord(_c)] = _i


def mod_37_36_checksums(values: pa.Array) -> np.ndarray:
    """ISO 7064 MOD 37,36 checksum of every string (1 means the check character matches).

    Strings may differ in length; characters outside ``0-9A-Z`` give 255.

    >>> mod_37_36_checksums(pa.array(['A12425GABC1234002M', 'A12425GABC1234002N'])).tolist()
    [1, 2]
    """
    values = as_string_array(values)
    n = len(values)
    offsets = np.frombuffer(
        values.buffers()[1], dtype=np.int64 if values.type == pa.large_string() else np.int32
    )
    offsets = offsets[values.offset : values.offset + n + 1].astype(np.int64)
    lengths = np.diff(offsets)
    data_buf = values.buffers()[2]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(1, np.uint8)
    starts = offsets[:-1]
    check = np.full(n, 18, dtype=np.int16)
    bad = np.zeros(n, dtype=bool)
    longest = int(lengths.max()) if n else 0
    for j in range(longest):
        active = lengths > j
        vals = _VALUE[data[np.where(active, starts + j, 0)]].astype(np.int16)
        bad |= active & (vals == 255)
        step = ((np.where(check == 0, 36, check) * 2) % 37 + vals) % 36
        check = np.where(active, step, check)
    return np.where(bad, 255, check).astype(np.uint8)


def check(values: pa.Array | pa.ChunkedArray) -> LicenseIdCheck:
    """Validate every identifier of ``values`` at once (nulls are not faults here).

    >>> good = compose('11100000000013338W001', '11630104MB0000123M', '2024000123', '001')
    >>> check(pa.array([good, good[:-1] + 'A', 'x', None])).faults.tolist()
    [0, 2, 1, 0]
    """
    values = as_string_array(values)
    present = valid_mask(values)
    parts = pc.extract_regex(values, _PATTERN.pattern)
    well_formed = parts.is_valid().to_numpy(zero_copy_only=False)
    # flatten() carries the struct's nulls (no match) into each part.
    fields = dict(zip((f.name for f in parts.type), parts.flatten(), strict=True))
    body = pc.binary_join_element_wise(*(fields[p] for p in _PARTS), "")
    checksums = mod_37_36_checksums(pc.fill_null(body, ""))
    faults = np.zeros(len(values), dtype=np.int8)
    faults[well_formed & (checksums != 1)] = BAD_CHECKSUM
    faults[present & ~well_formed] = BAD_FORMAT
    return LicenseIdCheck(faults=faults, type_code=fields["type_code"], issuer_code=fields["issuer_code"])
