"""The generator's fixed clock and calendar arithmetic (vectorized, no wall clock).

>>> ymd(np.array([0, 20_454]))
(array([1970, 2026]), array([1, 1]), array([1, 1]))
"""

from __future__ import annotations

import datetime as dt

import numpy as np

__all__ = ["LOCAL_TIMEZONE", "REFERENCE_TIME"]

CST = dt.timezone(dt.timedelta(hours=8))
#: The fixed "now" of all generated data; every date and ``updated_at`` lies before it.
REFERENCE_TIME = dt.datetime(2026, 11, 1, tzinfo=CST)
#: Zone of the naive local timestamps written by the SQLite systems (+08:00, no DST since 1991).
LOCAL_TIMEZONE = "Asia/Shanghai"

REF_S = int(REFERENCE_TIME.timestamp())
REF_DAY = (REFERENCE_TIME.date() - dt.date(1970, 1, 1)).days
OFFSET_S = 8 * 3600  # seconds east of UTC of local times
YEAR0 = 1900  # first year of the per-year tables
NYEARS = REFERENCE_TIME.year - YEAR0 + 1
DAYS_PER_YEAR = 365.2425
_UPDATE_FLOOR_S = int(dt.datetime(2024, 1, 1, tzinfo=CST).timestamp())


def ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def days(year: int, month: int = 1, day: int = 1) -> int:
    """Days since 1970-01-01 of a date."""
    return (dt.date(year, month, day) - dt.date(1970, 1, 1)).days


def updated(rng: np.random.Generator, since_day: np.ndarray) -> np.ndarray:
    """Whole-second UTC epoch times between max(2024-01-01, the record's date) and the reference time."""
    lo = np.maximum(np.asarray(since_day, dtype=np.int64) * 86400 - OFFSET_S, _UPDATE_FLOOR_S)
    lo = np.minimum(lo, REF_S - 3600)
    return lo + (rng.random(len(lo)) * (REF_S - lo)).astype(np.int64)


def impossible_dates(rng: np.random.Generator, years: np.ndarray) -> list[str]:
    """A calendar-impossible ``YYYY-MM-DD`` in each given year (Feb 30, Apr 31, Feb 29 of a common year)."""
    out = []
    for year, pick in zip(years.tolist(), rng.integers(0, 7, len(years)).tolist(), strict=True):
        choices = ["02-30", "02-31", "04-31", "06-31", "09-31", "11-31"]
        if year % 4 or (year % 100 == 0 and year % 400):
            choices.append("02-29")
        out.append(f"{year:04d}-{choices[pick % len(choices)]}")
    return out
