"""Maintenance of the exchange's libraries and folders, run by the maintenance DAGs (or by hand).

- :mod:`.reconcile`: anti-entropy between a child's library and its parent's, as Cassandra's repair
  does it — each side hashes its records into buckets of keys, the digests are compared as a tree,
  and only the buckets that differ are read key by key. Missing, extra and different records are
  kept as failed transfers (``RECONCILE_MISSING``, ``RECONCILE_EXTRA``, ``RECONCILE_DIFFERENT``).
- :mod:`.expire`: licenses whose ``valid_until`` has passed become ``05`` 失效 in their owner's
  library, through the library's own load path (a signed batch: load sequence, history and hashes
  stay right), and so travel up with the next sync.
- :mod:`.prune`: spool run summaries and abandoned run folders, and drop-folder archives, by age.

Nothing here imports Airflow.
"""

from __future__ import annotations

from tongban.core.maintenance.expire import expire_licenses
from tongban.core.maintenance.prune import prune
from tongban.core.maintenance.reconcile import DigestTree, Drift, reconcile, reconcile_pairs

__all__ = ["DigestTree", "Drift", "expire_licenses", "prune", "reconcile", "reconcile_pairs"]
