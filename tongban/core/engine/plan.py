"""What an edge reads and how, derived from the exchange config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from connectors.mapping import Mapping
from tongban.core.config import Edge, Exchange
from tongban.core.errors import SyncError

__all__ = ["Plan", "local_key", "plan_for"]


@dataclass(frozen=True)
class Plan:
    """One edge's plan: its dataset, who seals its batches, who owns its rows, how to map them."""

    edge: Edge
    dataset: str
    signer: str  # the node that seals the batches
    owner: str | None  # owner of every row (system edges), None: rows carry their _owner
    mapping: Mapping
    timezone: str | None
    allowlist: tuple[str, ...]
    folder: Path | None = None  # a drop folder's, for quarantining its files


def plan_for(ex: Exchange, edge_id: str) -> Plan:
    """The plan of ``edge_id``: a local system's edge is sealed by its county, which owns every row;
    a library edge is sealed by its source node and its rows keep their owners."""
    edge = ex.edge(edge_id)
    if edge.source_kind == "system" and edge.source in ex.broken:
        err = ex.broken[edge.source]  # its mapping cannot be used: the edge fails, the others go on
        raise SyncError(err.code, err.message_zh, err.message_en, err.where)
    if edge.source_kind == "system":
        system = ex.systems[edge.source]
        return Plan(
            edge,
            edge.dataset,
            signer=edge.target,
            owner=edge.target,
            mapping=system.mapping,
            timezone=system.mapping.timezone,
            allowlist=system.mapping.uscc_allowlist,
            folder=system.folder,
        )
    allow = tuple(sorted({c for s in ex.systems.values() for c in s.mapping.uscc_allowlist}))
    return Plan(
        edge, edge.dataset, signer=edge.source, owner=None, mapping=Mapping(), timezone="UTC", allowlist=allow
    )


def local_key(mapping: Mapping, key: str) -> str:
    """The local system's name of the dataset's key column."""
    for local, canonical in mapping.columns.items():
        if canonical == key:
            return local
    return key
