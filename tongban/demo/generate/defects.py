"""Planted defects: which rows carry one, of which kind, and the codes a validator must report for them.

A share ``rate`` of the rows carries exactly one defect each (:data:`DEFECT_CODES`): a wrong check
character, an impossible date (text extracts only), a gender that contradicts the ID, an unknown
ethnicity code, a key repeated later in the same extract, or a validity end before its start. Defects
never cause another rule to fail. 15-digit legacy ID numbers are valid rows expected to be flagged
(:data:`WARNING_CODES`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tongban.demo.generate.dates import impossible_dates, ymd
from tongban.demo.generate.drafts import Cols, Draft

__all__ = ["DEFECT_CODES", "WARNING_CODES"]

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


def new_draft(
    rng: np.random.Generator,
    cols: Cols,
    dataset: str,
    rate: float,
    segments: Sequence[tuple[int, int]] | None,
    textual: bool,
) -> Draft:
    """A draft of clean columns with its defect plan; ``segments`` are the extracts' row ranges (a
    duplicate repeats a key of its own extract), ``textual`` whether impossible dates can be written."""
    kinds = tuple(k for k in DEFECT_CODES[dataset] if textual or k != "impossible_date")
    n = len(next(iter(cols.values())))
    kind, source = _plan(rng, n, rate, kinds, _segment_starts(n, segments))
    return Draft(cols, kind, source, kinds)


def copy_identity(draft: Draft, names: Sequence[str]) -> None:
    """Make each duplicate row repeat its source's key (and the fields the key determines)."""
    rows = draft.rows("duplicate_key")
    src = draft.source[rows]
    for name in names:
        draft.cols[name][rows] = draft.cols[name][src]
    updated = draft.cols["updated"]
    same = updated[rows] == updated[src]
    updated[rows[same]] -= 1  # the later occurrence always differs in content


def corrupt_check(draft: Draft, rng: np.random.Generator, modulus: int) -> None:
    """Shift the check character of the ``wrong_check`` rows by 1 to ``modulus - 1`` places."""
    rows = draft.rows("wrong_check")
    draft.cols["shift"][rows] = rng.integers(1, modulus, len(rows))


def impossible(draft: Draft, rng: np.random.Generator, column: str, days: np.ndarray) -> None:
    """Write an impossible date in ``column`` of the ``impossible_date`` rows, in the year of ``days``."""
    rows = draft.rows("impossible_date")
    if len(rows):
        years = ymd(days[rows])[0]
        draft.text[column] = dict(zip(rows.tolist(), impossible_dates(rng, years), strict=True))


def ground_truth(
    draft: Draft, dataset: str, start: int, stop: int, keys: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The planted defects and warnings of rows ``[start, stop)`` (1-based rows of the extract, keys)."""
    defects = []
    for row in np.flatnonzero(draft.kind[start:stop] >= 0).tolist():
        kind = draft.kinds[draft.kind[start + row]]
        defects.append(
            {"row": row + 1, "key": keys[row], "defect": kind, "codes": [DEFECT_CODES[dataset][kind]]}
        )
    warnings = []
    if draft.legacy is not None:
        for row in np.flatnonzero(draft.legacy[start:stop]).tolist():
            warnings.append({"row": row + 1, "key": keys[row], "codes": [WARNING_CODES["legacy_id"]]})
    return defects, warnings
