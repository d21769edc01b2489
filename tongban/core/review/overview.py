"""The numbers of the review page's overview: what is open where, how failures and loads went over
the last days, and each edge's lag and last success — each a small table a chart is drawn from."""

from __future__ import annotations

import datetime as _dt
from collections import Counter
from typing import Any

import sqlalchemy as sa

from schemas.errors import TongbanError
from tongban.core.config import Exchange
from tongban.core.engine.libraries import Libraries
from tongban.core.engine.overview import status

__all__ = ["overview"]


def _day(value: Any) -> str:
    return value.isoformat()[:10] if hasattr(value, "isoformat") else str(value)[:10]


def overview(
    ex: Exchange, libs: Libraries, *, days: int = 14, now: _dt.datetime | None = None
) -> dict[str, Any]:
    """Open failures by node, dataset and code; failures and loaded rows per day over ``days``; edges."""
    now = now or _dt.datetime.now(_dt.UTC)
    since = (now - _dt.timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    by_node: Counter[str] = Counter()
    by_dataset: Counter[str] = Counter()
    by_code: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()
    by_state: Counter[str] = Counter()
    failures_per_day: Counter[str] = Counter()
    loads_per_day: Counter[str] = Counter()
    unreachable: dict[str, str] = {}
    for code in ex.nodes:
        try:
            lib = libs.get(code)
            lib.migrate()
            t, b = lib.tables["failed_transfers"], lib.tables["batches"]
            with lib.connect() as conn:
                for state, dataset, kind, codes, n in conn.execute(
                    sa.select(t.c.state, t.c.dataset, t.c.kind, t.c.codes, sa.func.count())
                    .where(t.c.target == code)
                    .group_by(t.c.state, t.c.dataset, t.c.kind, t.c.codes)
                ):
                    by_state[state] += n
                    if state not in ("open", "queued"):
                        continue
                    by_node[code] += n
                    by_dataset[dataset] += n
                    by_kind[kind] += n
                    for c in codes.split(","):
                        by_code[c] += n
                day = sa.func.date(t.c.created_at)
                for d, n in conn.execute(
                    sa.select(day, sa.func.count())
                    .where(t.c.target == code, t.c.created_at >= since)
                    .group_by(day)
                ):
                    failures_per_day[_day(d)] += n
                lday = sa.func.date(b.c.loaded_at)
                for d, n in conn.execute(
                    sa.select(lday, sa.func.sum(b.c.inserted + b.c.updated))
                    .where(b.c.target == code, b.c.loaded_at >= since)
                    .group_by(lday)
                ):
                    loads_per_day[_day(d)] += int(n or 0)
        except TongbanError as exc:
            unreachable[code] = f"{exc.code}: {exc.message_en}"
    days_list = [(since + _dt.timedelta(days=i)).date().isoformat() for i in range(days)]
    return {
        "open": sum(by_node.values()),
        "by_state": dict(by_state),
        "by_node": [
            {"node": n, "name": ex.nodes[n].name, "open": by_node[n]} for n in ex.nodes if by_node.get(n)
        ],
        "by_dataset": [{"dataset": d, "open": n} for d, n in sorted(by_dataset.items())],
        "by_code": [{"code": c, "open": n} for c, n in by_code.most_common()],
        "by_kind": [{"kind": k, "open": n} for k, n in sorted(by_kind.items())],
        "per_day": [
            {"day": d, "failures": failures_per_day.get(d, 0), "loaded": loads_per_day.get(d, 0)}
            for d in days_list
        ],
        "edges": status(ex, libs=libs, now=now),
        "unreachable": unreachable,
    }
