"""Check characters of generated identifiers, computed for whole matrices with the standards' own code.

Alphabets, weights and check rules come from :mod:`schemas.standards` (``gb11643``, ``gb32100``,
``gb11714``, ``gbt36904``); nothing is declared again here. A ``shift`` other than 0 moves a check
character that many places along its alphabet: the planted "wrong check character" defect.

>>> first17 = np.frombuffer(b"91110000600037341", dtype=np.uint8)[None, :]
>>> bytes(uscc_check(first17, np.zeros(1, np.int64))), bytes(org_check(first17[:, 8:16]))
(b'L', b'1')
>>> bytes(id_check(np.frombuffer(b"11010519491231002", dtype=np.uint8)[None, :], np.zeros(1, np.int64)))
b'X'
>>> code = government_uscc("630104", "公安局")
>>> code, gb32100.is_valid(code)
('11630104493617489N', True)
"""

from __future__ import annotations

import zlib

import numpy as np
import pyarrow as pa

from schemas.standards import gb11643, gb11714, gb32100, gbt36904

#: Digits and capital letters (value = index): GB/T 36904 serials and GB 11714 organization-code bodies.
ALNUM = np.frombuffer(gbt36904.ALPHABET.encode(), dtype=np.uint8)
#: The GB 32100 (USCC) alphabet, without I, O, S, V, Z.
USCC_ALPHABET = np.frombuffer(gb32100.CHARSET.encode(), dtype=np.uint8)


def _value_table(alphabet: np.ndarray) -> np.ndarray:
    table = np.zeros(256, dtype=np.int64)
    table[alphabet] = np.arange(len(alphabet))
    return table


#: Value of each ASCII byte of :data:`ALNUM` (0 for other bytes).
ALNUM_VALUE = _value_table(ALNUM)
_USCC_VALUE = _value_table(USCC_ALPHABET)
_ID_CHECK = np.frombuffer(gb11643.CHECK_CHARS.encode(), dtype=np.uint8)
_ID_CHECK_INDEX = _value_table(_ID_CHECK)
_ORG_WEIGHTS = np.array(gb11714.WEIGHTS, dtype=np.int64)
_USCC_WEIGHTS = np.array(gb32100.WEIGHTS, dtype=np.int64)


def _org_checks() -> np.ndarray:
    """GB 11714 check character (ASCII) of each weighted sum mod 11, read off the standard's function.

    The first character alone (value ``v``, weight 3) gives every sum ``3v mod 11`` for v in 0..10.
    """
    table = np.zeros(11, dtype=np.uint8)
    for value in range(11):
        body = gbt36904.ALPHABET[value] + "0" * 7
        table[value * gb11714.WEIGHTS[0] % 11] = ord(gb11714.calc_check_digit(body))
    return table


def _uscc_checks() -> np.ndarray:
    """Index in the USCC alphabet of the check character of each weighted sum mod 31.

    The first character alone (value ``v``, weight 1) gives every sum ``v`` for v in 0..30.
    """
    return np.array(
        [gb32100.CHARSET.index(gb32100.calc_check_digit(c + "0" * 16)) for c in gb32100.CHARSET],
        dtype=np.int64,
    )


_ORG_CHECKS = _org_checks()
_USCC_CHECKS = _uscc_checks()


def id_check(body17: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """GB 11643 check characters (ASCII) of ``(n, 17)`` digit matrices; ``shift`` != 0 corrupts them."""
    check = gb11643.check_bytes((body17 - np.uint8(48)).T)
    return _ID_CHECK[(_ID_CHECK_INDEX[check] + shift) % 11]


def org_check(body8: np.ndarray) -> np.ndarray:
    """GB 11714 check characters (ASCII) of ``(n, 8)`` body matrices."""
    return _ORG_CHECKS[(ALNUM_VALUE[body8] @ _ORG_WEIGHTS) % 11]


def uscc_check(first17: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """GB 32100 check characters (ASCII) of ``(n, 17)`` matrices; ``shift`` != 0 corrupts them."""
    index = _USCC_CHECKS[(_USCC_VALUE[first17] @ _USCC_WEIGHTS) % 31]
    return USCC_ALPHABET[(index + shift) % 31]


def mod_37_36_states(texts: list[str]) -> np.ndarray:
    """ISO 7064 MOD 37,36 running checksum (0-35) after each text, as GB/T 36904 computes it."""
    return gbt36904.mod_37_36_checksums(pa.array(texts, pa.string())).astype(np.int64)


def license_check(state: np.ndarray, tail: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """GB/T 36904 check characters (ASCII): the MOD 37,36 run from ``state`` over the rows of ``tail``.

    ``state`` is the checksum of each row's prefix (:func:`mod_37_36_states`); ``tail`` an ``(n, w)``
    matrix of the rest, zero bytes skipped. The run restarts from the character whose value is the state
    (one character from the initial state gives exactly that state), and a trailing ``0`` gives the
    checksum ``c`` before the check character, which must bring it to 1: check value ``(1 - c) mod 36``.
    """
    n = len(state)
    body = np.hstack([ALNUM[state][:, None], tail, np.full((n, 1), ord("0"), dtype=np.uint8)])
    keep = body != 0
    offsets = np.concatenate([[0], np.cumsum(keep.sum(axis=1), dtype=np.int64)])
    texts = pa.Array.from_buffers(
        pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(body[keep]))]
    )
    before = gbt36904.mod_37_36_checksums(texts).astype(np.int64)
    return ALNUM[(1 - before + shift) % 36]


def government_uscc(division: str, salt: str) -> str:
    """A stable, valid category-11 (机关) USCC for a government body of a division."""
    body = f"{zlib.crc32(f'{division}{salt}'.encode()) % 100_000_000:08d}"
    first17 = f"11{division}{body}{gb11714.calc_check_digit(body)}"
    return first17 + gb32100.calc_check_digit(first17)
