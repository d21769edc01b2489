"""Errors a connector raises for input it cannot use: a stable code, both languages, and where.

The codes are declared in :mod:`schemas.errors`, the one catalogue every layer shares.
"""

from __future__ import annotations

from schemas.errors import TongbanError

__all__ = ["ExtractError"]


class ExtractError(TongbanError):
    """An extract, mapping or local system that cannot be read at all.

    ``where`` names the file (and line or field) so a person can go and look.
    """
