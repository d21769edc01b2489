"""Vectorized calendar arithmetic: real-date checks and day numbers.

>>> import numpy as np
>>> real_date(np.array([2024, 2023, 2023]), np.array([2, 2, 4]), np.array([29, 29, 31])).tolist()
[True, False, False]
>>> days_since_epoch(np.array([1970, 2000]), np.array([1, 1]), np.array([2, 1])).tolist()
[1, 10957]
"""

from __future__ import annotations

import numpy as np

__all__ = ["days_since_epoch", "real_date", "today_days"]

_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int32)


def real_date(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """True where (year, month, day) is a date of the proleptic Gregorian calendar (years 1-9999)."""
    year = year.astype(np.int32, copy=False)
    month = month.astype(np.int32, copy=False)
    day = day.astype(np.int32, copy=False)
    month_ok = (month >= 1) & (month <= 12)
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    dim = _DAYS_IN_MONTH[np.where(month_ok, month, 0)] + ((month == 2) & leap)
    return month_ok & (year >= 1) & (year <= 9999) & (day >= 1) & (day <= dim)


def days_since_epoch(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 (Arrow date32 values) of real dates; garbage in, garbage out.

    The civil-from-days arithmetic of the proleptic Gregorian calendar, in
    integer vector operations (no datetime64 round trips).
    """
    y = year.astype(np.int64) - (month <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    m = month.astype(np.int64)
    doy = (153 * np.where(m > 2, m - 3, m + 9) + 2) // 5 + day.astype(np.int64) - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def today_days(today: object | None = None) -> int:
    """Day number of ``today`` (a ``datetime.date``), or of the current UTC+8 date."""
    import datetime as _dt

    if today is None:
        today = _dt.datetime.now(_dt.timezone(_dt.timedelta(hours=8))).date()
    assert isinstance(today, _dt.date)
    return (today - _dt.date(1970, 1, 1)).days
