"""Prune what accumulates by age: spool run folders and drop-folder archives.

- the spool (``spool/<edge>/<run>/``): a committed run's summary (``load.json``) older than
  ``spool_days``, and a run folder that never committed older than that (an abandoned run: its files
  may hold whole rows). An edge whose lock is held (a sync is running) is left alone;
- each drop folder's ``archive/YYYYMMDD/`` older than ``archive_days`` (by the folder's date).

Quarantined files (``failed/``) stay until an operator acts on them.
"""

from __future__ import annotations

import datetime as _dt
import shutil
import time
from pathlib import Path
from typing import Any

from connectors.dropfolder import ARCHIVE
from schemas.errors import TongbanError
from tongban.core import logs
from tongban.core.config import Exchange
from tongban.core.engine import spool

__all__ = ["prune"]

_log = logs.get("tongban.maintenance")


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def prune(
    ex: Exchange,
    *,
    spool_days: float = 30,
    archive_days: float = 90,
    now: float | None = None,
) -> dict[str, Any]:
    """Remove run folders and archives older than their limits; what was removed, counted."""
    now = time.time() if now is None else now
    out = {"runs": 0, "archives": 0, "bytes": 0, "busy": 0}
    spool_cutoff = now - spool_days * 86_400
    if ex.spool.is_dir():
        for edge_dir in sorted(p for p in ex.spool.iterdir() if p.is_dir()):
            try:
                with spool.edge_lock(ex.spool, edge_dir.name, wait=0):
                    for run in sorted(p for p in edge_dir.iterdir() if p.is_dir()):
                        summary = run / spool.SUMMARY
                        stamp = (summary if summary.is_file() else run).stat().st_mtime
                        if stamp < spool_cutoff:
                            out["bytes"] += _size(run)
                            shutil.rmtree(run, ignore_errors=True)
                            out["runs"] += 1
            except TongbanError:  # EDGE_BUSY: a sync holds the edge
                out["busy"] += 1
    cutoff_day = _dt.datetime.fromtimestamp(now - archive_days * 86_400, _dt.UTC).strftime("%Y%m%d")
    for system in ex.systems.values():
        if system.kind != "files" or system.folder is None:
            continue
        archive = system.folder / ARCHIVE
        if not archive.is_dir():
            continue
        for day in sorted(p for p in archive.iterdir() if p.is_dir()):
            if len(day.name) == 8 and day.name.isdigit() and day.name < cutoff_day:
                out["bytes"] += _size(day)
                shutil.rmtree(day, ignore_errors=True)
                out["archives"] += 1
    logs.event(
        _log,
        "prune",
        f"pruned {out['runs']} run folders and {out['archives']} archive days",
        removed=out["runs"] + out["archives"],
        bytes=out["bytes"],
    )
    return out
