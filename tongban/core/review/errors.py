"""The refusal a review action ends with: a code from :mod:`schemas.errors`, zh and en, and where."""

from __future__ import annotations

from schemas.errors import TongbanError

__all__ = ["ReviewError"]


class ReviewError(TongbanError):
    """An action on a failed transfer that was refused (nothing of it was applied)."""
