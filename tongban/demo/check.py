"""The demo checks itself: every defect the generator planted must be a failed transfer at its county with
its expected code, and no clean row may be rejected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tongban.core import engine
from tongban.core.config import Exchange

__all__ = ["check_planted"]


def check_planted(ex: Exchange, manifest: dict[str, Any]) -> dict[str, int]:
    """Compare the failed rows at each county with the defects the generator planted.

    Rows of a drop file are matched by their data row in the file; rows of a database by key, since an
    incremental read takes them in cursor order, not in the table's stored order.
    """
    totals = {"planted": 0, "found": 0, "missed": 0, "unexpected": 0}
    found: dict[tuple[str, str], dict[object, set[str]]] = {}
    with engine.Libraries(ex) as libs:
        counties = {
            code: libs.get(code).failures(kind="row", state=None)
            for code, node in ex.nodes.items()
            if node.level == "county"
        }
    for failures in counties.values():
        for row in failures:
            edge = ex.edge(row["edge"])
            if edge.source_kind != "system" or not row["where"]:
                continue
            origin, _, number = row["where"].rpartition(":")
            system = ex.systems[edge.source]
            if system.kind == "files":
                slot, ident = Path(origin).name, int(number)
            else:
                slot, ident = "", row["row_key"]
            found.setdefault((edge.source, slot), {})[ident] = set(row["codes"].split(","))
    matched: set[tuple[str, str]] = set()
    for system in manifest["systems"]:
        name = next(
            s.name
            for s in ex.systems.values()
            if s.node == system["county"] and s.dataset == system["dataset"]
        )
        if system["kind"] == "sqlite":
            slot, planted = "", {d["key"]: set(d["codes"]) for d in system["defects"]}
        else:
            slot, planted = Path(system["path"]).name, {d["row"]: set(d["codes"]) for d in system["defects"]}
        matched.add((name, slot))
        got = found.get((name, slot), {})
        totals["planted"] += len(planted)
        totals["found"] += sum(1 for r in got if r in planted)
        totals["missed"] += sum(1 for r, codes in planted.items() if not codes <= got.get(r, set()))
        totals["unexpected"] += sum(1 for r in got if r not in planted)
    totals["unexpected"] += sum(len(v) for k, v in found.items() if k not in matched)
    return totals
