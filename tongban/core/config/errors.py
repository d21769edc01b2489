"""The exchange config's error, and the did-you-mean hints its messages carry."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from schemas.errors import TongbanError

__all__ = ["ConfigError"]


class ConfigError(TongbanError):
    """The exchange config cannot be used: a stable code, both languages, ``where`` = ``file:line``."""


def _guess(word: str, known: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _hint(word: str, known: Iterable[str], *, show_known: bool = True) -> tuple[str, str]:
    """(zh, en) suffixes suggesting the closest known word, else (if ``show_known``) naming a few."""
    known = list(known)
    guess = _guess(word, known)
    if guess:
        return f"，是否应为 '{guess}'？", f" — did you mean '{guess}'?"
    if not show_known or not known:
        return "", ""
    shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
    return f"（可用：{shown}）", f" (known: {shown})"
