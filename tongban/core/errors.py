"""Errors of a sync run. Whether a retry can help is the catalogue's to say (:mod:`schemas.errors`)."""

from __future__ import annotations

from schemas.errors import TongbanError

__all__ = ["SyncError"]


class SyncError(TongbanError):
    """A run that cannot go on (the failure is recorded before this is raised)."""
