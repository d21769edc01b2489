"""Places: the demo counties, their GB/T 2260 names, the codes a place used over the years, migrants' origins.

>>> place("632823").address_prefix
'青海省海西蒙古族藏族自治州天峻县'
>>> lineage("320614")[:2]
('320614', '320684')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from stdnum import numdb

from schemas.standards import gbt2260
from tongban.demo.generate.dates import NYEARS, YEAR0

__all__ = ["DEMO_COUNTIES"]

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

_PROVINCE_SUFFIXES = ("壮族自治区", "回族自治区", "维吾尔自治区", "自治区", "特别行政区", "省", "市")
# Provinces whose counties supply migrants' birth places (besides the person's own province).
ORIGIN_PROVINCES = ("15", "32", "43", "61", "62", "63", "64")


@dataclass(frozen=True, slots=True)
class Place:
    """A current county-level division and the names around it."""

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
def place(code: str) -> Place:
    """The place of a current county-level code; ValueError otherwise."""
    division = gbt2260.lookup(code)
    if division is None or division.level != "county" or not division.current:
        raise ValueError(f"{code!r} is not a current county-level GB/T 2260 division code")
    prefecture = gbt2260.lookup(code[:4] + "00")
    province = gbt2260.lookup(code[:2] + "0000")
    pref_name = prefecture.name if prefecture is not None and "辖" not in prefecture.name else ""
    province_name = province.name if province is not None else division.province
    return Place(code, division.name, code[:2] + "0000", province_name, pref_name)


def places_of(divisions: Sequence[str] | None) -> list[Place]:
    """The places of ``divisions`` (default: the demo counties)."""
    codes = [c for c, *_ in DEMO_COUNTIES] if divisions is None else list(divisions)
    if not codes:
        raise ValueError("divisions must not be empty")
    return [place(str(c)) for c in codes]


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
    years = np.arange(YEAR0, YEAR0 + NYEARS)
    ok = np.zeros(NYEARS, dtype=bool)
    for lo, hi in _periods(code):
        ok |= (years >= lo) & (years <= hi)
    return ok


@cache
def lineage(code: str) -> tuple[str, ...]:
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
def year_codes(code: str) -> np.ndarray:
    """For each year since 1900, the area code a person born there that year carries (int64)."""
    out = np.full(NYEARS, int(code), dtype=np.int64)
    filled = np.zeros(NYEARS, dtype=bool)
    for candidate in (*lineage(code), code[:4] + "00", code[:2] + "0000"):
        ok = _valid_years(candidate) & ~filled
        out[ok] = int(candidate)
        filled |= ok
    return out


@cache
def origin_pool(prefixes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """County codes (current and retired) of some provinces, with their valid birth years."""
    codes = [
        c
        for c, d in gbt2260.all_divisions().items()
        if c[:2] in prefixes and d.level == "county" and "辖" not in d.name and not c.endswith("01")
    ]
    valid = np.array([_valid_years(c) for c in codes], dtype=bool).reshape(len(codes), NYEARS)
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


def sample_valid(
    rng: np.random.Generator, codes: np.ndarray, valid: np.ndarray, years: np.ndarray
) -> np.ndarray:
    """One code per year valid in that year (0 where none was found after a few draws)."""
    out = np.zeros(len(years), dtype=np.int64)
    pending = np.arange(len(years))
    for _ in range(8):
        if not len(pending) or not len(codes):
            break
        pick = rng.integers(0, len(codes), len(pending))
        ok = valid[pick, years[pending] - YEAR0]
        out[pending[ok]] = codes[pick[ok]]
        pending = pending[~ok]
    return out


def moved_to(
    rng: np.random.Generator, county: np.ndarray, places: list[Place], moved: np.ndarray
) -> np.ndarray:
    """Destination division codes (int64, 0 = none) for the rows flagged ``moved``."""
    out = np.zeros(len(county), dtype=np.int64)
    for k, place_ in enumerate(places):
        rows = np.flatnonzero(moved & (county == k))
        dest = _destinations(place_.code)
        if len(rows) and len(dest):
            out[rows] = dest[rng.integers(0, len(dest), len(rows))]
    return out
