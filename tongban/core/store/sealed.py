"""Rows in and out of the vault: seal a batch's personal fields before it is written, open them when a
record is read (a parent's extract, a verification, the CLI), seal failed transfers' payloads.

Leaf hashes and row hashes are computed over the plaintext canonical rows before sealing, so the
signed Merkle roots, the merge's change detection (``_hash``) and every proof stay as they were: a
ciphertext is never compared, only the stored row hash.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

import schemas
from tongban.core.store.rows import PAYLOAD_AAD, pending_aad
from tongban.core.store.vault import INDEXED, SEALED, Keyring, index_column

__all__ = [
    "PAYLOAD_AAD",
    "aad",
    "open_batch",
    "open_payload",
    "open_pending",
    "open_row",
    "open_rows",
    "seal_payload",
    "seal_pending",
    "seal_table",
]


def aad(dataset: str, name: str, key: object) -> bytes:
    """What a sealed field is bound to: its dataset, field and record key."""
    return f"{dataset}.{name}:{key}".encode()


def _text(col: pa.ChunkedArray | pa.Array) -> list[Any]:
    t = col.type
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return [None if v is None else v.decode("utf-8", "replace") for v in col.to_pylist()]
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        col = pc.cast(col, pa.string())
    return col.to_pylist()


def seal_table(ring: Keyring, dataset: str, rows: pa.Table) -> pa.Table:
    """``rows`` with the dataset's sealed fields as envelopes, plus their keyed-hash columns."""
    fields = SEALED.get(dataset, ())
    if not fields or not rows.num_rows:
        return rows
    keys = [str(k).encode() for k in rows.column(schemas.get(dataset).key).to_pylist()]
    for name in fields:
        if name not in rows.column_names:
            continue
        values = _text(rows.column(name))
        prefix = f"{dataset}.{name}:".encode()
        sealed = ring.seal_many(values, [prefix + k for k in keys])
        rows = rows.set_column(rows.column_names.index(name), name, pa.array(sealed, pa.string()))
        if name in INDEXED.get(dataset, ()):
            hashed = pa.array([None if v is None else ring.index(v) for v in values], pa.string())
            column = index_column(name)
            if column in rows.column_names:
                rows = rows.set_column(rows.column_names.index(column), column, hashed)
            else:
                rows = rows.append_column(column, hashed)
    return rows


def open_row(ring: Keyring, dataset: str, row: dict[str, Any], *, where: str) -> dict[str, Any]:
    """A record read from the library with its sealed fields opened (index columns left out)."""
    fields = SEALED.get(dataset, ())
    if not fields:
        return row
    key = row.get(schemas.get(dataset).key)
    out = dict(row)
    for name in fields:
        value = out.get(name)
        if value is not None:
            out[name] = ring.open(str(value), aad(dataset, name, key), where=f"{where} {dataset}.{name}")
    for name in INDEXED.get(dataset, ()):
        out.pop(index_column(name), None)
    return out


def open_rows(
    ring: Keyring, dataset: str, rows: Iterable[dict[str, Any]], *, where: str
) -> list[dict[str, Any]]:
    return [open_row(ring, dataset, r, where=where) for r in rows]


def open_batch(ring: Keyring, dataset: str, batch: pa.RecordBatch, *, where: str) -> pa.RecordBatch:
    """A record batch read raw from a library (a parent's extract) with its sealed fields opened."""
    fields = [n for n in SEALED.get(dataset, ()) if n in batch.schema.names]
    if not fields or not batch.num_rows:
        return batch
    bound = [str(k).encode() for k in _text(batch.column(schemas.get(dataset).key))]
    arrays = list(batch.columns)
    names = batch.schema.names
    for name in fields:
        i = names.index(name)
        values = _text(arrays[i])
        prefix = f"{dataset}.{name}:".encode()
        opened = ring.open_many(values, [prefix + k for k in bound], where=f"{where} {dataset}.{name}")
        arrays[i] = pa.array(opened, pa.string())
    return pa.RecordBatch.from_arrays(arrays, names=names)


def seal_payload(ring: Keyring, payload: str | None) -> str | None:
    """A failed transfer's payload (JSON text) sealed."""
    return None if payload is None else ring.seal(payload, PAYLOAD_AAD)


def open_payload(ring: Keyring, payload: str | None, *, where: str) -> str | None:
    return None if payload is None else ring.open(payload, PAYLOAD_AAD, where=f"{where} payload")


def seal_pending(ring: Keyring, failure_id: int, pending: str | None) -> str | None:
    """A failed transfer's queued action (JSON text; a resubmission's edited row) sealed, bound to the
    failure's id."""
    return None if pending is None else ring.seal(pending, pending_aad(failure_id))


def open_pending(ring: Keyring, failure_id: int, pending: str | None, *, where: str) -> str | None:
    return None if pending is None else ring.open(pending, pending_aad(failure_id), where=f"{where} pending")
