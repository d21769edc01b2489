"""Text tables for the faces (the CLI, the demo): Chinese and Latin text lined up (CJK is two columns).

>>> table_line(["城西区", 12], [("name", 8, False), ("rows", 5, True)])
'城西区     12'
"""

from __future__ import annotations

import unicodedata
from typing import Any

__all__ = ["table_line"]


def _cell(value: object, width: int, right: bool) -> str:
    """Pad to a display width, counting CJK characters as two columns."""
    text = str(value)
    shown = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    pad = " " * max(width - shown, 0)
    return pad + text if right else text + pad


def table_line(values: list[object], columns: tuple[tuple[str, int, bool], ...] | list[Any]) -> str:
    """One row of a text table; ``columns`` gives each column's (title, width, right-aligned)."""
    return "".join(_cell(v, w, r) for v, (_, w, r) in zip(values, columns, strict=True)).rstrip()
