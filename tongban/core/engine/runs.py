"""A whole run of one edge in this process, and what a failed run leaves behind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from schemas.errors import TongbanError
from tongban.core.config import Edge, Exchange
from tongban.core.engine import allocators, spool
from tongban.core.engine.base import ResolveConn, path_of
from tongban.core.engine.extraction import extract
from tongban.core.engine.interrupt import CancelToken, Interrupted
from tongban.core.engine.libraries import Libraries, using
from tongban.core.engine.loading import load
from tongban.core.engine.pipeline import overlapped, sync_overlapped
from tongban.core.engine.sealing import seal
from tongban.core.engine.validation import validate
from tongban.core.store import Library

__all__ = ["discard_run", "record_run_failure", "sync_edge"]


def discard_run(run_uri: str | None) -> None:
    """Remove a run's folder that will never load (a failed or interrupted run): its rows go with it."""
    if run_uri is not None:
        spool.discard(path_of(run_uri))


def record_run_failure(
    ex: Exchange,
    edge_id: str,
    exc: BaseException,
    *,
    log_url: str = "",
    resolve_conn: ResolveConn = None,
    libs: Libraries | None = None,
) -> None:
    """Keep a failed run of the edge as a failed transfer (counting attempts) and note the error."""
    edge = ex.edge(edge_id)
    if isinstance(exc, TongbanError):
        code, zh, en, where = exc.code, exc.message_zh, exc.message_en, exc.where
    else:
        code, zh, en, where = "RUN_FAILED", f"运行失败：{exc}", f"run failed: {exc}", ""
    try:
        with using(ex, libs, resolve_conn) as opened:
            _record(opened.get(edge.target), edge, code, zh, en, where, log_url)
    except TongbanError:
        pass  # the target library itself is down: the scheduler's own log keeps the failure


def _record(lib: Library, edge: Edge, code: str, zh: str, en: str, where: str, log_url: str) -> None:
    lib.migrate()
    lib.record_failure(
        kind="run",
        edge=edge.id,
        dataset=edge.dataset,
        source=edge.source,
        codes=[code],
        message_zh=zh,
        message_en=en,
        where=where,
        payload={"log_url": log_url} if log_url else None,
    )
    lib.note_attempt(edge.id, edge.dataset, edge.source, f"{code}: {en}")
    lib.release_claims(edge.id)  # resubmissions this run was sending wait for the next one


def sync_edge(
    ex: Exchange,
    edge_id: str,
    *,
    full: bool = False,
    resolve_conn: ResolveConn = None,
    on_rows: Callable[[int], None] | None = None,
    cancel: CancelToken | None = None,
    lock_wait: float = 0.0,
    libs: Libraries | None = None,
) -> dict[str, Any]:
    """Run the four steps of one edge in this process, holding the edge's lock throughout.

    A failure is recorded as a failed run, then raised. Another run holding the edge waits up to
    ``lock_wait`` seconds, then EDGE_BUSY (not recorded: that other run is doing the work). A stop
    asked for through ``cancel`` ends the run between batches (:class:`Interrupted`); what committed
    stays committed, the run's folder is removed, and the next run resumes from the committed cursor.
    """
    allocators.give_back()
    edge = ex.edge(edge_id)
    with spool.edge_lock(ex.spool, edge.id, wait=lock_wait), using(ex, libs, resolve_conn) as libs:
        run_uri = None
        try:
            if overlapped(ex, edge_id, libs):  # its run folder is removed by itself if it stops
                return sync_overlapped(ex, edge_id, full=full, libs=libs, on_rows=on_rows, cancel=cancel)[1]
            run_uri = extract(ex, edge_id, full=full, libs=libs, on_rows=on_rows, cancel=cancel)
            validate(ex, run_uri, cancel=cancel, libs=libs)
            seal(ex, run_uri, cancel=cancel, libs=libs)
            return load(ex, run_uri, cancel=cancel, libs=libs)
        except TongbanError as exc:
            record_run_failure(ex, edge_id, exc, libs=libs)
            discard_run(run_uri)  # nothing retries this run: the next one reads from the cursor
            raise
        except (Interrupted, Exception):
            discard_run(run_uri)
            raise
