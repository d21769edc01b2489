"""The sync engine: one edge's run as four steps, extract -> validate -> seal -> load.

Each step reads the files of the one before from the run's spool folder and writes its own typed
record (:mod:`.records`), so the steps can run as separate Airflow tasks that pass only the folder's
URI, or one after another from ``tongban sync`` (:func:`sync_edge`). Nothing here imports Airflow.

- :mod:`.extract` reads the source from the edge's cursor into Arrow IPC parts;
- :mod:`.validate` maps and checks each batch against the dataset's contract;
- :mod:`.seal` hashes the accepted rows, builds the Merkle root and signs one manifest per batch;
- :mod:`.load` verifies each batch (key, signature, what it is bound to, chain, root) and applies it
  in one transaction with its failed rows and the cursor (:meth:`tongban.core.store.Library.load_batch`).

Memory stays bounded by the batch size: every step streams batch by batch. The spool's files are
private and short-lived (:mod:`.spool`); each step holds the edge's lock; a stop asked for
(:mod:`.interrupt`) is honoured between batches.
"""

from __future__ import annotations

from tongban.core.engine.arrowio import hex_column
from tongban.core.engine.base import path_of, uri
from tongban.core.engine.extraction import extract
from tongban.core.engine.libraries import Libraries
from tongban.core.engine.loading import load
from tongban.core.engine.overview import status
from tongban.core.engine.runs import discard_run, record_run_failure, sync_edge
from tongban.core.engine.sealing import hash_columns, seal
from tongban.core.engine.validation import validate
from tongban.core.errors import SyncError

__all__ = [
    "Libraries",
    "SyncError",
    "discard_run",
    "extract",
    "hash_columns",
    "hex_column",
    "load",
    "path_of",
    "record_run_failure",
    "seal",
    "status",
    "sync_edge",
    "uri",
    "validate",
]
