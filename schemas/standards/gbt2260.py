"""GB/T 2260 (中华人民共和国行政区划代码): administrative division codes.

A division code has six digits: two for the province, two for the prefecture
and two for the county. Codes are retired and reissued as divisions change, so
an old identity card may carry a code that is no longer current but was real.

The table is the one python-stdnum ships for resident identity cards
(``stdnum/cn/loc.dat``), which lists current and retired codes with the years
they were in use.

>>> lookup('630104').name
'城西区'
>>> lookup('320684').current   # 海门市 became 海门区 (320614) in 2020
False
>>> is_known('630104'), is_known('999999')
(True, False)
>>> province_of('632523')
'630000'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

__all__ = ["Division", "all_divisions", "is_known", "known_codes", "lookup", "province_of"]

_YEARS = re.compile(r"^\[(\d{4})?-(\d{4})?\]")


@dataclass(frozen=True, slots=True)
class Division:
    """One division code with its name and the years it was in use."""

    code: str
    name: str
    province: str
    start: int | None
    end: int | None

    @property
    def current(self) -> bool:
        """True while the code is still issued."""
        return self.end is None

    @property
    def level(self) -> str:
        """``province``, ``prefecture`` or ``county``."""
        if self.code.endswith("0000"):
            return "province"
        if self.code.endswith("00"):
            return "prefecture"
        return "county"


def _parse_period(raw: str) -> tuple[str, int | None, int | None]:
    match = _YEARS.match(raw)
    if not match:
        return raw, None, None
    start = int(match.group(1)) if match.group(1) else None
    end = int(match.group(2)) if match.group(2) else None
    return raw[match.end() :], start, end


def _parse_name(raw: str) -> tuple[str, int | None, int | None]:
    """Name and years of a code; a renamed code lists its names oldest first."""
    periods = [_parse_period(part) for part in raw.split(",")]
    return periods[-1][0], periods[0][1], periods[-1][2]


@cache
def all_divisions() -> dict[str, Division]:
    """Every known division code, current and retired, keyed by code."""
    text = resources.files("stdnum").joinpath("cn/loc.dat").read_text(encoding="utf-8")
    result: dict[str, Division] = {}
    prov_code = ""
    prov_name = ""
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if not line.startswith(" "):
            prefix, _, rest = line.partition(" ")
            prov_code = prefix
            prov_name = rest.split('"')[1] if '"' in rest else rest
            continue
        suffix, _, rest = line.strip().partition(" ")
        raw = rest.split('"')[1] if '"' in rest else rest
        name, start, end = _parse_name(raw)
        code = prov_code + suffix
        previous = result.get(code)
        if previous is not None and previous.current:
            continue  # keep the current use of a reissued code
        result[code] = Division(code, name, prov_name, start, end)
    return result


@cache
def known_codes() -> np.ndarray:
    """Sorted int32 array of every known code, for vectorized membership tests."""
    return np.array(sorted(int(c) for c in all_divisions()), dtype=np.int32)


def lookup(code: str) -> Division | None:
    """The division for ``code``, or None when it is not a known code."""
    return all_divisions().get(code)


def is_known(code: str) -> bool:
    """True when ``code`` is a current or retired division code."""
    return code in all_divisions()


def province_of(code: str) -> str:
    """The province-level code (``XX0000``) of a division code."""
    return code[:2] + "0000"


@cache
def _known_table() -> np.ndarray:
    table = np.zeros(1_000_000, dtype=bool)
    table[known_codes()] = True
    return table


def is_known_array(codes: np.ndarray) -> np.ndarray:
    """Vectorized :func:`is_known` over an integer array of codes (0-999999)."""
    codes = np.asarray(codes)
    inside = (codes >= 0) & (codes < 1_000_000)
    return _known_table()[np.where(inside, codes, 0)] & inside
