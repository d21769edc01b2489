"""Realistic, deterministic demo data for the Tongban exchange.

Two entry points share one vectorized core (numpy + pyarrow, no per-row Faker calls):

* :func:`generate_demo` writes the demo *local systems* of the counties in :data:`DEMO_COUNTIES`
  (公安人口库 SQLite, 市场监管 SQLite or CSV drops, license CSV/Parquet drops), each with its
  mapping YAML, and a ground-truth ``manifest.json`` listing every injected defect and warning.
* :func:`population_table`, :func:`business_table` and :func:`license_table` return canonical Arrow
  tables for benchmarks (a million rows in a few seconds).

Every value derives from the seed and the fixed :data:`REFERENCE_TIME`; the wall clock is never read,
so the same seed gives byte-identical files. Identifiers are real-format: GB 11643 ID numbers (area
codes valid in the birth year, retired codes included), GB 32100 USCCs with their embedded GB 11714
organization codes, and GB/T 36904 license identifiers.

A share ``defect_rate`` of the rows carries exactly one defect each (:data:`DEFECT_CODES`): a wrong
check character, an impossible date (text extracts only), a gender that contradicts the ID, an unknown
ethnicity code, a key repeated later in the same extract, or a validity end before its start. Defects
never cause another rule to fail. 15-digit legacy ID numbers are valid rows expected to be flagged
(:data:`WARNING_CODES`).

>>> t = population_table(3, seed=1)
>>> t.num_rows, t.schema.field("birth_date").type
(3, DataType(date32[day]))
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import sqlite3
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from faker import Faker
from stdnum import numdb
from stdnum.cn import uscc as stdnum_uscc
from stdnum.iso7064 import mod_37_36

from connectors.dropfolder import DEFAULT_SETTLE_SECONDS
from schemas.standards import gb11714, gbt2260

__all__ = [
    "BUSINESS_SCHEMA",
    "DEFECT_CODES",
    "DEMO_COUNTIES",
    "LICENSE_SCHEMA",
    "LOCAL_TIMEZONE",
    "POPULATION_SCHEMA",
    "REFERENCE_TIME",
    "WARNING_CODES",
    "business_table",
    "generate_demo",
    "license_table",
    "population_table",
]

# --------------------------------------------------------------------------------------------------
# Public constants
# --------------------------------------------------------------------------------------------------

#: The demo counties: (code, name, province code, province name).
DEMO_COUNTIES: list[tuple[str, str, str, str]] = [
    ("630104", "城西区", "630000", "青海省"),
    ("630121", "大通回族土族自治县", "630000", "青海省"),
    ("630123", "湟源县", "630000", "青海省"),
    ("632523", "贵德县", "630000", "青海省"),
    ("632823", "天峻县", "630000", "青海省"),
    ("430981", "沅江市", "430000", "湖南省"),
    ("621121", "通渭县", "620000", "甘肃省"),
    ("320614", "海门区", "320000", "江苏省"),
    ("150205", "石拐区", "150000", "内蒙古自治区"),
]

_CST = dt.timezone(dt.timedelta(hours=8))
#: The fixed "now" of all generated data; every date and ``updated_at`` lies before it.
REFERENCE_TIME = dt.datetime(2026, 11, 1, tzinfo=_CST)
#: Zone of the naive local timestamps written by the SQLite systems (+08:00, no DST since 1991).
LOCAL_TIMEZONE = "Asia/Shanghai"

_TS = pa.timestamp("us", tz="UTC")
POPULATION_SCHEMA = pa.schema(
    [
        ("id_number", pa.string()),
        ("name", pa.string()),
        ("gender", pa.string()),
        ("ethnicity", pa.string()),
        ("birth_date", pa.date32()),
        ("household_division", pa.string()),
        ("household_address", pa.string()),
        ("status", pa.string()),
        ("moved_to", pa.string()),
        ("updated_at", _TS),
    ]
)
BUSINESS_SCHEMA = pa.schema(
    [
        ("uscc", pa.string()),
        ("name", pa.string()),
        ("entity_type", pa.string()),
        ("legal_representative", pa.string()),
        ("legal_rep_id_number", pa.string()),
        ("registered_capital", pa.decimal128(18, 4)),
        ("established_date", pa.date32()),
        ("registration_authority", pa.string()),
        ("division", pa.string()),
        ("address", pa.string()),
        ("business_scope", pa.string()),
        ("status", pa.string()),
        ("moved_to", pa.string()),
        ("updated_at", _TS),
    ]
)
LICENSE_SCHEMA = pa.schema(
    [
        ("license_id", pa.string()),
        ("license_type_code", pa.string()),
        ("license_type_name", pa.string()),
        ("license_number", pa.string()),
        ("holder_name", pa.string()),
        ("holder_code", pa.string()),
        ("holder_code_type", pa.string()),
        ("issuer_name", pa.string()),
        ("issuer_code", pa.string()),
        ("issue_date", pa.date32()),
        ("valid_from", pa.date32()),
        ("valid_until", pa.date32()),
        ("division", pa.string()),
        ("status", pa.string()),
        ("surface", pa.string()),
        ("updated_at", _TS),
    ]
)

#: Defect kind -> the rule code a validator must report, per dataset.
DEFECT_CODES: dict[str, dict[str, str]] = {
    "population": {
        "wrong_check": "ID_CHECKSUM",
        "impossible_date": "DATE_INVALID",
        "gender_mismatch": "ID_GENDER_MISMATCH",
        "unknown_ethnicity": "ETHNICITY_INVALID",
        "duplicate_key": "KEY_DUPLICATE",
    },
    "business": {
        "wrong_check": "USCC_CHECKSUM",
        "impossible_date": "DATE_INVALID",
        "duplicate_key": "KEY_DUPLICATE",
    },
    "license": {
        "wrong_check": "LICENSE_ID_CHECKSUM",
        "impossible_date": "DATE_INVALID",
        "duplicate_key": "KEY_DUPLICATE",
        "validity_order": "VALIDITY_ORDER",
    },
}
#: Warning kind -> code (the row is valid and loads, flagged).
WARNING_CODES: dict[str, str] = {"legacy_id": "ID_LEGACY_15"}

MAX_ROWS_PER_FILE = 500

# --------------------------------------------------------------------------------------------------
# Time and calendar helpers
# --------------------------------------------------------------------------------------------------

_REF_S = int(REFERENCE_TIME.timestamp())
_REF_DAY = (REFERENCE_TIME.date() - dt.date(1970, 1, 1)).days
_UPDATE_FLOOR_S = int(dt.datetime(2024, 1, 1, tzinfo=_CST).timestamp())
_OFFSET_S = 8 * 3600
_YEAR0 = 1900
_NYEARS = REFERENCE_TIME.year - _YEAR0 + 1
_DAYS_PER_YEAR = 365.2425


def _ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month and day of days since 1970-01-01 (proleptic Gregorian, integer arithmetic)."""
    z = np.asarray(days).astype(np.int32) + 719468  # days since 0000-03-01
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return year.astype(np.int64), month.astype(np.int64), (doy - (153 * mp + 2) // 5 + 1).astype(np.int64)


def _days(year: int, month: int = 1, day: int = 1) -> int:
    return (dt.date(year, month, day) - dt.date(1970, 1, 1)).days


def _updated(rng: np.random.Generator, since_day: np.ndarray) -> np.ndarray:
    """Whole-second UTC epoch times between max(2024-01-01, the record's date) and the reference time."""
    lo = np.maximum(np.asarray(since_day, dtype=np.int64) * 86400 - _OFFSET_S, _UPDATE_FLOOR_S)
    lo = np.minimum(lo, _REF_S - 3600)
    return lo + (rng.random(len(lo)) * (_REF_S - lo)).astype(np.int64)


def _impossible_dates(rng: np.random.Generator, years: np.ndarray) -> list[str]:
    """A calendar-impossible ``YYYY-MM-DD`` in each given year (Feb 30, Apr 31, Feb 29 of a common year)."""
    out = []
    for year, pick in zip(years.tolist(), rng.integers(0, 7, len(years)).tolist(), strict=True):
        choices = ["02-30", "02-31", "04-31", "06-31", "09-31", "11-31"]
        if year % 4 or (year % 100 == 0 and year % 400):
            choices.append("02-29")
        out.append(f"{year:04d}-{choices[pick % len(choices)]}")
    return out


# --------------------------------------------------------------------------------------------------
# Fixed-width string and check-character helpers (vectorized)
# --------------------------------------------------------------------------------------------------

_ID_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)
_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_USCC_ALPHABET = np.frombuffer(b"0123456789ABCDEFGHJKLMNPQRTUWXY", dtype=np.uint8)
_USCC_WEIGHTS = np.array([pow(3, i, 31) for i in range(17)], dtype=np.int64)
_ALNUM = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)
_ORG_WEIGHTS = np.array(gb11714.WEIGHTS, dtype=np.int64)
_ORG_CHECK = np.frombuffer(b"0123456789X0", dtype=np.uint8)  # index 11 - sum % 11


def _value_table(alphabet: np.ndarray) -> np.ndarray:
    table = np.zeros(256, dtype=np.int64)
    table[alphabet] = np.arange(len(alphabet))
    return table


_USCC_VALUE = _value_table(_USCC_ALPHABET)
_ALNUM_VALUE = _value_table(_ALNUM)


def _ascii_digits(values: np.ndarray, width: int) -> np.ndarray:
    """``(n, width)`` uint8 matrix of the zero-padded decimal digits of non-negative integers."""
    rest = np.array(values, dtype=np.int64)
    if width <= 9:  # fits 32 bits, which divide faster
        rest = (rest % 10**width).astype(np.uint32)
    out = np.empty((len(rest), width), dtype=np.uint8)
    for j in range(width - 1, -1, -1):
        rest, digit = np.divmod(rest, 10)
        out[:, j] = digit + 48
    return out


def _const(text: str, n: int) -> np.ndarray:
    """``(n, len)`` uint8 matrix repeating one ASCII/UTF-8 text."""
    return np.broadcast_to(np.frombuffer(text.encode(), dtype=np.uint8), (n, len(text.encode())))


def _rows(texts: Sequence[str]) -> np.ndarray:
    """``(k, w)`` uint8 matrix of texts of equal UTF-8 length."""
    width = len(texts[0].encode()) if texts else 0
    return np.frombuffer("".join(texts).encode(), dtype=np.uint8).reshape(len(texts), width)


def _strings(mat: np.ndarray, lengths: np.ndarray | None = None) -> pa.Array:
    """Arrow strings from the rows of a uint8 matrix (each row truncated to ``lengths`` when given)."""
    mat = np.ascontiguousarray(mat, dtype=np.uint8)
    n, width = mat.shape
    if lengths is None:
        offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
        data = mat.reshape(-1)
    else:
        offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
        data = mat[np.arange(width) < np.asarray(lengths)[:, None]]
    return pa.Array.from_buffers(
        pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    ).cast(pa.string())


def _bytes(n: int, *parts: np.ndarray | str) -> np.ndarray:
    """Byte matrices and constant texts side by side: an ``(n, w)`` uint8 matrix of UTF-8 rows."""
    return np.hstack([_const(p, n) if isinstance(p, str) else p for p in parts])


def _text(n: int, *parts: np.ndarray | str) -> pa.Array:
    """Arrow strings concatenating byte matrices and constant texts, row by row."""
    return _strings(_bytes(n, *parts))


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


@cache
def _labels(size: int, suffix: str) -> pa.Array:
    """``["0<suffix>", "1<suffix>", ...]``: small numbers with a unit, taken rather than formatted per row."""
    return pa.array([f"{i}{suffix}" for i in range(size)], pa.string())


def _label(values: np.ndarray, suffix: str) -> pa.Array:
    values = np.asarray(values, dtype=np.int64)
    return _labels(int(values.max(initial=0)) + 1, suffix).take(pa.array(values))


def _by_group(group: np.ndarray, builders: Sequence[Callable[[np.ndarray], pa.Array]]) -> pa.Array:
    """One string per row, built by ``builders[group[row]]`` for the rows of each group at once."""
    order = np.argsort(np.asarray(group, dtype=np.int16), kind="stable")
    bounds = np.searchsorted(group[order], np.arange(len(builders) + 1))
    parts = [
        builders[g](order[bounds[g] : bounds[g + 1]]).cast(pa.string())
        for g in range(len(builders))
        if bounds[g + 1] > bounds[g]
    ]
    if not parts:
        return pa.array([], pa.string())
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return pa.concat_arrays(parts).take(pa.array(inverse))


def _contains(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    pos = np.minimum(np.searchsorted(sorted_values, values), max(len(sorted_values) - 1, 0))
    return sorted_values[pos] == values if len(sorted_values) else np.zeros(len(values), dtype=bool)


def _make_unique(
    keys_of: Callable[[np.ndarray], np.ndarray], redraw: Callable[[np.ndarray], None], n: int
) -> None:
    """Redraw rows (later ones first) until ``keys_of`` gives every row a distinct int64 key."""
    if n < 2:
        return
    keys = keys_of(np.arange(n))
    ordered = np.sort(keys)
    first = np.concatenate([[True], ordered[1:] != ordered[:-1]])
    taken = ordered[first]
    clashing = np.flatnonzero(_contains(ordered[1:][~first[1:]], keys))
    inner = np.argsort(keys[clashing], kind="stable")
    sub = keys[clashing][inner]
    pending = np.sort(clashing[inner][1:][sub[1:] == sub[:-1]])
    added = np.zeros(0, dtype=np.int64)
    for _ in range(100):
        if not len(pending):
            return
        redraw(pending)
        new = keys_of(pending)
        inner = np.argsort(new, kind="stable")
        repeated = np.zeros(len(new), dtype=bool)
        repeated[inner[1:][new[inner][1:] == new[inner][:-1]]] = True
        bad = _contains(taken, new) | _contains(added, new) | repeated
        added = np.sort(np.concatenate([added, new[~bad]]))
        pending = pending[bad]
    raise ValueError("could not draw enough distinct identifiers")


def _id_check(body17: np.ndarray, shift: np.ndarray | None = None) -> np.ndarray:
    """GB 11643 check characters (ASCII) of ``(n, 17)`` digit matrices; ``shift`` != 0 corrupts them."""
    index = ((body17.astype(np.int64) - 48) @ _ID_WEIGHTS) % 11
    if shift is not None:
        index = (index + shift) % 11
    return _ID_CHECK[index]


def _org_check(body8: np.ndarray) -> np.ndarray:
    """GB 11714 check characters (ASCII) of ``(n, 8)`` body matrices."""
    return _ORG_CHECK[11 - (_ALNUM_VALUE[body8] @ _ORG_WEIGHTS) % 11]


def _uscc_check(first17: np.ndarray, shift: np.ndarray | None = None) -> np.ndarray:
    """GB 32100 check characters (ASCII) of ``(n, 17)`` matrices; ``shift`` != 0 corrupts them."""
    index = (31 - (_USCC_VALUE[first17] @ _USCC_WEIGHTS) % 31) % 31
    if shift is not None:
        index = (index + shift) % 31
    return _USCC_ALPHABET[index]


_MOD_37_36_STEP = np.array(
    [(((state or 36) * 2) % 37 + value) % 36 for state in range(36) for value in range(36)], dtype=np.int64
)
_MOD_37_36_FINAL = np.array([(1 - ((state or 36) * 2) % 37) % 36 for state in range(36)], dtype=np.int64)


def _mod_37_36_run(state: np.ndarray, values: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Continue ISO 7064 MOD 37,36 states (as ``stdnum.iso7064.mod_37_36.checksum`` keeps them) over the
    columns of a ``(n, w)`` matrix of values 0-35, skipping positions where ``active`` is False."""
    for j in range(values.shape[1]):
        state = np.where(active[:, j], _MOD_37_36_STEP[state * 36 + values[:, j]], state)
    return state


def _government_uscc(division: str, salt: str) -> str:
    """A stable, valid category-11 (机关) USCC for a government body of a division."""
    body = f"{zlib.crc32(f'{division}{salt}'.encode()) % 100_000_000:08d}"
    first17 = f"11{division}{body}{gb11714.calc_check_digit(body)}"
    return first17 + stdnum_uscc.calc_check_digit(first17)


# --------------------------------------------------------------------------------------------------
# Places: GB/T 2260 names, the codes a place used over the years, migrant origins
# --------------------------------------------------------------------------------------------------

# fmt: off
_PROVINCE_ABBR = {
    "11": "京", "12": "津", "13": "冀", "14": "晋", "15": "蒙", "21": "辽", "22": "吉", "23": "黑",
    "31": "沪", "32": "苏", "33": "浙", "34": "皖", "35": "闽", "36": "赣", "37": "鲁", "41": "豫",
    "42": "鄂", "43": "湘", "44": "粤", "45": "桂", "46": "琼", "50": "渝", "51": "川", "52": "贵",
    "53": "云", "54": "藏", "61": "陕", "62": "甘", "63": "青", "64": "宁", "65": "新",
}
# fmt: on
_PROVINCE_SUFFIXES = ("壮族自治区", "回族自治区", "维吾尔自治区", "自治区", "特别行政区", "省", "市")
# Provinces whose counties supply migrants' birth places (besides the person's own province).
_ORIGIN_PROVINCES = ("15", "32", "43", "61", "62", "63", "64")


@dataclass(frozen=True, slots=True)
class _Place:
    code: str
    name: str
    province_code: str
    province: str
    prefecture: str  # empty when the county has no prefecture-level name (municipalities)

    @property
    def address_prefix(self) -> str:
        return f"{self.province}{self.prefecture}{self.name}"

    @property
    def authority_prefix(self) -> str:
        """How the county's offices are named: districts carry the city (西宁市城西区), counties not."""
        if self.name.endswith("区"):
            return f"{self.prefecture or self.province}{self.name}"
        return self.name

    @property
    def province_short(self) -> str:
        for suffix in _PROVINCE_SUFFIXES:
            if self.province.endswith(suffix):
                return self.province[: -len(suffix)]
        return self.province


@cache
def _place(code: str) -> _Place:
    division = gbt2260.lookup(code)
    if division is None or division.level != "county" or not division.current:
        raise ValueError(f"{code!r} is not a current county-level GB/T 2260 division code")
    prefecture = gbt2260.lookup(code[:4] + "00")
    province = gbt2260.lookup(code[:2] + "0000")
    pref_name = prefecture.name if prefecture is not None and "辖" not in prefecture.name else ""
    province_name = province.name if province is not None else division.province
    return _Place(code, division.name, code[:2] + "0000", province_name, pref_name)


def _places(divisions: Sequence[str] | None) -> list[_Place]:
    codes = [c for c, *_ in DEMO_COUNTIES] if divisions is None else list(divisions)
    if not codes:
        raise ValueError("divisions must not be empty")
    return [_place(str(c)) for c in codes]


@cache
def _periods(code: str) -> tuple[tuple[int, int], ...]:
    """Years in which the reference validator (python-stdnum) accepts ``code`` as a birth place.

    Read from the same table as :mod:`schemas.standards.gbt2260`, but keeping every name period of
    the code, since a reissued code can have a gap between its names.
    """
    merged = {k: v for _, props in numdb.get("cn/loc").info(code) for k, v in props.items()}
    county = merged.get("county")
    if county is None:
        return ()
    spans = []
    for part in county.split(","):
        if not part.startswith("["):
            return ((0, 9999),)
        lo, hi = part[1:].split("]")[0].split("-")
        spans.append((int(lo) if lo else 0, int(hi) if hi else 9999))
    return tuple(spans)


def _valid_years(code: str) -> np.ndarray:
    years = np.arange(_YEAR0, _YEAR0 + _NYEARS)
    ok = np.zeros(_NYEARS, dtype=bool)
    for lo, hi in _periods(code):
        ok |= (years >= lo) & (years <= hi)
    return ok


@cache
def _lineage(code: str) -> tuple[str, ...]:
    """The code and the codes the place used before it, newest first (海门区 320614 <- 320684 <- 320625...).

    A predecessor is a county code of the same province that was retired when the newer one started,
    with the same name stem or, failing that, in the same prefecture (城西区 <- 西宁市市区 630120).
    """
    divisions = gbt2260.all_divisions()
    chain = [code]
    current = divisions[code]
    while current.start is not None:
        stem, start, prefecture = current.name[:2], current.start, current.code[:4]
        before = [
            d
            for d in divisions.values()
            if d.code[:2] == code[:2]
            and d.level == "county"
            and d.code not in chain
            and d.end is not None
            and start - 1 <= d.end <= start
            and (d.name.startswith(stem) or d.code[:4] == prefecture)
        ]
        if not before:
            break
        current = min(before, key=lambda d: (not d.name.startswith(stem), d.code[:4] != prefecture, d.code))
        chain.append(current.code)
    return tuple(chain)


@cache
def _year_codes(code: str) -> np.ndarray:
    """For each year since 1900, the area code a person born there that year carries (int64)."""
    out = np.full(_NYEARS, int(code), dtype=np.int64)
    filled = np.zeros(_NYEARS, dtype=bool)
    for candidate in (*_lineage(code), code[:4] + "00", code[:2] + "0000"):
        ok = _valid_years(candidate) & ~filled
        out[ok] = int(candidate)
        filled |= ok
    return out


@cache
def _origin_pool(prefixes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """County codes (current and retired) of some provinces, with their valid birth years."""
    codes = [
        c
        for c, d in gbt2260.all_divisions().items()
        if c[:2] in prefixes and d.level == "county" and "辖" not in d.name and not c.endswith("01")
    ]
    valid = np.array([_valid_years(c) for c in codes], dtype=bool).reshape(len(codes), _NYEARS)
    keep = valid.any(axis=1)
    return np.array(codes, dtype=np.int64)[keep], valid[keep]


@cache
def _destinations(code: str) -> np.ndarray:
    """Current county codes a record of ``code`` may move to: the demo counties and its own province."""
    own = [
        c
        for c, d in gbt2260.all_divisions().items()
        if c[:2] == code[:2] and d.level == "county" and d.current and "辖" not in d.name
    ]
    demo = [c for c, *_ in DEMO_COUNTIES]
    return np.array(sorted({*own, *demo} - {code}), dtype=np.int64)


def _sample_valid(
    rng: np.random.Generator, codes: np.ndarray, valid: np.ndarray, years: np.ndarray
) -> np.ndarray:
    """One code per year valid in that year (0 where none was found after a few draws)."""
    out = np.zeros(len(years), dtype=np.int64)
    pending = np.arange(len(years))
    for _ in range(8):
        if not len(pending) or not len(codes):
            break
        pick = rng.integers(0, len(codes), len(pending))
        ok = valid[pick, years[pending] - _YEAR0]
        out[pending[ok]] = codes[pick[ok]]
        pending = pending[~ok]
    return out


def _moved_to(
    rng: np.random.Generator, county: np.ndarray, places: list[_Place], moved: np.ndarray
) -> np.ndarray:
    """Destination division codes (int64, 0 = none) for the rows flagged ``moved``."""
    out = np.zeros(len(county), dtype=np.int64)
    for k, place in enumerate(places):
        rows = np.flatnonzero(moved & (county == k))
        dest = _destinations(place.code)
        if len(rows) and len(dest):
            out[rows] = dest[rng.integers(0, len(dest), len(rows))]
    return out


# --------------------------------------------------------------------------------------------------
# Word pools (Faker zh_CN plus a few hand-written lists), built once per seed
# --------------------------------------------------------------------------------------------------

# fmt: off
_TIBETAN_MALE = (
    "扎西", "多杰", "才让", "索南", "旦增", "尼玛", "贡保", "更登", "洛桑", "桑杰", "仁青", "加措",
    "东智", "拉加", "完玛", "南杰", "格桑", "昂秀",
)
_TIBETAN_FEMALE = (
    "卓玛", "拉毛", "措吉", "央金", "德吉", "白玛", "卓嘎", "才措", "旺姆", "央措", "拉姆", "吉毛",
    "梅朵", "卓措",
)
_MONGOL_MALE = (
    "巴特尔", "额尔敦", "那日苏", "朝鲁", "宝音", "巴雅尔", "布和", "苏和", "孟和", "达来",
    "阿拉坦", "特木尔", "乌力吉", "毕力格", "额尔德木图",
)
_MONGOL_FEMALE = (
    "其其格", "娜仁", "乌兰", "萨仁", "图雅", "高娃", "其木格", "斯琴高娃", "塔娜", "格日乐",
    "乌云", "娜布其", "阿茹娜", "萨日娜",
)
# fmt: on
_VILLAGE_SUFFIXES = ("庄", "沟", "湾", "寨", "堡", "台", "滩", "岔")

# (word in a company name, kind of shop of an individual business, business scope)
_INDUSTRIES = (
    ("商贸", "便利店", "日用百货、预包装食品、烟草制品零售"),
    ("餐饮管理", "面馆", "餐饮服务；食品销售"),
    ("建筑工程", "装饰部", "房屋建筑工程施工；建筑装饰装修工程施工"),
    ("农牧业开发", "农资店", "牛羊养殖；饲草种植；农畜产品收购、销售"),
    ("物流", "货运部", "普通货物道路运输；仓储服务（不含危险化学品）"),
    ("信息科技", "电脑维修部", "计算机软硬件技术开发、技术咨询、技术服务；电子产品销售"),
    ("文化传媒", "图文广告部", "广告设计、制作、代理、发布；文化艺术交流活动策划"),
    ("旅游开发", "客栈", "旅游景区开发；旅游信息咨询；住宿服务"),
    ("医药", "药店", "药品零售；医疗器械销售；保健食品销售"),
    ("汽车服务", "汽修部", "机动车维修；汽车零配件销售"),
    ("物业服务", "家政服务部", "物业管理；家政服务；保洁服务"),
    ("新能源", "电器店", "光伏发电项目开发；新能源技术推广服务；家用电器销售"),
    ("服饰", "服装店", "服装鞋帽、针纺织品零售"),
    ("农产品", "粮油店", "粮油、蔬菜、水果、农副产品销售"),
)
# fmt: off
_COOP_PRODUCTS = (
    "牦牛养殖", "藏羊养殖", "青稞种植", "油菜种植", "中药材种植", "马铃薯种植", "蔬菜种植", "生猪养殖",
    "奶牛养殖", "水产养殖", "农机服务", "果蔬种植",
)
# fmt: on

# Entity forms: (name, USCC category char, registered capital choices in 万元, their weights, share)
_FORMS = (
    (
        "有限责任公司",
        1,
        (10, 50, 100, 200, 300, 500, 1000, 2000, 5000),
        (5, 12, 25, 12, 10, 14, 12, 6, 4),
        0.50,
    ),
    ("股份有限公司", 1, (500, 1000, 3000, 5000, 10000), (20, 30, 25, 15, 10), 0.02),
    ("个人独资企业", 1, (1, 5, 10, 30, 50), (15, 25, 30, 20, 10), 0.05),
    ("合伙企业", 1, (10, 100, 500, 1000), (25, 40, 25, 10), 0.03),
    ("个体工商户", 2, (0.5, 1, 2, 3, 5, 10), (15, 25, 20, 15, 15, 10), 0.35),
    ("农民专业合作社", 3, (20, 50, 100, 200, 300), (15, 30, 30, 15, 10), 0.05),
)


@dataclass(frozen=True)
class _Pools:
    names: pa.Array  # name groups one after another, see ``name_start``/``name_size``
    name_start: np.ndarray  # (3 groups: Han, Tibetan, Mongolian) x (2 sexes: male, female)
    name_size: np.ndarray
    streets: pa.Array
    villages: pa.Array
    trades: pa.Array  # 字号 of companies
    shop_words: pa.Array  # 字号 of individual businesses (王记, 鸿泰...)


def _unique(make: Callable[[], str], size: int, *, ok: Callable[[str], bool] = lambda s: True) -> list[str]:
    seen: dict[str, None] = {}
    for _ in range(size * 20):
        value = make()
        if ok(value):
            seen.setdefault(value, None)
        if len(seen) >= size:
            break
    return list(seen)


@cache
def _pools(seed: int) -> _Pools:
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    han_m = _unique(fake.name_male, 2000)
    han_f = _unique(fake.name_female, 2000)
    tib_m = [*_TIBETAN_MALE, *(a + b for a in _TIBETAN_MALE for b in _TIBETAN_MALE if a != b)]
    tib_f = [*_TIBETAN_FEMALE, *(a + b for a in _TIBETAN_MALE for b in _TIBETAN_FEMALE)]
    surnames = _unique(fake.last_name, 120, ok=lambda s: len(s) == 1)
    mon_m = [*_MONGOL_MALE, *(s + m for s in surnames[:20] for m in _MONGOL_MALE)]
    mon_f = [*_MONGOL_FEMALE, *(s + m for s in surnames[:20] for m in _MONGOL_FEMALE)]
    groups = [han_m, han_f, tib_m, tib_f, mon_m, mon_f]
    sizes = np.array([len(g) for g in groups], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    streets = _unique(fake.street_name, 400)
    villages = [f"{s}家{x}村" for s in surnames[:40] for x in _VILLAGE_SUFFIXES]
    words = [
        w
        for w in _unique(fake.company_prefix, 200)
        if len(w) == 2 and all("\u4e00" <= c <= "\u9fff" for c in w)
    ]
    given = _unique(fake.first_name_male, 300, ok=lambda s: len(s) == 2)
    base = list(dict.fromkeys([*words, *given]))
    rng = np.random.default_rng(seed)
    pairs = rng.integers(0, len(base), (600, 2))
    trades = list(dict.fromkeys([*base, *(base[a] + base[b] for a, b in pairs.tolist() if a != b)]))
    shop_words = [*(s + "记" for s in surnames), *base]
    return _Pools(
        names=pa.array([n for g in groups for n in g], pa.string()),
        name_start=starts.reshape(3, 2),
        name_size=sizes.reshape(3, 2),
        streets=pa.array(streets, pa.string()),
        villages=pa.array(villages, pa.string()),
        trades=pa.array(trades, pa.string()),
        shop_words=pa.array(shop_words, pa.string()),
    )


# --------------------------------------------------------------------------------------------------
# Drafts, defect planning (shared by every dataset)
# --------------------------------------------------------------------------------------------------


_Cols = dict[str, np.ndarray]


@dataclass
class _Draft:
    """Column arrays of one dataset before rendering, plus its defect plan."""

    cols: _Cols
    kind: np.ndarray  # index into the dataset's defect kinds; -1 = clean
    source: np.ndarray  # row whose key a duplicate repeats; -1 otherwise
    kinds: tuple[str, ...] = ()
    text: dict[str, dict[int, str]] = field(default_factory=dict)  # impossible dates, by field and row
    legacy: np.ndarray | None = None  # population rows written as 15-digit IDs

    @property
    def n(self) -> int:
        return len(self.kind)

    def rows(self, kind: str) -> np.ndarray:
        return (
            np.flatnonzero(self.kind == self.kinds.index(kind))
            if kind in self.kinds
            else np.zeros(0, np.int64)
        )

    def clean(self) -> np.ndarray:
        mask = self.kind < 0
        if self.legacy is not None:
            mask &= ~self.legacy
        return mask


def _segment_starts(n: int, segments: Sequence[tuple[int, int]] | None) -> np.ndarray:
    starts = np.zeros(n, dtype=np.int64)
    for lo, hi in segments or ():
        starts[lo:hi] = lo
    return starts


def _plan(
    rng: np.random.Generator, n: int, rate: float, kinds: tuple[str, ...], seg_start: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pick defective rows (each with exactly one kind) and the earlier clean row each duplicate repeats."""
    defective = rng.random(n) < rate
    kind = np.where(defective, rng.integers(0, len(kinds), n), -1).astype(np.int64)
    source = np.full(n, -1, dtype=np.int64)
    dup = kinds.index("duplicate_key")
    rows = np.flatnonzero(kind == dup)
    clean = np.flatnonzero(kind < 0)
    lo = np.searchsorted(clean, seg_start[rows])
    count = np.searchsorted(clean, rows) - lo
    pick = lo + (rng.random(len(rows)) * count).astype(np.int64)
    ok = count > 0
    source[rows[ok]] = clean[pick[ok]]
    kind[rows[~ok]] = kinds.index("wrong_check")  # no earlier clean row in its extract
    return kind, source


def _new_draft(
    rng: np.random.Generator,
    cols: _Cols,
    dataset: str,
    rate: float,
    segments: Sequence[tuple[int, int]] | None,
    textual: bool,
) -> _Draft:
    kinds = tuple(k for k in DEFECT_CODES[dataset] if textual or k != "impossible_date")
    n = len(next(iter(cols.values())))
    kind, source = _plan(rng, n, rate, kinds, _segment_starts(n, segments))
    return _Draft(cols, kind, source, kinds)


def _copy_identity(draft: _Draft, names: Sequence[str]) -> None:
    """Make each duplicate row repeat its source's key (and the fields the key determines)."""
    rows = draft.rows("duplicate_key")
    src = draft.source[rows]
    for name in names:
        draft.cols[name][rows] = draft.cols[name][src]
    updated = draft.cols["updated"]
    same = updated[rows] == updated[src]
    updated[rows[same]] -= 1  # the later occurrence always differs in content


def _corrupt_check(draft: _Draft, rng: np.random.Generator, modulus: int) -> None:
    rows = draft.rows("wrong_check")
    draft.cols["shift"][rows] = rng.integers(1, modulus, len(rows))


def _impossible(draft: _Draft, rng: np.random.Generator, column: str, days: np.ndarray) -> None:
    rows = draft.rows("impossible_date")
    if len(rows):
        years = _ymd(days[rows])[0]
        draft.text[column] = dict(zip(rows.tolist(), _impossible_dates(rng, years), strict=True))


def _pick(rng: np.random.Generator, candidates: np.ndarray, size: int, *, unique: bool = False) -> np.ndarray:
    if unique and size <= len(candidates):
        return candidates[rng.permutation(len(candidates))[:size]]
    return candidates[rng.integers(0, len(candidates), size)]


# --------------------------------------------------------------------------------------------------
# Population
# --------------------------------------------------------------------------------------------------

# Share of each five-year age band (0-4 ... 95-99), a smoothed 2020 census pyramid.
_AGE_BANDS = np.array(
    [5.3, 6.0, 5.8, 5.2, 5.5, 6.5, 8.5, 8.0, 7.2, 6.8, 8.5, 8.5, 6.8, 5.5, 4.0, 2.7, 1.7, 0.8, 0.3, 0.1]
)
_AGE_BANDS /= _AGE_BANDS.sum()

# GB/T 3304 ethnicity mixes (code -> share); 01 汉 02 蒙古 03 回 04 藏 05 维吾尔 06 苗 07 彝 08 壮 11 满
# 15 土家 30 土 31 达斡尔 35 撒拉; 97 其他未识别民族, 98 外国血统中国籍人士.
# fmt: off
_ETHNICITY_MIX: dict[str, dict[int, float]] = {
    "630104": {1: 0.76, 3: 0.15, 4: 0.05, 30: 0.02, 35: 0.01, 2: 0.01},
    "630121": {1: 0.60, 3: 0.25, 30: 0.09, 4: 0.05, 2: 0.01},
    "630123": {1: 0.92, 4: 0.04, 3: 0.03, 30: 0.01},
    "632523": {1: 0.50, 4: 0.37, 3: 0.10, 30: 0.02, 35: 0.01},
    "632823": {4: 0.64, 1: 0.22, 3: 0.07, 2: 0.06, 30: 0.01},
    "430981": {1: 0.995, 15: 0.003, 6: 0.002},
    "621121": {1: 0.998, 3: 0.002},
    "320614": {1: 0.997, 3: 0.001, 11: 0.001, 6: 0.001},
    "150205": {1: 0.90, 2: 0.05, 3: 0.02, 11: 0.02, 31: 0.01},
    "630000": {1: 0.53, 4: 0.24, 3: 0.15, 30: 0.04, 35: 0.02, 2: 0.02},
    "150000": {1: 0.79, 2: 0.17, 11: 0.02, 3: 0.01, 31: 0.01},
    "": {1: 0.913, 8: 0.014, 3: 0.008, 11: 0.008, 5: 0.008, 6: 0.008, 7: 0.007,
         15: 0.007, 4: 0.005, 2: 0.005, 30: 0.001, 97: 0.0005, 98: 0.0005},
}
# fmt: on
_BAD_ETHNICITY = np.array([0, 57, 60, 99], dtype=np.int64)
_POP_STATUS = ("normal", "moved_out", "deceased")


def _ethnicity_mix(place: _Place) -> tuple[np.ndarray, np.ndarray]:
    mix = _ETHNICITY_MIX.get(place.code) or _ETHNICITY_MIX.get(place.province_code) or _ETHNICITY_MIX[""]
    codes = np.array(list(mix), dtype=np.int64)
    shares = np.array(list(mix.values()))
    return codes, shares / shares.sum()


def _draw_people(rng: np.random.Generator, county: np.ndarray, places: list[_Place], pools: _Pools) -> _Cols:
    """Clean population columns (numpy) for people living in ``places[county]``."""
    n = len(county)
    band = rng.choice(len(_AGE_BANDS), n, p=_AGE_BANDS)
    age_days = ((band * 5 + rng.random(n) * 5) * _DAYS_PER_YEAR).astype(np.int64)
    birth = _REF_DAY - 1 - age_days
    year = _ymd(birth)[0]
    male = rng.random(n) < 0.51

    ethnicity = np.ones(n, dtype=np.int64)
    area = np.zeros(n, dtype=np.int64)
    migrant = rng.random(n) < 0.12
    same_province = rng.random(n) < 0.7
    others = _origin_pool(_ORIGIN_PROVINCES)
    for k, place in enumerate(places):
        rows = np.flatnonzero(county == k)
        codes, shares = _ethnicity_mix(place)
        ethnicity[rows] = rng.choice(codes, len(rows), p=shares)
        area[rows] = _year_codes(place.code)[year[rows] - _YEAR0]
        for pool, mask in ((_origin_pool((place.code[:2],)), same_province), (others, ~same_province)):
            moved_in = rows[migrant[rows] & mask[rows]]
            origin = _sample_valid(rng, *pool, year[moved_in])
            area[moved_in] = np.where(origin > 0, origin, area[moved_in])

    group = np.select([ethnicity == 4, ethnicity == 2], [1, 2], 0)
    sex = np.where(male, 0, 1)
    name = pools.name_start[group, sex] + (rng.random(n) * pools.name_size[group, sex]).astype(np.int64)

    seq = np.zeros(n, dtype=np.int64)

    def draw_sequence(rows: np.ndarray) -> None:
        """Sequence numbers: odd for men, even for women."""
        seq[rows] = 2 * rng.integers(0, 499, len(rows)) + np.where(male[rows], 1, 2)

    draw_sequence(np.arange(n))
    y, m, d = _ymd(birth)
    stem = area * 10**11 + (y * 10000 + m * 100 + d) * 1000
    _make_unique(lambda rows: stem[rows] + seq[rows], draw_sequence, n)  # unique 17-digit bodies

    age = (_REF_DAY - birth) / _DAYS_PER_YEAR
    deceased = rng.random(n) < np.select([age > 75, age > 60], [0.12, 0.03], 0.003)
    moved = ~deceased & (rng.random(n) < 0.05)
    status = np.select([moved, deceased], [1, 2], 0)

    rural_share = np.array(
        [0.55 if p.name.endswith("县") else 0.3 if p.name.endswith("市") else 0.1 for p in places]
    )
    return {
        "county": county,
        "area": area,
        "birth": birth,
        "seq": seq,
        "gender": np.where(male, 1, 2),
        "ethnicity": ethnicity,
        "name": name,
        "street": rng.integers(0, len(pools.streets), n),
        "village": rng.integers(0, len(pools.villages), n),
        "rural": rng.random(n) < rural_share[county],
        "house": rng.integers(1, 300, n),
        "building": rng.integers(1, 30, n),
        "unit": rng.integers(1, 7, n),
        "room": rng.integers(1, 28, n) * 100 + rng.integers(1, 5, n),
        "status": status,
        "moved_to": _moved_to(rng, county, places, moved),
        "updated": _updated(rng, birth),
        "shift": np.zeros(n, dtype=np.int64),
    }


def _people_draft(
    rng: np.random.Generator,
    cols: _Cols,
    rate: float,
    legacy_rate: float,
    segments: Sequence[tuple[int, int]] | None,
    textual: bool,
) -> _Draft:
    draft = _new_draft(rng, cols, "population", rate, segments, textual)
    _corrupt_check(draft, rng, 11)
    _impossible(draft, rng, "birth_date", cols["birth"])
    rows = draft.rows("gender_mismatch")
    cols["gender"][rows] = 3 - cols["gender"][rows]
    rows = draft.rows("unknown_ethnicity")
    cols["ethnicity"][rows] = _BAD_ETHNICITY[rng.integers(0, len(_BAD_ETHNICITY), len(rows))]
    _copy_identity(draft, ("area", "birth", "seq", "gender"))
    sources = np.zeros(draft.n, dtype=bool)
    sources[draft.source[draft.source >= 0]] = True
    born_1900s = (cols["birth"] < _days(2000)) & (cols["birth"] >= _days(1900))
    draft.legacy = (draft.kind < 0) & ~sources & born_1900s & (rng.random(draft.n) < legacy_rate)
    return draft


def _people_table(draft: _Draft, places: list[_Place], pools: _Pools) -> pa.Table:
    c = draft.cols
    if not draft.n:
        return POPULATION_SCHEMA.empty_table()
    y, m, d = _ymd(c["birth"])
    body = np.hstack(
        [_ascii_digits(c["area"], 6), _ascii_digits(y * 10000 + m * 100 + d, 8), _ascii_digits(c["seq"], 3)]
    )
    ids = _strings(np.hstack([body, _id_check(body, c["shift"])[:, None]]))
    if draft.legacy is not None and draft.legacy.any():
        old = np.flatnonzero(draft.legacy)
        legacy = _strings(np.hstack([body[old, :6], body[old, 8:]]))
        ids = pc.replace_with_mask(ids, pa.array(draft.legacy), legacy)
    county = pa.array(c["county"])
    prefixes = pa.array([p.address_prefix for p in places])

    def urban(r: np.ndarray) -> pa.Array:  # 青海省西宁市城西区胜利路12号3栋2单元1502室
        return _join(
            prefixes.take(pa.array(c["county"][r])),
            pools.streets.take(pa.array(c["street"][r])),
            _label(c["house"][r], "号"),
            _label(c["building"][r], "栋"),
            _label(c["unit"][r], "单元"),
            _label(c["room"][r], "室"),
        )

    def rural(r: np.ndarray) -> pa.Array:  # 青海省海南藏族自治州贵德县王家庄村3社45号
        return _join(
            prefixes.take(pa.array(c["county"][r])),
            pools.villages.take(pa.array(c["village"][r])),
            _label(c["unit"][r], "社"),
            _label(c["house"][r], "号"),
        )

    moved = c["status"] == 1
    return pa.Table.from_arrays(
        [
            ids,
            pools.names.take(pa.array(c["name"])),
            _strings((c["gender"] + 48).astype(np.uint8)[:, None]),
            _strings(_ascii_digits(c["ethnicity"], 2)),
            pa.array(c["birth"].astype(np.int32), pa.date32()),
            pa.array([p.code for p in places]).take(county),
            _by_group(c["rural"].astype(np.int8), [urban, rural]),
            pa.array(_POP_STATUS).take(pa.array(c["status"])),
            pc.if_else(
                pa.array(moved), _strings(_ascii_digits(c["moved_to"], 6)), pa.scalar(None, pa.string())
            ),
            pa.array(c["updated"] * 1_000_000, _TS),
        ],
        schema=POPULATION_SCHEMA,
    )


@dataclass(frozen=True)
class _Holders:
    """Clean people or businesses usable as legal representatives or license holders."""

    names: pa.Array
    codes: pa.Array  # ID numbers or USCCs
    since: np.ndarray  # birth or establishment day
    county: np.ndarray
    status: np.ndarray


def _holders(draft: _Draft, table: pa.Table, code: str, since: str) -> _Holders:
    keep = np.flatnonzero(draft.clean())
    index = pa.array(keep)
    return _Holders(
        table.column("name").take(index).combine_chunks(),
        table.column(code).take(index).combine_chunks(),
        draft.cols[since][keep],
        draft.cols["county"][keep],
        draft.cols["status"][keep],
    )


def _population(
    rng: np.random.Generator,
    county: np.ndarray,
    places: list[_Place],
    pools: _Pools,
    rate: float,
    legacy_rate: float,
    segments: Sequence[tuple[int, int]] | None,
    textual: bool,
) -> tuple[_Draft, pa.Table]:
    draft = _people_draft(rng, _draw_people(rng, county, places, pools), rate, legacy_rate, segments, textual)
    return draft, _people_table(draft, places, pools)


def _helper_persons(rng: np.random.Generator, places: list[_Place], pools: _Pools, n: int) -> _Holders:
    """A clean population, not written anywhere, to draw representatives and holders from."""
    county = rng.integers(0, len(places), max(n, 10 * len(places)))
    draft, table = _population(rng, county, places, pools, 0.0, 0.0, None, False)
    return _holders(draft, table, "id_number", "birth")


# --------------------------------------------------------------------------------------------------
# Business
# --------------------------------------------------------------------------------------------------

_BIZ_STATUS = ("active", "revoked", "deregistered", "moved_out")
_ADULT_DAYS = int(18 * _DAYS_PER_YEAR) + 1


def _pick_adults(
    rng: np.random.Generator, persons: _Holders, county: np.ndarray, latest_birth: np.ndarray
) -> np.ndarray:
    """Per row, a living person (index into ``persons``) of its county if possible, born early enough."""
    out = np.zeros(len(county), dtype=np.int64)
    alive = np.flatnonzero(persons.status != 2)
    if not len(alive):
        alive = np.arange(len(persons.status))
    for k in np.unique(county).tolist():
        rows = np.flatnonzero(county == k)
        local = alive[persons.county[alive] == k]
        cand = local if len(local) else alive
        cand = cand[np.argsort(persons.since[cand], kind="stable")]
        count = np.searchsorted(persons.since[cand], latest_birth[rows], side="right")
        count = np.where(count > 0, count, len(cand))  # nobody old enough: take anyone
        out[rows] = cand[(rng.random(len(rows)) * count).astype(np.int64)]
    return out


def _draw_business(
    rng: np.random.Generator, county: np.ndarray, places: list[_Place], pools: _Pools, persons: _Holders
) -> _Cols:
    n = len(county)
    if n and not len(persons.codes):
        raise ValueError("no people to act as legal representatives")
    age = np.minimum(rng.exponential(7.0, n), 30.0)
    established = _REF_DAY - 1 - (age * _DAYS_PER_YEAR).astype(np.int64)
    year = _ymd(established)[0]
    form = rng.choice(len(_FORMS), n, p=np.array([f[4] for f in _FORMS]) / sum(f[4] for f in _FORMS))
    category = np.array([f[1] for f in _FORMS])[form]
    division = np.zeros(n, dtype=np.int64)
    for k, place in enumerate(places):  # USCCs date from 2015: the code in use when the USCC was issued
        rows = county == k
        division[rows] = _year_codes(place.code)[np.maximum(year[rows], 2016) - _YEAR0]

    new_style = year >= 2016
    body = np.empty((n, 8), dtype=np.uint8)

    def draw_body(rows: np.ndarray) -> None:
        """GB 11714 bodies: 8 digits for codes issued before 2016, ``MA`` + 6 characters since."""
        digits = _ascii_digits(rng.integers(0, 10**8, len(rows)), 8)
        ma = _bytes(len(rows), "MA", _USCC_ALPHABET[rng.integers(0, 31, (len(rows), 6))])
        body[rows] = np.where(new_style[rows, None], ma, digits)

    draw_body(np.arange(n))
    _make_unique(lambda rows: _ALNUM_VALUE[body[rows]] @ (36 ** np.arange(8, dtype=np.int64)), draw_body, n)

    capital = np.zeros(n, dtype=np.float64)
    for i, (_, _, values, weights, _) in enumerate(_FORMS):
        rows = np.flatnonzero(form == i)
        capital[rows] = rng.choice(
            np.array(values, dtype=np.float64), len(rows), p=np.array(weights) / sum(weights)
        )
    odd = rng.random(n) < 0.15
    capital = np.where(odd, np.round(capital * rng.uniform(0.5, 1.5, n), 2), capital)

    status = rng.choice(4, n, p=[0.86, 0.03, 0.07, 0.04])
    return {
        "county": county,
        "established": established,
        "form": form,
        "category": category,
        "division": division,
        "body": body,
        "trade": rng.integers(0, len(pools.trades), n),
        "shop_word": rng.integers(0, len(pools.shop_words), n),
        "industry": rng.integers(0, len(_INDUSTRIES), n),
        "product": rng.integers(0, len(_COOP_PRODUCTS), n),
        "capital": np.round(capital * 10_000).astype(np.int64),
        "rep": _pick_adults(rng, persons, county, established - _ADULT_DAYS),
        "street": rng.integers(0, len(pools.streets), n),
        "house": rng.integers(1, 500, n),
        "status": status,
        "moved_to": _moved_to(rng, county, places, status == 3),
        "updated": _updated(rng, established),
        "shift": np.zeros(n, dtype=np.int64),
    }


def _business_draft(
    rng: np.random.Generator,
    cols: _Cols,
    rate: float,
    segments: Sequence[tuple[int, int]] | None,
    textual: bool,
) -> _Draft:
    draft = _new_draft(rng, cols, "business", rate, segments, textual)
    _corrupt_check(draft, rng, 31)
    _impossible(draft, rng, "established_date", cols["established"])
    _copy_identity(draft, ("category", "form", "division", "body"))
    return draft


def _decimal(unscaled: np.ndarray, type_: pa.Decimal128Type) -> pa.Array:
    """decimal128 array from int64 unscaled values."""
    words = np.empty((len(unscaled), 2), dtype=np.int64)
    words[:, 0] = unscaled
    words[:, 1] = np.where(unscaled < 0, -1, 0)
    return pa.Array.from_buffers(type_, len(unscaled), [None, pa.py_buffer(words.tobytes())])


def _business_table(draft: _Draft, places: list[_Place], pools: _Pools, persons: _Holders) -> pa.Table:
    c = draft.cols
    n = draft.n
    if not n:
        return BUSINESS_SCHEMA.empty_table()
    category = (c["category"] + 48).astype(np.uint8)[:, None]
    first17 = _bytes(
        n, "9", category, _ascii_digits(c["division"], 6), c["body"], _org_check(c["body"])[:, None]
    )
    uscc = _strings(np.hstack([first17, _uscc_check(first17, c["shift"])[:, None]]))
    county = pa.array(c["county"])
    authority = pa.array([p.authority_prefix for p in places]).take(county)

    def part(values: pa.Array | Sequence[str], key: str) -> Callable[[np.ndarray], pa.Array]:
        pool = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
        return lambda r: pool.take(pa.array(c[key][r]))

    short = part([p.province_short for p in places], "county")
    county_name = part([p.name for p in places], "county")
    trade = part(pools.trades, "trade")
    industry = part([i[0] for i in _INDUSTRIES], "industry")
    product = part(_COOP_PRODUCTS, "product")
    names = _by_group(
        c["form"],
        [
            lambda r: _join(short(r), trade(r), industry(r), "有限公司"),
            lambda r: _join(short(r), trade(r), industry(r), "股份有限公司"),
            lambda r: _join(county_name(r), trade(r), industry(r), "经营部"),
            lambda r: _join(short(r), trade(r), industry(r), "合伙企业（有限合伙）"),
            lambda r: _join(
                authority.take(pa.array(r)),
                part(pools.shop_words, "shop_word")(r),
                part([i[1] for i in _INDUSTRIES], "industry")(r),
            ),
            lambda r: _join(county_name(r), trade(r), product(r), "专业合作社"),
        ],
    )
    coop_scope = pa.array(
        [f"组织成员开展{p}；组织收购、销售成员生产的产品；提供技术培训、信息咨询服务" for p in _COOP_PRODUCTS]
    )
    scope = _by_group(
        (c["form"] == 5).astype(np.int8),
        [
            part([i[2] for i in _INDUSTRIES], "industry"),
            lambda r: coop_scope.take(pa.array(c["product"][r])),
        ],
    )
    prefix = pa.array([p.address_prefix for p in places]).take(county)
    rep = pa.array(c["rep"])
    moved = c["status"] == 3
    return pa.Table.from_arrays(
        [
            uscc,
            names,
            pa.array([f[0] for f in _FORMS]).take(pa.array(c["form"])),
            persons.names.take(rep),
            persons.codes.take(rep),
            _decimal(c["capital"], pa.decimal128(18, 4)),
            pa.array(c["established"].astype(np.int32), pa.date32()),
            _join(authority, "市场监督管理局"),
            pa.array([p.code for p in places]).take(county),
            _join(prefix, pools.streets.take(pa.array(c["street"])), _label(c["house"], "号")),
            scope,
            pa.array(_BIZ_STATUS).take(pa.array(c["status"])),
            pc.if_else(
                pa.array(moved), _strings(_ascii_digits(c["moved_to"], 6)), pa.scalar(None, pa.string())
            ),
            pa.array(c["updated"] * 1_000_000, _TS),
        ],
        schema=BUSINESS_SCHEMA,
    )


def _business(
    rng: np.random.Generator,
    county: np.ndarray,
    places: list[_Place],
    pools: _Pools,
    persons: _Holders,
    rate: float,
    segments: Sequence[tuple[int, int]] | None,
    textual: bool,
) -> tuple[_Draft, pa.Table]:
    draft = _business_draft(rng, _draw_business(rng, county, places, pools, persons), rate, segments, textual)
    return draft, _business_table(draft, places, pools, persons)


# --------------------------------------------------------------------------------------------------
# License (GB/T 36903 metadata, GB/T 36904 identifiers)
# --------------------------------------------------------------------------------------------------

# Ministries defining license types: name -> invented body of their GB 11714 code (USCC category 11).
_MINISTRIES = {
    "国家市场监督管理总局": "00000962",
    "国家药品监督管理局": "00001383",
    "国家卫生健康委员会": "00001941",
    "公安部": "00001856",
}
_DEPARTMENTS = ("市场监督管理局", "公安局", "卫生健康局")


@dataclass(frozen=True, slots=True)
class _LicenseType:
    name: str
    ministry: str
    suffix: str  # three digits after the ministry's USCC
    department: int  # index into _DEPARTMENTS (the county office that issues it)
    holder: str  # "business", "newborn" (born since 1996) or "person"
    share: float

    @property
    def code(self) -> str:
        body = _MINISTRIES[self.ministry]
        first17 = f"11100000{body}{gb11714.calc_check_digit(body)}"
        return first17 + stdnum_uscc.calc_check_digit(first17) + self.suffix


_LICENSE_TYPES = (
    _LicenseType("营业执照", "国家市场监督管理总局", "001", 0, "business", 0.35),
    _LicenseType("食品经营许可证", "国家市场监督管理总局", "014", 0, "business", 0.18),
    _LicenseType("药品经营许可证", "国家药品监督管理局", "003", 0, "business", 0.05),
    _LicenseType("出生医学证明", "国家卫生健康委员会", "001", 2, "newborn", 0.22),
    _LicenseType("户籍证明", "公安部", "007", 1, "person", 0.20),
)
_BUSINESS_LICENCE, _FOOD_PERMIT, _DRUG_PERMIT, _BIRTH_CERTIFICATE, _HOUSEHOLD_CERTIFICATE = range(5)
_LICENSE_STATUS = ("01", "02", "03", "04", "05", "06", "07", "99")
_EXPIRED, _REVOKED, _CANCELLED, _MOVED = (_LICENSE_STATUS.index(s) for s in ("05", "07", "04", "06"))
_BIRTH_CERT_FROM = _days(1996)


def _candidates(kind: str, k: int, persons: _Holders, firms: _Holders) -> np.ndarray:
    """Holder candidates (indexes into firms or persons) of one county, else of every county."""
    if kind == "business":
        mask = np.ones(len(firms.county), dtype=bool)
        county = firms.county
    else:
        mask = persons.status != 2
        if kind == "newborn":
            mask &= persons.since >= _BIRTH_CERT_FROM
        county = persons.county
    local = np.flatnonzero(mask & (county == k))
    return local if len(local) else np.flatnonzero(mask)


def _draw_license(
    rng: np.random.Generator, county: np.ndarray, places: list[_Place], persons: _Holders, firms: _Holders
) -> _Cols:
    n = len(county)
    share = np.array([t.share for t in _LICENSE_TYPES])
    type_ = np.zeros(n, dtype=np.int64)
    holder = np.zeros(n, dtype=np.int64)
    for k in range(len(places)):
        rows = np.flatnonzero(county == k)
        if not len(rows):
            continue
        cands = [_candidates(t.holder, k, persons, firms) for t in _LICENSE_TYPES]
        weights = share * np.array([len(c) > 0 for c in cands])
        if not weights.sum():
            raise ValueError("no people or businesses to hold licenses")
        type_[rows] = rng.choice(len(_LICENSE_TYPES), len(rows), p=weights / weights.sum())
        for t, cand in enumerate(cands):
            sub = rows[type_[rows] == t]
            if len(sub):
                holder[sub] = _pick(rng, cand, len(sub), unique=t in (_BUSINESS_LICENCE, _BIRTH_CERTIFICATE))

    is_firm = np.array([t.holder == "business" for t in _LICENSE_TYPES])[type_]
    safe = np.where(is_firm, holder, 0)
    est = firms.since[safe] if len(firms.county) else np.zeros(n, dtype=np.int64)
    birth = (
        persons.since[np.where(is_firm, 0, holder)] if len(persons.county) else np.zeros(n, dtype=np.int64)
    )
    last = _REF_DAY - 1
    u = rng.random(n)
    recent = np.maximum(est, last - int(6 * _DAYS_PER_YEAR))
    permit = (type_ == _FOOD_PERMIT) | (type_ == _DRUG_PERMIT)
    issue = np.select(  # business licences on registration (30% reissued later), births within a month
        [type_ == _BUSINESS_LICENCE, permit, type_ == _BIRTH_CERTIFICATE],
        [
            est + (u * (last - est) * (rng.random(n) < 0.3)).astype(np.int64),
            recent + (u * (last - recent)).astype(np.int64),
            np.minimum(birth + 1 + (u * 30).astype(np.int64), last),
        ],
        last - (u * 3 * 365).astype(np.int64),
    )
    valid_from = np.where(type_ == _BUSINESS_LICENCE, est, issue)
    term = (rng.choice([20, 30], n) * _DAYS_PER_YEAR).astype(np.int64)
    valid_until = np.select(  # -1: long-term; most business licences have no fixed term
        [type_ == _BUSINESS_LICENCE, permit, type_ == _HOUSEHOLD_CERTIFICATE],
        [np.where(rng.random(n) < 0.15, valid_from + term, -1), valid_from + 5 * 365, valid_from + 89],
        -1,
    )

    status = rng.choice(len(_LICENSE_STATUS), n, p=[0.95, 0.01, 0.01, 0.02, 0.0, 0.0, 0.0, 0.01])
    status = np.where((valid_until >= 0) & (valid_until < _REF_DAY), _EXPIRED, status)
    if len(firms.county):  # a business's licences follow its registration status
        firm_status = np.where(is_firm, firms.status[safe], 0)
        status = np.select(
            [firm_status == 1, firm_status == 2, firm_status == 3], [_REVOKED, _CANCELLED, _MOVED], status
        )

    version = rng.choice([1, 2, 3], n, p=[0.85, 0.12, 0.03])
    length = rng.integers(8, 13, n)
    serial = np.zeros((n, 12), dtype=np.uint8)
    serial[:, :4] = _ascii_digits(_ymd(issue)[0], 4)

    def draw_serial(rows: np.ndarray) -> None:
        """Serials: the issue year and 4 to 8 random characters (zero bytes pad to 12)."""
        serial[rows, 4:] = np.where(
            np.arange(4, 12) < length[rows, None], _ALNUM[rng.integers(0, 36, (len(rows), 8))], 0
        )

    def serial_key(rows: np.ndarray) -> np.ndarray:
        return (_ALNUM_VALUE[serial[rows]] + (serial[rows] > 0)) @ (37 ** np.arange(12, dtype=np.int64))

    draw_serial(np.arange(n))
    _make_unique(serial_key, draw_serial, n)
    return {
        "county": county,
        "type": type_,
        "holder": holder,
        "issue": issue,
        "valid_from": valid_from,
        "valid_until": valid_until,
        "status": status,
        "version": version,
        "serial": serial,
        "length": length,
        "number": rng.integers(0, 10**6, n),
        "kind_digit": rng.integers(1, 3, n),
        "updated": _updated(rng, issue),
        "shift": np.zeros(n, dtype=np.int64),
    }


def _license_draft(
    rng: np.random.Generator,
    cols: _Cols,
    rate: float,
    segments: Sequence[tuple[int, int]] | None,
    textual: bool,
) -> _Draft:
    draft = _new_draft(rng, cols, "license", rate, segments, textual)
    _corrupt_check(draft, rng, 36)
    _impossible(draft, rng, "issue_date", cols["issue"])
    rows = draft.rows("validity_order")
    cols["valid_until"][rows] = cols["valid_from"][rows] - rng.integers(1, 366, len(rows))
    identity = ("type", "holder", "serial", "length", "version", "number", "kind_digit")
    _copy_identity(draft, (*identity, "issue", "valid_from", "valid_until"))
    return draft


def _cn_dates(days: np.ndarray) -> np.ndarray:
    """UTF-8 byte rows of dates as printed on certificates (2024年03月05日)."""
    y, m, d = _ymd(days)
    return _bytes(len(y), _ascii_digits(y, 4), "年", _ascii_digits(m, 2), "月", _ascii_digits(d, 2), "日")


def _license_table(draft: _Draft, places: list[_Place], persons: _Holders, firms: _Holders) -> pa.Table:
    c = draft.cols
    n = draft.n
    if not n:
        return LICENSE_SCHEMA.empty_table()
    type_ = c["type"]
    county = c["county"]
    t_index = pa.array(type_)
    issuer_index = county * len(_DEPARTMENTS) + np.array([t.department for t in _LICENSE_TYPES])[type_]
    issuer_codes = [_government_uscc(p.code, d) for p in places for d in _DEPARTMENTS]
    issuer_names = [p.authority_prefix + d for p in places for d in _DEPARTMENTS]

    # GB/T 36904 identifier: the type and issuer prefix is shared by many rows, so its check state is
    # computed once per (county, type) and only the serial and version are run per row.
    combos = [
        (t, issuer_codes[k * len(_DEPARTMENTS) + t.department])
        for k in range(len(places))
        for t in _LICENSE_TYPES
    ]
    combo = county * len(_LICENSE_TYPES) + type_
    prefix = _rows([f"1.2.156.3005.2.{t.code}.{issuer}." for t, issuer in combos])[combo]
    state = np.array([mod_37_36.checksum(t.code + issuer) for t, issuer in combos], dtype=np.int64)[combo]
    version = _ascii_digits(c["version"], 3)
    length = c["length"]
    active = np.hstack([np.arange(12) < length[:, None], np.ones((n, 3), dtype=bool)])
    state = _mod_37_36_run(state, _ALNUM_VALUE[np.hstack([c["serial"], version])], active)
    check = _ALNUM[(_MOD_37_36_FINAL[state] + c["shift"]) % 36]
    tail = _bytes(n, ".", version, ".", check[:, None])
    cols = np.arange(18)
    rest = np.where(
        cols < length[:, None],
        np.hstack([c["serial"], tail]),
        np.take_along_axis(tail, np.clip(cols - length[:, None], 0, 5), axis=1),
    )
    license_id = _strings(np.hstack([prefix, rest]), prefix.shape[1] + length + 6)

    is_firm = np.array([t.holder == "business" for t in _LICENSE_TYPES])[type_]
    firm_names = firms.names if len(firms.names) else pa.array([""])
    firm_codes = firms.codes if len(firms.codes) else pa.array([""])
    person_names = persons.names if len(persons.names) else pa.array([""])
    person_ids = persons.codes if len(persons.codes) else pa.array([""])
    firm_pick = pa.array(np.where(is_firm, c["holder"], 0))
    person_pick = pa.array(np.where(is_firm, 0, c["holder"]))
    firm_mask = pa.array(is_firm)
    holder_name = pc.if_else(firm_mask, firm_names.take(firm_pick), person_names.take(person_pick))
    holder_code = pc.if_else(firm_mask, firm_codes.take(firm_pick), person_ids.take(person_pick))

    division = _rows([p.code for p in places])[county]
    abbr = _rows([_PROVINCE_ABBR.get(p.code[:2], "中") for p in places])[county]
    seq = _ascii_digits(c["number"], 6)
    year = _ascii_digits(_ymd(c["issue"])[0], 4)
    letter = _ALNUM[10 + (_ymd(c["issue"])[0] - 1996) % 26][:, None]  # birth certificate series

    def number_of(kind: int, r: np.ndarray) -> pa.Array:
        """The printed license number of rows ``r`` of one license type."""
        if kind == _BUSINESS_LICENCE:
            return holder_code.take(pa.array(r))  # the USCC
        if kind == _FOOD_PERMIT:  # JY + category + division + sequence + check digit
            return _text(len(r), "JY", _ascii_digits(c["kind_digit"][r], 1), division[r], seq[r],
                         _ascii_digits(c["number"][r] % 7, 1))  # fmt: skip
        if kind == _DRUG_PERMIT:  # 青CB0104123
            return _text(len(r), abbr[r], "CB", division[r, 2:], seq[r, 3:])
        if kind == _BIRTH_CERTIFICATE:  # Q630121123
            return _text(len(r), letter[r], division[r], seq[r, 3:])
        return _text(len(r), division[r], year[r], seq[r])  # 户籍证明

    number = _by_group(type_, [partial(number_of, k) for k in range(len(_LICENSE_TYPES))])
    until = c["valid_until"]
    has_until = until >= 0
    validity = _by_group(  # the end of the surface JSON: 有效期限 and the closing brace
        has_until.astype(np.int8),
        [
            lambda r: _text(len(r), '长期"}'),
            lambda r: _text(len(r), _cn_dates(c["valid_from"][r]), "至", _cn_dates(until[r]), '"}'),
        ],
    )
    type_name = pa.array([t.name for t in _LICENSE_TYPES]).take(t_index)
    issuer_part = pa.array([f'","发证机关":"{name}","发证日期":"' for name in issuer_names])
    surface = _join(
        pa.array([f'{{"证照名称":"{t.name}","证照编号":"' for t in _LICENSE_TYPES]).take(t_index),
        number,
        '","持证主体":"',
        holder_name,
        '","持证主体代码":"',
        holder_code,
        issuer_part.take(pa.array(issuer_index)),
        _text(n, _cn_dates(c["issue"]), '","有效期限":"'),
        validity,
    )
    return pa.Table.from_arrays(
        [
            license_id,
            _strings(_rows([t.code for t in _LICENSE_TYPES])[type_]),
            type_name,
            number,
            holder_name,
            holder_code,
            pc.if_else(firm_mask, "001", "111"),
            pa.array(issuer_names).take(pa.array(issuer_index)),
            pa.array(issuer_codes).take(pa.array(issuer_index)),
            pa.array(c["issue"].astype(np.int32), pa.date32()),
            pa.array(c["valid_from"].astype(np.int32), pa.date32()),
            pa.array(np.where(has_until, until, 0).astype(np.int32), pa.date32(), mask=~has_until),
            _strings(division),
            pa.array(_LICENSE_STATUS).take(pa.array(c["status"])),
            surface,
            pa.array(c["updated"] * 1_000_000, _TS),
        ],
        schema=LICENSE_SCHEMA,
    )


def _license(
    rng: np.random.Generator,
    county: np.ndarray,
    places: list[_Place],
    persons: _Holders,
    firms: _Holders,
    rate: float,
    segments: Sequence[tuple[int, int]] | None,
    textual: bool,
) -> tuple[_Draft, pa.Table]:
    draft = _license_draft(rng, _draw_license(rng, county, places, persons, firms), rate, segments, textual)
    return draft, _license_table(draft, places, persons, firms)


# --------------------------------------------------------------------------------------------------
# Bulk generators (benchmarks)
# --------------------------------------------------------------------------------------------------


def _bulk_rngs(seed: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]


def population_table(
    n: int,
    *,
    seed: int = 0,
    defect_rate: float = 0.0,
    divisions: Sequence[str] | None = None,
    legacy_rate: float = 0.0,
) -> pa.Table:
    """``n`` canonical population rows spread over ``divisions`` (default: the demo counties).

    ``defect_rate`` of the rows carry one defect each (wrong check, gender mismatch, unknown ethnicity,
    duplicate key; impossible dates cannot exist in a typed table); ``legacy_rate`` of the people born
    in the 1900s carry 15-digit IDs.
    """
    places = _places(divisions)
    rng = _bulk_rngs(seed)[0]
    county = rng.integers(0, len(places), n)
    return _population(rng, county, places, _pools(seed), defect_rate, legacy_rate, None, False)[1]


def business_table(
    n: int, *, seed: int = 0, defect_rate: float = 0.0, divisions: Sequence[str] | None = None
) -> pa.Table:
    """``n`` canonical business rows (defects: wrong USCC check, duplicate key)."""
    places = _places(divisions)
    rng_people, rng = _bulk_rngs(seed)[1:3]
    pools = _pools(seed)
    persons = _helper_persons(rng_people, places, pools, min(max(n // 2, 100), 200_000))
    county = rng.integers(0, len(places), n)
    return _business(rng, county, places, pools, persons, defect_rate, None, False)[1]


def license_table(
    n: int, *, seed: int = 0, defect_rate: float = 0.0, divisions: Sequence[str] | None = None
) -> pa.Table:
    """``n`` canonical license rows (defects: wrong identifier check, duplicate key, validity order)."""
    places = _places(divisions)
    rng_people, rng_firms, _, rng = _bulk_rngs(seed)
    pools = _pools(seed)
    size = min(max(n // 2, 100), 200_000)
    persons = _helper_persons(rng_people, places, pools, size)
    firm_county = rng_firms.integers(0, len(places), size)
    firm_draft, firm_table = _business(rng_firms, firm_county, places, pools, persons, 0.0, None, False)
    county = rng.integers(0, len(places), n)
    return _license(
        rng,
        county,
        places,
        persons,
        _holders(firm_draft, firm_table, "uscc", "established"),
        defect_rate,
        None,
        False,
    )[1]


# --------------------------------------------------------------------------------------------------
# Local systems
# --------------------------------------------------------------------------------------------------

# fmt: off
_GONGAN_COLUMNS = {  # 公安人口库 czrk: pinyin abbreviations
    "sfzh": "id_number", "xm": "name", "xb": "gender", "mz": "ethnicity", "csrq": "birth_date",
    "hjdq": "household_division", "hjdz": "household_address", "ryzt": "status", "qwdq": "moved_to",
    "gxsj": "updated_at",
}
_POP_LOCAL_STATUS = {"normal": "10", "moved_out": "21", "deceased": "30"}
_SCJG_COLUMNS = {  # 市场监管 qydj: pinyin abbreviations
    "tyshxydm": "uscc", "qymc": "name", "qylx": "entity_type", "fddbr": "legal_representative",
    "fddbrsfzh": "legal_rep_id_number", "zczb": "registered_capital", "clrq": "established_date",
    "djjg": "registration_authority", "xzqh": "division", "zs": "address", "jyfw": "business_scope",
    "djzt": "status", "qwdq": "moved_to", "gxsj": "updated_at",
}
_BUSINESS_CSV_COLUMNS = {  # business CSV drops: Chinese headers
    "统一社会信用代码": "uscc", "企业名称": "name", "企业类型": "entity_type",
    "法定代表人": "legal_representative", "法定代表人身份证号": "legal_rep_id_number",
    "注册资本(万元)": "registered_capital", "成立日期": "established_date",
    "登记机关": "registration_authority", "行政区划": "division", "住所": "address",
    "经营范围": "business_scope", "登记状态": "status", "迁往地区": "moved_to", "更新时间": "updated_at",
}
# fmt: on
_BIZ_LOCAL_STATUS = {"active": "存续", "revoked": "吊销", "deregistered": "注销", "moved_out": "迁出"}
_KEYS = {"population": "id_number", "business": "uscc", "license": "license_id"}
_PARQUET_LICENSE_COUNTY = "150205"


@dataclass(frozen=True)
class _Extract:
    """One data file (or SQLite table) of a local system, covering rows ``[start, stop)`` of a dataset."""

    county: str
    dataset: str
    kind: str  # sqlite | csv | parquet
    path: str  # relative to the work directory
    mapping: str
    table: str | None
    start: int
    stop: int


@dataclass(frozen=True)
class _Layout:
    """How one local system writes its rows."""

    columns: dict[str, str]  # local column -> canonical field, in file order
    values: dict[str, dict[str, str]]  # canonical field -> canonical value -> local code
    naive_times: bool  # timestamps as naive local time (else ISO 8601 with +08:00)


_LAYOUTS = {
    "gongan": _Layout(_GONGAN_COLUMNS, {"status": _POP_LOCAL_STATUS}, True),
    "scjg": _Layout(_SCJG_COLUMNS, {"status": _BIZ_LOCAL_STATUS}, True),
    "business_csv": _Layout(_BUSINESS_CSV_COLUMNS, {"status": _BIZ_LOCAL_STATUS}, False),
    "license": _Layout({name: name for name in LICENSE_SCHEMA.names}, {}, False),
}


def _text_column(column: pa.ChunkedArray, naive_times: bool) -> list[str | None]:
    """A canonical column as the strings a local system stores (ISO dates, local times)."""
    if pa.types.is_timestamp(column.type):
        seconds = column.cast(pa.int64()).to_numpy() // 1_000_000 + _OFFSET_S
        text = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s").astype(object)
        return [t.replace("T", " ") for t in text] if naive_times else [f"{t}+08:00" for t in text]
    if pa.types.is_date(column.type) or pa.types.is_decimal(column.type):
        column = column.cast(pa.string())
    return column.to_pylist()


def _local_rows(table: pa.Table, layout: _Layout, text: dict[str, dict[int, str]], start: int) -> list[list]:
    """Rows ``table`` as written by a local system; ``text`` overrides fields (by global row index)."""
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


def _write_sqlite(path: Path, table: str, columns: Sequence[str], rows: list[list]) -> None:
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    try:
        con.execute(f"CREATE TABLE {table} ({', '.join(f'{c} TEXT' for c in columns)})")
        con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(columns))})", rows)
        con.commit()
    finally:
        con.close()


def _write_csv(path: Path, columns: Sequence[str], rows: list[list]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if v is None else v for v in row] for row in rows])


def _write_parquet(path: Path, columns: Sequence[str], rows: list[list]) -> None:
    arrays = [pa.array([row[i] for row in rows], pa.string()) for i in range(len(columns))]
    pq.write_table(pa.Table.from_arrays(arrays, names=list(columns)), path)


def _as_dropped_earlier(path: Path) -> None:
    """Date a drop file back past the drop folder's settle time: it is complete, ready to load at once.

    (A drop folder leaves a file that changed in the last minute alone: it may still be being written.)
    Only the file's times move, by a fixed amount, so the drops keep their order.
    """
    info = path.stat()
    back = int(2 * DEFAULT_SETTLE_SECONDS * 1e9)
    os.utime(path, ns=(info.st_atime_ns - back, info.st_mtime_ns - back))


def _write_mapping(path: Path, dataset: str, layout: _Layout, table: str | None) -> None:
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


def _chunks(county: str, dataset: str, start: int, count: int, kind: str, per_file: int) -> list[_Extract]:
    """The extracts of one county's dataset: one SQLite table, or drop files of at most ``per_file`` rows."""
    base = f"systems/{county}"
    if kind == "sqlite":
        name, table = ("gongan", "czrk") if dataset == "population" else ("scjg", "qydj")
        path, mapping = f"{base}/{name}.sqlite", f"{base}/{name}.mapping.yaml"
        return [_Extract(county, dataset, kind, path, mapping, table, start, start + count)]
    size = max(count if kind == "parquet" else per_file, 1)
    mapping = f"{base}/drop/{dataset}.mapping.yaml"
    return [
        _Extract(county, dataset, kind, f"{base}/drop/{dataset}/{dataset}-{i + 1:04d}.{kind}", mapping, None,
                 start + lo, start + min(lo + size, count))
        for i, lo in enumerate(range(0, max(count, 1), size))
    ]  # fmt: skip


def _layout_of(extract: _Extract) -> _Layout:
    if extract.dataset == "population":
        return _LAYOUTS["gongan"]
    if extract.dataset == "business":
        return _LAYOUTS["scjg" if extract.kind == "sqlite" else "business_csv"]
    return _LAYOUTS["license"]


def _ground_truth(
    draft: _Draft, dataset: str, extract: _Extract, keys: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    defects = []
    for row in np.flatnonzero(draft.kind[extract.start : extract.stop] >= 0).tolist():
        kind = draft.kinds[draft.kind[extract.start + row]]
        defects.append(
            {"row": row + 1, "key": keys[row], "defect": kind, "codes": [DEFECT_CODES[dataset][kind]]}
        )
    warnings = []
    if draft.legacy is not None:
        for row in np.flatnonzero(draft.legacy[extract.start : extract.stop]).tolist():
            warnings.append({"row": row + 1, "key": keys[row], "codes": [WARNING_CODES["legacy_id"]]})
    return defects, warnings


def _write_extract(root: Path, extract: _Extract, draft: _Draft, table: pa.Table) -> dict[str, Any]:
    layout = _layout_of(extract)
    part = table.slice(extract.start, extract.stop - extract.start)
    rows = _local_rows(part, layout, draft.text, extract.start)
    path = root / extract.path
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(layout.columns)
    if extract.kind == "sqlite":
        _write_sqlite(path, extract.table or "", columns, rows)
    elif extract.kind == "csv":
        _write_csv(path, columns, rows)
        _as_dropped_earlier(path)
    else:
        _write_parquet(path, columns, rows)
        _as_dropped_earlier(path)
    _write_mapping(root / extract.mapping, extract.dataset, layout, extract.table)
    key_index = list(layout.columns.values()).index(_KEYS[extract.dataset])
    defects, warnings = _ground_truth(draft, extract.dataset, extract, [row[key_index] for row in rows])
    return {
        "county": extract.county,
        "dataset": extract.dataset,
        "kind": extract.kind,
        "path": extract.path,
        "table": extract.table,
        "mapping": extract.mapping,
        "rows": len(rows),
        "defects": defects,
        "warnings": warnings,
    }


def generate_demo(
    workdir: str | Path,
    *,
    seed: int = 2026,
    population_per_county: int = 2000,
    business_per_county: int = 500,
    license_per_county: int = 800,
    defect_rate: float = 0.02,
    legacy_rate: float = 0.005,
    max_rows_per_file: int = MAX_ROWS_PER_FILE,
) -> dict[str, Any]:
    """Write the demo local systems under ``workdir/systems/<county>/`` and return the manifest.

    Per county: ``gongan.sqlite`` (table ``czrk``); ``scjg.sqlite`` (table ``qydj``) for counties at an
    even index of :data:`DEMO_COUNTIES`, else CSV drops in ``drop/business/``; license CSV drops in
    ``drop/license/`` (a Parquet file for 石拐区). Each system has a ``*.mapping.yaml`` beside it. The
    manifest (also written to ``workdir/manifest.json``) lists, per data file, its rows and the 1-based
    rows carrying each injected defect and warning with the codes a validator must report.
    """
    root = Path(workdir)
    places = _places(None)
    pools = _pools(seed)
    rng_pop, rng_biz, rng_lic = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    per_county = {
        "population": population_per_county,
        "business": business_per_county,
        "license": license_per_county,
    }
    extracts: dict[str, list[_Extract]] = {}
    for dataset, count in per_county.items():
        extracts[dataset] = []
        for k, place in enumerate(places):
            if dataset == "population" or (dataset == "business" and k % 2 == 0):
                kind = "sqlite"
            elif dataset == "license" and place.code == _PARQUET_LICENSE_COUNTY:
                kind = "parquet"
            else:
                kind = "csv"
            extracts[dataset] += _chunks(place.code, dataset, k * count, count, kind, max_rows_per_file)

    def rows_of(dataset: str) -> tuple[np.ndarray, list[tuple[int, int]]]:
        county = np.repeat(np.arange(len(places)), per_county[dataset])
        return county, [(e.start, e.stop) for e in extracts[dataset]]

    county, segments = rows_of("population")
    people, people_table = _population(
        rng_pop, county, places, pools, defect_rate, legacy_rate, segments, True
    )
    persons = _holders(people, people_table, "id_number", "birth")
    if not len(persons.codes):
        persons = _helper_persons(rng_pop, places, pools, 100)
    county, segments = rows_of("business")
    firms_draft, firms_table = _business(rng_biz, county, places, pools, persons, defect_rate, segments, True)
    county, segments = rows_of("license")
    licenses, license_tbl = _license(
        rng_lic,
        county,
        places,
        persons,
        _holders(firms_draft, firms_table, "uscc", "established"),
        defect_rate,
        segments,
        True,
    )

    for folder in {
        (root / e.path).parent for group in extracts.values() for e in group if e.kind != "sqlite"
    }:
        for stale in folder.glob(f"{folder.name}-*.*"):  # files of an earlier, larger run
            stale.unlink()
    systems = []
    for dataset, draft, table in (
        ("population", people, people_table),
        ("business", firms_draft, firms_table),
        ("license", licenses, license_tbl),
    ):
        systems += [_write_extract(root, e, draft, table) for e in extracts[dataset]]
    counties = [place.code for place in places]
    systems.sort(key=lambda s: (counties.index(s["county"]), list(per_county).index(s["dataset"]), s["path"]))
    manifest = {
        "seed": seed,
        "defect_rate": defect_rate,
        "reference_time": REFERENCE_TIME.isoformat(),
        "systems": systems,
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return manifest
