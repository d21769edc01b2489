"""Re-sealing a library: rotating its data key, and sealing the plain rows an older library kept.

:func:`rotate` makes a new active data key (the old one is kept, ``retiring``, so everything still
opens); :func:`rekey` then walks every sealed column in chunks, each chunk one transaction that also
advances a cursor kept in the library (``tongban_meta.rekey_cursor``): interrupted at any point, the
next call resumes where the last committed chunk ended. When nothing sealed under a retiring key (or,
after schema step 6, nothing plain) is left — checked in the same transaction — the retiring keys are
deleted. Loads running meanwhile read the active key inside their own transaction, so they seal under
the new key as soon as the rotation commits.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

import schemas
from tongban.core.store.rows import PAYLOAD_AAD, pending_aad
from tongban.core.store.sealed import aad
from tongban.core.store.vault import INDEXED, SEALED, WrappedKey, index_column, is_sealed

if TYPE_CHECKING:
    from tongban.core.store.library import Library

__all__ = ["rekey", "rotate", "status"]

_CURSOR = "rekey_cursor"
_PENDING = "seal_pending"


def _walk() -> list[tuple[str, str, str | None, tuple[str, ...]]]:
    """``(table, primary key column, dataset, sealed columns)`` in the order a re-sealing walks them."""
    out: list[tuple[str, str, str | None, tuple[str, ...]]] = []
    for dataset, fields in SEALED.items():
        out.append((dataset, schemas.get(dataset).key, dataset, fields))
        out.append((f"{dataset}_history", "_id", dataset, fields))
    out.append(("failed_transfers", "id", None, ("payload", "pending")))
    return out


def rotate(lib: Library) -> str:
    """Make a new active data key; the old one stays (``retiring``) until :func:`rekey` completes."""
    master = lib.vault.master()
    lib.keyring()  # the master key must open what is there before anything changes
    t = lib.tables["data_keys"]
    new = WrappedKey.wrap(master, secrets.token_bytes(32), "data", "active")
    with lib.engine.begin() as conn:
        conn.execute(t.update().where(t.c.state == "active").values(state="retiring"))
        lib.add_keys(conn, [new])
        lib.set_meta(conn, _CURSOR, json.dumps({"table": 0, "after": None}))
    lib.keyring(reload=True)
    return new.key_id


def status(lib: Library) -> dict[str, Any]:
    """The library's data keys and where a re-sealing stands."""
    t = lib.tables["data_keys"]
    with lib.connect() as conn:
        keys = [dict(r) for r in conn.execute(sa.select(t.c.key_id, t.c.purpose, t.c.state)).mappings()]
        cursor = lib.meta(_CURSOR, conn)
        pending = bool(lib.meta(_PENDING, conn))
    return {"keys": keys, "cursor": json.loads(cursor) if cursor else None, "plain_pending": pending}


def _stale(
    conn: sa.Connection, lib: Library, retiring: list[str], pending: bool, limit: int = 1
) -> list[tuple[str, Any]]:
    """Values still sealed under a retiring key (or still plain while sealing is pending)."""
    found: list[tuple[str, Any]] = []
    for table, pk, _dataset, fields in _walk():
        t = lib.tables[table]
        for name in fields:
            col = t.c[name]
            cond = [col.like(f"tb1.{kid}.%") for kid in retiring]
            if pending:
                cond.append(sa.not_(col.like("tb1.%")))
            if not cond:
                continue
            stmt = sa.select(t.c[pk]).where(col.is_not(None), sa.or_(*cond)).limit(limit)
            found += [(table, k) for (k,) in conn.execute(stmt)]
    return found


def rekey(
    lib: Library, *, chunk: int = 1000, on_chunk: Callable[[str, int], None] | None = None
) -> dict[str, Any]:
    """Re-seal every value not under the active data key, resumably; returns the counts.

    ``on_chunk(table, rows)`` is called after each committed chunk (progress; a test interrupts here).
    """
    ring = lib.keyring(reload=True)
    walk = _walk()
    done = {"resealed": 0, "chunks": 0, "keys_deleted": 0}
    t_keys = lib.tables["data_keys"]
    for _attempt in range(3):
        while True:
            with lib.engine.begin() as conn:
                raw = lib.meta(_CURSOR, conn)
                cursor = json.loads(raw) if raw else {"table": 0, "after": None}
                index = int(cursor["table"])
                if index >= len(walk):
                    break
                table, pk, dataset, fields = walk[index]
                t = lib.tables[table]
                cols = [t.c[pk], *[t.c[f] for f in fields]]
                ix = [index_column(f) for f in INDEXED.get(dataset or "", ()) if f in fields]
                cols += [t.c[c] for c in ix]
                if dataset is not None and pk != schemas.get(dataset).key:
                    cols.append(t.c[schemas.get(dataset).key])
                stmt = sa.select(*cols).order_by(t.c[pk]).limit(chunk)
                if cursor["after"] is not None:
                    stmt = stmt.where(t.c[pk] > cursor["after"])
                rows = [dict(r) for r in conn.execute(stmt).mappings()]
                updates = []
                for row in rows:
                    change: dict[str, Any] = {}
                    for name in fields:
                        value = row[name]
                        if value is None or ring.key_of(value) == ring.active:
                            continue
                        if dataset is None:
                            where = f"{lib!r} failed_transfers {row[pk]} {name}"
                            bound = PAYLOAD_AAD if name == "payload" else pending_aad(row[pk])
                            change[name] = ring.seal(ring.open(value, bound, where=where), bound)
                            continue
                        key = row[schemas.get(dataset).key]
                        bound = aad(dataset, name, key)
                        plain = ring.open(value, bound, where=f"{lib!r} {table} {key} {name}")
                        change[name] = ring.seal(plain, bound)
                        if index_column(name) in ix and not is_sealed(value):
                            change[index_column(name)] = ring.index(plain)
                    if change:
                        updates.append((row[pk], change))
                for key_value, change in updates:
                    conn.execute(t.update().where(t.c[pk] == key_value).values(**change))
                if len(rows) < chunk:
                    nxt = {"table": index + 1, "after": None}
                else:
                    nxt = {"table": index, "after": rows[-1][pk]}
                lib.set_meta(conn, _CURSOR, json.dumps(nxt))
            done["resealed"] += len(updates)
            done["chunks"] += 1
            if on_chunk is not None:
                on_chunk(table, len(rows))
        # Finish in one transaction: nothing may be left under a retiring key (or plain) when it goes.
        with lib.engine.begin() as conn:
            retiring = list(
                conn.execute(sa.select(t_keys.c.key_id).where(t_keys.c.state == "retiring")).scalars()
            )
            pending = bool(lib.meta(_PENDING, conn))
            if _stale(conn, lib, retiring, pending):
                lib.set_meta(conn, _CURSOR, json.dumps({"table": 0, "after": None}))  # written meanwhile
                continue
            if retiring:
                done["keys_deleted"] = conn.execute(
                    t_keys.delete().where(t_keys.c.state == "retiring")
                ).rowcount
            lib.set_meta(conn, _CURSOR, None)
            lib.set_meta(conn, _PENDING, None)
        lib.keyring(reload=True)
        lib.checkpoint()
        return {**done, "settled": True}
    # Loads kept writing under a retiring key (they follow the rotation at their next transaction):
    # the keys stay, everything still opens, and the next call finishes.
    return {**done, "settled": False}
