"""Errors of a sync run, and which of them a retry cannot fix."""

from __future__ import annotations

from connectors.errors import ExtractError

__all__ = ["PERMANENT", "SyncError"]

#: Codes of failures a retry cannot fix (bad input, bad signatures): fail fast.
PERMANENT = {
    "BATCH_KEY_UNKNOWN",
    "BATCH_KEY_REVOKED",
    "BATCH_KEY_EXPIRED",
    "BATCH_KEY_NODE",
    "BATCH_SIGNATURE",
    "BATCH_ROOT",
    "BATCH_ROWS",
    "BATCH_SCHEMA",
    "BATCH_SIGNER",
    "BATCH_EDGE",
    "BATCH_TARGET",
    "BATCH_DATASET",
    "BATCH_OWNER",
    "COLUMN_MISSING",
    "SPOOL_CORRUPT",
    "SPOOL_MISSING",
    "MAPPING_FIELD",
    "KEY_MISSING",
    "TRUST_SIGNATURE",
    "TRUST_UNREADABLE",
}


class SyncError(ExtractError):
    """A run that cannot go on (the failure is recorded before this is raised)."""

    @property
    def permanent(self) -> bool:
        return self.code in PERMANENT or self.code.startswith(("CONFIG_", "MAPPING_"))
