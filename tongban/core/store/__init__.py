"""The library store: a node's records with history, the batch ledger, failed transfers and sync state.

- :mod:`.tables`: table definitions (one per dataset, its history, the ledger, failed transfers, sync
  state, the load sequence);
- :mod:`.migrations`: creating and upgrading a library's schema from one place;
- :mod:`.library`: :class:`Library`, one node's library (state, failures, records, one batch's load);
- :mod:`.merge`: the set-based load of a batch (owner conflicts, unchanged, older, replaced, upsert);
- :mod:`.rows`: what a load takes and reports, and the one builder of a failed transfer's row;
- :mod:`.vault`: encryption at rest (master key, data and index keys, the sealed envelope);
- :mod:`.sealed`: rows sealed before they are written and opened when read;
- :mod:`.rekey`: sealing an older library's plain rows and rotating the data key, resumable;
- :mod:`.lookup`: finding records by an identifier (by its keyed hash when it is sealed).
"""

from __future__ import annotations

from tongban.core.store.library import Library
from tongban.core.store.migrations import migrate
from tongban.core.store.rows import FailedRow, LoadResult, dumps
from tongban.core.store.tables import META_COLUMNS, MIGRATION, SCHEMA_VERSION, SEQ, TABLES, StoreError
from tongban.core.store.vault import Vault, VaultError

__all__ = [
    "META_COLUMNS",
    "MIGRATION",
    "SCHEMA_VERSION",
    "SEQ",
    "TABLES",
    "FailedRow",
    "Library",
    "LoadResult",
    "StoreError",
    "Vault",
    "VaultError",
    "dumps",
    "migrate",
]
