"""Failed transfers as the engine sees them: kept once, resolved by what later arrives, queued work.

A part of :class:`~tongban.core.store.library.Library`. What an operator does to a failure lives in
:mod:`tongban.core.review`; this is what a sync does to them:

- a rejected row re-read unchanged is kept once; one an operator queued for a retry (or whose
  resubmission was rejected again) is reopened with one more attempt, not added again;
- a row that loads clean from the edge's source resolves the open or queued failures of its key on
  that edge (the operator did nothing: the source was fixed, or the resubmission arrived);
- a drop file that loads resolves the open file failures of the same name (it was replaced);
- a run that succeeds resolves the edge's failed runs and refused batches;
- every change leaves a line in ``failed_actions`` (the failure's history).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from tongban.core.store.rows import FailedRow, dumps, failure_digest, utcnow

__all__ = ["ACTIVE", "Failures", "history_row"]

#: States a failure is still waiting in (an operator queued it, or nobody acted yet).
ACTIVE = ("open", "queued")


def history_row(
    failure_id: int,
    *,
    actor: str,
    action: str,
    state_from: str | None,
    state_to: str | None,
    at: _dt.datetime,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One line of a failure's history (no personal values: names of fields, codes, batch ids)."""
    return {
        "failure_id": failure_id,
        "at": at,
        "actor": actor,
        "action": action,
        "state_from": state_from,
        "state_to": state_to,
        "reason": reason,
        "detail": dumps(detail) if detail else None,
    }


class Failures:
    """What a sync does to failed transfers, a part of the Library."""

    node: str
    tables: dict[str, sa.Table]
    engine: sa.Engine

    # -- resolving ------------------------------------------------------------------------------

    def _close(
        self,
        conn: sa.Connection,
        where: Any,
        *,
        action: str,
        now: _dt.datetime,
        detail: dict[str, Any] | None = None,
    ) -> int:
        """Resolve the active failures ``where`` selects, with a line of history each."""
        t = self.tables["failed_transfers"]
        found = conn.execute(sa.select(t.c.id, t.c.state).where(where, t.c.state.in_(ACTIVE))).all()
        if not found:
            return 0
        ids = [i for i, _ in found]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            conn.execute(
                t.update()
                .where(t.c.id.in_(chunk), t.c.state.in_(ACTIVE))
                .values(  # (``pending`` stays: the resubmitted row says where the record went)
                    state="resolved",
                    version=t.c.version + 1,
                    updated_at=now,
                    closed_at=now,
                    closed_by="sync",
                )
            )
        conn.execute(
            self.tables["failed_actions"].insert(),
            [
                history_row(
                    i, actor="sync", action=action, state_from=s, state_to="resolved", at=now, detail=detail
                )
                for i, s in found
            ],
        )
        return len(found)

    def resolve_arrived(
        self,
        conn: sa.Connection,
        edge: str,
        keys: pa.ChunkedArray | pa.Array,
        *,
        batch_id: str,
        now: _dt.datetime,
        skip: Iterable[str] = (),
    ) -> int:
        """Resolve the row failures of ``keys`` (but ``skip``: owner conflicts) on ``edge``: the same
        keys just loaded clean from the same source. Cheap when the edge has none (one indexed query)."""
        t = self.tables["failed_transfers"]
        waiting = set(
            conn.execute(
                sa.select(t.c.row_key).where(
                    t.c.edge == edge, t.c.kind == "row", t.c.state.in_(ACTIVE), t.c.row_key.is_not(None)
                )
            ).scalars()
        )
        if not waiting:
            return 0
        waiting.difference_update(skip)
        present = pc.is_in(pc.cast(keys, pa.string()), value_set=pa.array(sorted(waiting), pa.string()))
        hit = sorted(set(pc.filter(keys, present).to_pylist()))
        done = 0
        for start in range(0, len(hit), 500):
            chunk = hit[start : start + 500]
            done += self._close(
                conn,
                sa.and_(t.c.edge == edge, t.c.kind == "row", t.c.row_key.in_(chunk)),
                action="arrived",
                now=now,
                detail={"batch": batch_id},
            )
        return done

    def resolve_runs(self, edge: str, conn: sa.Connection) -> None:
        """Close the edge's failed runs and refused batches once a run of it succeeds. A batch kept for
        review after it was loaded (signed by a key revoked since: ``tongban keys repair``) stays."""
        t, ledger = self.tables["failed_transfers"], self.tables["batches"]
        loaded = sa.exists(  # loaded before it was kept: a review of a batch that got in, not a refusal
            sa.select(ledger.c.batch_id).where(
                ledger.c.batch_id == t.c.batch_id, ledger.c.loaded_at <= t.c.created_at
            )
        )
        refused = sa.and_(t.c.kind == "batch", sa.not_(loaded))
        self._close(
            conn,
            sa.and_(t.c.edge == edge, sa.or_(t.c.kind == "run", refused)),
            action="edge_ok",
            now=utcnow(),
        )

    def resolve_file(self, edge: str, name: str) -> int:
        """Resolve the edge's file failures of a drop file named ``name``: a file of that name loaded."""
        t = self.tables["failed_transfers"]
        with self.engine.begin() as conn:
            rows = conn.execute(
                sa.select(t.c.id, t.c.payload).where(
                    t.c.edge == edge, t.c.kind == "file", t.c.state.in_(ACTIVE)
                )
            ).all()
            ids = [i for i, payload in rows if file_name(payload) == name]
            if not ids:
                return 0
            return self._close(conn, t.c.id.in_(ids), action="replaced", now=utcnow(), detail={"file": name})

    # -- kept once, reopened --------------------------------------------------------------------

    def reopen(
        self,
        conn: sa.Connection,
        failure_id: int,
        *,
        now: _dt.datetime,
        codes: Sequence[str] | None = None,
        message_zh: str | None = None,
        message_en: str | None = None,
        payload: Any = None,
        action: str = "attempt",
        detail: dict[str, Any] | None = None,
    ) -> bool:
        """A queued (or open) failure that failed again: open, one more attempt, its new codes."""
        t = self.tables["failed_transfers"]
        state = conn.execute(sa.select(t.c.state).where(t.c.id == failure_id)).scalar()
        if state not in ACTIVE:
            return False
        values: dict[str, Any] = {
            "state": "open",
            "pending": None,
            "attempts": t.c.attempts + 1,
            "version": t.c.version + 1,
            "updated_at": now,
        }
        if codes:
            values["codes"] = ",".join(codes)
        if message_zh is not None:
            values["message_zh"] = message_zh
        if message_en is not None:
            values["message_en"] = message_en
        if payload is not None:
            values["payload"] = dumps(payload)
        conn.execute(t.update().where(t.c.id == failure_id).values(**values))
        conn.execute(
            self.tables["failed_actions"]
            .insert()
            .values(
                **history_row(
                    failure_id,
                    actor="sync",
                    action=action,
                    state_from=state,
                    state_to="open",
                    at=now,
                    detail={**(detail or {}), **({"codes": list(codes)} if codes else {})},
                )
            )
        )
        return True

    def _new_failures(self, conn: sa.Connection, edge: str, rows: Sequence[FailedRow]) -> list[FailedRow]:
        """The rejected rows to keep as new failures. A row already kept (same digest, still open or
        discarded) adds nothing; one that answers a queued retry or resubmission of its key reopens
        that failure with one more attempt instead."""
        if not rows:
            return []
        t = self.tables["failed_transfers"]
        now = utcnow()
        digests = [failure_digest(edge, r) for r in rows]
        known: set[str] = set()
        for start in range(0, len(digests), 500):
            chunk = digests[start : start + 500]
            stmt = sa.select(t.c.digest).where(
                t.c.edge == edge, t.c.state.in_(("open", "queued", "discarded")), t.c.digest.in_(chunk)
            )
            known.update(d for (d,) in conn.execute(stmt))
        # Queued retries answer by key (the row was re-read); a resubmission by its failure's id only.
        queued = {
            key: fid
            for fid, key, pending in conn.execute(
                sa.select(t.c.id, t.c.row_key, t.c.pending).where(
                    t.c.edge == edge, t.c.kind == "row", t.c.state == "queued"
                )
            )
            if key is not None and (_json(pending) or {}).get("action") == "retry"
        }
        out: list[FailedRow] = []
        for r, d in zip(rows, digests, strict=True):
            target = r.failure_id if r.failure_id is not None else queued.get(r.key or "")
            if target is not None and self.reopen(
                conn,
                target,
                now=now,
                codes=r.codes,
                message_zh=r.message_zh,
                message_en=r.message_en,
                payload=r.payload,
                detail={"row": r.row_number},
            ):
                conn.execute(t.update().where(t.c.id == target).values(digest=d))
                continue
            if d not in known:
                out.append(r)
        return out

    # -- queued work for an edge's next run -----------------------------------------------------

    def queued(self, edge: str, action: str) -> list[dict[str, Any]]:
        """The edge's failures queued for ``action`` (``retry`` or ``resubmit``), oldest first, with
        their queued action parsed (``pending``)."""
        t = self.tables["failed_transfers"]
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t).where(t.c.edge == edge, t.c.state == "queued").order_by(t.c.id)
            ).mappings()
            out = []
            for r in rows:
                pending = _json(r["pending"])
                if isinstance(pending, dict) and pending.get("action") == action:
                    out.append({**r, "pending": pending})
        return out

    def claim(self, ids: Sequence[int], run_id: str) -> None:
        """Mark queued resubmissions as being sent by ``run_id`` (operators get FAILED_IN_FLIGHT until
        the run ends; a run that dies leaves the claim to the edge's next run, which claims them again)."""
        if not ids:
            return
        t = self.tables["failed_transfers"]
        with self.engine.begin() as conn:
            for fid, pending in conn.execute(
                sa.select(t.c.id, t.c.pending).where(t.c.id.in_(list(ids)), t.c.state == "queued")
            ).all():
                data = _json(pending) or {}
                data["run"] = run_id
                conn.execute(
                    t.update().where(t.c.id == fid).values(pending=dumps(data), version=t.c.version + 1)
                )

    def release_claims(self, edge: str) -> int:
        """A run of ``edge`` failed: the resubmissions it claimed wait, queued, for the next run (and
        operators may act on them again)."""
        t = self.tables["failed_transfers"]
        released = 0
        with self.engine.begin() as conn:
            for fid, pending in conn.execute(
                sa.select(t.c.id, t.c.pending).where(t.c.edge == edge, t.c.state == "queued")
            ).all():
                data = _json(pending)
                if isinstance(data, dict) and data.pop("run", None):
                    conn.execute(
                        t.update().where(t.c.id == fid).values(pending=dumps(data), version=t.c.version + 1)
                    )
                    released += 1
        return released

    def resolve_resubmitted(self, ids: Sequence[int], batch_ids: Sequence[str]) -> int:
        """Resolve the resubmissions a run loaded (those rejected again were reopened already)."""
        if not ids:
            return 0
        t = self.tables["failed_transfers"]
        with self.engine.begin() as conn:
            return self._close(
                conn,
                sa.and_(t.c.id.in_(list(ids)), t.c.state == "queued"),
                action="resubmitted",
                now=utcnow(),
                detail={"batch": list(batch_ids)},
            )

    def queued_edges(self) -> list[str]:
        """Edges with failures queued for their next run."""
        t = self.tables["failed_transfers"]
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(t.c.edge).where(t.c.state == "queued", t.c.target == self.node).distinct()
                ).scalars()
            )

    def requeue_missing(self, ids: Sequence[int], why_zh: str, why_en: str, code: str) -> int:
        """Reopen queued failures a run could not act on (the row is gone from the source, the file
        from quarantine), with the reason in their history."""
        if not ids:
            return 0
        done = 0
        now = utcnow()
        with self.engine.begin() as conn:
            for fid in ids:
                done += self.reopen(
                    conn, fid, now=now, action="not_found", detail={"code": code, "zh": why_zh, "en": why_en}
                )
        return done


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def file_name(payload: str | None) -> str | None:
    data = _json(payload)
    if not isinstance(data, dict):
        return None
    name = data.get("name") or data.get("file")
    return str(name).rsplit("/", 1)[-1] if name else None
