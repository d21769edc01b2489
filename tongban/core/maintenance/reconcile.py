"""Anti-entropy between a child's library and its parent's: find drift without shipping whole tables.

As Cassandra's repair does it: each side hashes its records into buckets by key — a bucket's digest
combines the leaf hashes of the keys that fall in it, each recomputed from the record's content as the
engine seals it (so a record altered in place, its stored ``_hash`` untouched, is caught too) — and the
buckets form a tree (16 children a node). The two trees are compared from the root down; only the
leaves whose digests differ are read again, key by key, on both sides. What crosses between the two
sides is the digests on the path to a difference and the keys and leaf hashes of the differing
buckets, never a whole table (each side reads its own database locally).

The scope is the child's own records: those the child's library holds owned by the child or a node
below it, against the parent's records owned by the same nodes. A record the child loaded after the
parent's cursor for the edge is in flight, not drift; a record the parent holds under another owner
(a migration moved it) is not missing. What remains is kept as failed transfers of the edge in the
parent's library, once each (a rerun adds nothing while they stay open):

- ``RECONCILE_MISSING``: the child has the record, the parent does not;
- ``RECONCILE_EXTRA``: the parent has a record of the child's that the child does not;
- ``RECONCILE_DIFFERENT``: both have it, with different content (leaf hash).

>>> a, b = DigestTree(1), DigestTree(1)
>>> for k in ("k1", "k2", "k3"):
...     a.add(k, "h" + k); b.add(k, "h" + k)
>>> a.differing(b)[0]
[]
>>> b.add("k4", "hk4")
>>> len(a.differing(b)[0])
1
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

import schemas
from tongban.core import logs
from tongban.core.config import Exchange
from tongban.core.engine.libraries import Libraries, using
from tongban.core.maintenance.records import UNOPENED, content_hashes, scan, to_table
from tongban.core.store import SEQ, TABLES, Library, dumps
from tongban.core.store.rows import failure_row, utcnow

__all__ = ["FANOUT", "DigestTree", "Drift", "reconcile", "reconcile_pairs"]

#: Children per node of the digest tree.
FANOUT = 16
#: Rows a leaf bucket holds on average (the tree's depth follows the row count, 1 to 5 levels).
ROWS_PER_LEAF = 32
MAX_DEPTH = 5

_log = logs.get("tongban.maintenance")


def _bucket(key: str, leaves: int) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % leaves


def _leaf(key: str, leaf_hash: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{key}\0{leaf_hash}".encode(), digest_size=16).digest(), "big")


class DigestTree:
    """Digests of a set of ``(key, leaf hash)`` pairs in ``FANOUT ** depth`` buckets by key.

    A leaf's digest is the XOR of its pairs' hashes with their count (order does not matter, so each
    side streams its rows in any order); an inner node's is the hash of its children's digests.
    """

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.leaves = FANOUT**depth
        self._xor = [0] * self.leaves
        self._count = [0] * self.leaves
        self._levels: list[list[bytes]] | None = None
        self.rows = 0

    def add(self, key: str, leaf_hash: str) -> None:
        b = _bucket(key, self.leaves)
        self._xor[b] ^= _leaf(key, leaf_hash)
        self._count[b] += 1
        self.rows += 1
        self._levels = None

    def _build(self) -> list[list[bytes]]:
        if self._levels is None:
            level = [
                x.to_bytes(16, "big") + c.to_bytes(8, "big")
                for x, c in zip(self._xor, self._count, strict=True)
            ]
            levels = [level]
            while len(level) > 1:
                level = [
                    hashlib.blake2b(b"".join(level[i : i + FANOUT]), digest_size=16).digest()
                    for i in range(0, len(level), FANOUT)
                ]
                levels.append(level)
            self._levels = levels[::-1]  # the root first
        return self._levels

    def digest(self, level: int, index: int) -> bytes:
        """The digest of node ``index`` at ``level`` (0 is the root, ``depth`` the leaves)."""
        return self._build()[level][index]

    def differing(self, other: DigestTree) -> tuple[list[int], int]:
        """The leaf buckets whose digests differ, and how many digests the walk compared."""
        assert other.depth == self.depth
        diff: list[int] = []
        compared = 0
        stack = [(0, 0)]
        while stack:
            level, index = stack.pop()
            compared += 1
            if self.digest(level, index) == other.digest(level, index):
                continue
            if level == self.depth:
                diff.append(index)
                continue
            stack.extend((level + 1, index * FANOUT + c) for c in range(FANOUT - 1, -1, -1))
        return sorted(diff), compared


@dataclass
class Drift:
    """What one reconciliation of a child/parent pair found."""

    edge: str
    child: str
    parent: str
    dataset: str
    rows_child: int = 0
    rows_parent: int = 0
    buckets: int = 0  # leaf buckets of each tree
    compared: int = 0  # digests compared on the walk down
    differing: int = 0  # leaf buckets read key by key
    keys_read: int = 0  # keys and leaf hashes read from the differing buckets (both sides)
    pending: int = 0  # records the child loaded after the parent's cursor (in flight, not drift)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)
    recorded: int = 0  # new failed transfers written

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.different)

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for k in ("missing", "extra", "different"):
            out[k] = len(out[k])
        return out


def _depth(rows: int) -> int:
    if rows <= ROWS_PER_LEAF:
        return 1
    return max(1, min(MAX_DEPTH, math.ceil(math.log(rows / ROWS_PER_LEAF, FANOUT))))


def _where(lib: Library, dataset: str, owners: list[str]) -> Any:
    return lib.tables[dataset].c._owner.in_(owners)


def _count(lib: Library, dataset: str, owners: list[str]) -> int:
    t = lib.tables[dataset]
    stmt = sa.select(sa.func.count()).select_from(t).where(_where(lib, dataset, owners))
    with lib.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def _hashed(lib: Library, dataset: str, owners: list[str]) -> Iterator[tuple[str, str, int]]:
    """``(key, content hash, load sequence)`` of every record in scope, the hash computed from its
    content (so a record altered in place, its stored hash left as it was, shows as different)."""
    key = schemas.get(dataset).key
    for chunk in scan(lib, dataset, _where(lib, dataset, owners), extra=(SEQ,)):
        # A record whose sealed fields no longer open (altered in place) cannot hash as its child's does:
        # it shows as different, never as a crash of the whole reconciliation.
        opened = [r for r in chunk if UNOPENED not in r]
        hashes = iter(content_hashes(dataset, to_table(dataset, opened)) if opened else [])
        for row in chunk:
            h = f"unopened:{row[UNOPENED]}" if UNOPENED in row else next(hashes)
            yield str(row[key]), h, int(row[SEQ])


def _tree(lib: Library, dataset: str, owners: list[str], depth: int) -> DigestTree:
    tree = DigestTree(depth)
    for k, h, _seq in _hashed(lib, dataset, owners):
        tree.add(k, h)
    return tree


def _read_buckets(
    lib: Library, dataset: str, owners: list[str], leaves: int, wanted: set[int]
) -> dict[str, tuple[str, int]]:
    """``key -> (content hash, load sequence)`` of the records in the ``wanted`` buckets."""
    return {k: (h, seq) for k, h, seq in _hashed(lib, dataset, owners) if _bucket(k, leaves) in wanted}


def _pending(cursor: dict[str, Any] | None, seq: int, key: str) -> bool:
    """Loaded into the child after the parent's cursor for the edge (so not yet shipped)."""
    if not cursor:
        return True
    value, last = cursor.get("value"), cursor.get("key")
    if not isinstance(value, int):
        return True
    return seq > value or (seq == value and last is not None and key > str(last))


def _owners_elsewhere(lib: Library, dataset: str, keys: list[str], owners: set[str]) -> set[str]:
    """Keys the parent holds under an owner outside the scope (a migration moved them)."""
    t = TABLES[dataset]
    pk = schemas.get(dataset).key
    found: set[str] = set()
    with lib.connect() as conn:
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            for k, owner in conn.execute(sa.select(t.c[pk], t.c._owner).where(t.c[pk].in_(chunk))):
                if owner not in owners:
                    found.add(str(k))
    return found


_MESSAGES = {
    "RECONCILE_MISSING": (
        "对账：子库 {child} 有此记录，上级库 {parent} 没有",
        "reconcile: the child {child} holds this record, the parent {parent} does not",
    ),
    "RECONCILE_EXTRA": (
        "对账：上级库 {parent} 有子库 {child} 的此记录，子库没有",
        "reconcile: the parent {parent} holds this record of {child}, which the child does not",
    ),
    "RECONCILE_DIFFERENT": (
        "对账：子库 {child} 与上级库 {parent} 的此记录内容不同",
        "reconcile: the record differs between the child {child} and the parent {parent}",
    ),
}


def _record(parent: Library, drift: Drift, found: list[tuple[str, str, str | None, str | None]]) -> int:
    """Keep each finding as an open failed transfer of the edge in the parent's library, once."""
    if not found:
        return 0
    t = TABLES["failed_transfers"]
    now = utcnow()
    ring = parent.keyring()
    rows = []
    for code, key, child_hash, parent_hash in found:
        digest = hashlib.sha256(
            dumps([drift.edge, key, [code], child_hash, parent_hash]).encode()
        ).hexdigest()
        zh, en = _MESSAGES[code]
        rows.append(
            failure_row(
                kind="row",
                edge=drift.edge,
                dataset=drift.dataset,
                source=drift.child,
                target=drift.parent,
                codes=[code],
                message_zh=zh.format(child=drift.child, parent=drift.parent),
                message_en=en.format(child=drift.child, parent=drift.parent),
                where=f"reconcile {drift.edge}",
                row_key=key,
                payload={"child_hash": child_hash, "parent_hash": parent_hash},
                digest=digest,
                now=now,
                seal=ring,
            )
        )
    with parent.engine.begin() as conn:
        known: set[str] = set()
        digests = [r["digest"] for r in rows]
        for start in range(0, len(digests), 500):
            stmt = sa.select(t.c.digest).where(
                t.c.edge == drift.edge, t.c.state == "open", t.c.digest.in_(digests[start : start + 500])
            )
            known.update(d for (d,) in conn.execute(stmt))
        new = [r for r in rows if r["digest"] not in known]
        if new:
            conn.execute(t.insert(), new)
    return len(new)


def reconcile(
    ex: Exchange,
    child: str,
    parent: str,
    dataset: str,
    *,
    record: bool = True,
    libs: Libraries | None = None,
) -> Drift:
    """Compare the child's records with the parent's copies; keep the drift as failed transfers."""
    edge = f"{dataset}.{child}.{parent}"
    ex.edge(edge)  # EDGE_UNKNOWN when the exchange does not sync this pair
    drift = Drift(edge, child, parent, dataset)
    owners = sorted(ex.below(child))
    with using(ex, libs) as opened:
        lc, lp = opened.get(child), opened.get(parent)
        lc.migrate()
        lp.migrate()
        drift.rows_child = _count(lc, dataset, owners)
        drift.rows_parent = _count(lp, dataset, owners)
        depth = _depth(max(drift.rows_child, drift.rows_parent))
        a, b = _tree(lc, dataset, owners, depth), _tree(lp, dataset, owners, depth)
        drift.buckets = a.leaves
        wanted, drift.compared = a.differing(b)
        drift.differing = len(wanted)
        if wanted:
            mine = _read_buckets(lc, dataset, owners, a.leaves, set(wanted))
            theirs = _read_buckets(lp, dataset, owners, a.leaves, set(wanted))
            drift.keys_read = len(mine) + len(theirs)
            state = lp.state(edge)
            cursor = state.get("cursor") if state else None
            found: list[tuple[str, str, str | None, str | None]] = []
            missing = []
            for key, (h, seq) in sorted(mine.items()):
                other = theirs.get(key)
                if other is not None and other[0] == h:
                    continue
                if _pending(cursor, seq, key):
                    drift.pending += 1
                    continue
                if other is None:
                    missing.append(key)
                else:
                    drift.different.append(key)
                    found.append(("RECONCILE_DIFFERENT", key, h, other[0]))
            moved = _owners_elsewhere(lp, dataset, missing, set(owners)) if missing else set()
            for key in missing:
                if key not in moved:
                    drift.missing.append(key)
                    found.append(("RECONCILE_MISSING", key, mine[key][0], None))
            for key, (h, _seq) in sorted(theirs.items()):
                if key not in mine:
                    drift.extra.append(key)
                    found.append(("RECONCILE_EXTRA", key, None, h))
            if record:
                drift.recorded = _record(lp, drift, found)
    logs.event(
        _log,
        "reconcile",
        f"reconcile {edge}: {len(drift.missing)} missing, {len(drift.extra)} extra, "
        f"{len(drift.different)} different ({drift.differing} of {drift.buckets} buckets read)",
        edge=edge,
        pair=f"{child}->{parent}",
        dataset=dataset,
        missing=len(drift.missing),
        extra=len(drift.extra),
        different=len(drift.different),
        buckets=drift.buckets,
        rows=drift.rows_child,
    )
    return drift


def reconcile_pairs(ex: Exchange, parent: str, dataset: str, *, libs: Libraries | None = None) -> list[Drift]:
    """Reconcile every child of ``parent`` that syncs ``dataset`` into it."""
    out = []
    with using(ex, libs) as opened:
        for edge in ex.edges:
            if edge.dataset == dataset and edge.target == parent and edge.source_kind == "node":
                out.append(reconcile(ex, edge.source, parent, dataset, libs=opened))
    return out
