"""Row hashing and Merkle trees: the leaves and roots that batch manifests sign.

A row's *leaf hash* is ``sha256(b"\\x00" + canonical bytes)``. The canonical bytes of a row are the
listed columns, in order, each rendered as text and joined by ``b"\\x1f"``:

* strings as they are (UTF-8); integers in decimal; booleans ``true`` / ``false``;
* dates ``YYYY-MM-DD``; timestamps in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (naive ones are taken as UTC);
* decimals as Arrow and :class:`decimal.Decimal` print them at the column's scale (``12.3400``);
* NULL as the single byte ``b"\\x00"``, so NULL and the empty string differ.

Validated text never holds control characters (:func:`schemas.coerce.read_text` rejects them), so
``\\x1f`` and ``\\x00`` cannot occur inside a value and the rendering is unambiguous.

The tree has up to :data:`ARITY` (16) children per node: an interior node is ``sha256(b"\\x01" +
children)`` over its 2 to 16 children in order (domain-separated from leaves as in RFC 6962); a lone node
at the end of a level is promoted unchanged; the root of no leaves is ``sha256(b"")``. Sixteen children
per node need a fifteenth of the hashes of a binary tree (hashing cost here is per call, not per byte),
and a proof of one row among 262,144 is five steps.

>>> import pyarrow as pa
>>> t = pa.table({"a": ["x", None], "b": [1, 2]})
>>> canonical_row(["x", 1]), canonical_row([None, 2])
(b'x\\x1f1', b'\\x00\\x1f2')
>>> leaves = row_hashes(t, ["a", "b"])
>>> leaves.shape, bytes(leaves[1]) == leaf_hash(canonical_row([None, 2]))
((2, 32), True)
>>> root = merkle_root(leaves)
>>> verify_proof(bytes(leaves[0]), merkle_proof(leaves, 0), root)
True
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import itertools
from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "ARITY",
    "EMPTY_ROOT",
    "canonical_row",
    "leaf_hash",
    "merkle_proof",
    "merkle_root",
    "render_column",
    "row_hash_one",
    "row_hashes",
    "verify_proof",
]

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
ARITY = 16  # children per interior node
SEPARATOR = b"\x1f"
NULL = b"\x00"
EMPTY_ROOT = hashlib.sha256(b"").digest()

_CHUNK_ROWS = 65_536  # rows rendered and hashed at a time: bounds the Python objects alive at once
_UTC = datetime.UTC
_TS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # %S of a microsecond timestamp prints SS.ffffff
_LEAF_BASE = hashlib.sha256(LEAF_PREFIX)
_NODE_BASE = hashlib.sha256(NODE_PREFIX)
_HASH = type(_LEAF_BASE)


# --- canonical rendering ---------------------------------------------------------------------------


def render_column(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The column rendered as canonical text (``pa.string()``), NULLs kept as NULL.

    >>> import datetime as dt
    >>> render_column(pa.array([dt.date(999, 3, 4), None])).to_pylist()
    ['0999-03-04', None]
    """
    typ = column.type
    if pa.types.is_dictionary(typ):
        return render_column(pc.cast(column, typ.value_type))
    if pa.types.is_string(typ):
        return column
    if pa.types.is_large_string(typ):
        return pc.cast(column, pa.string())
    if pa.types.is_null(typ):
        return pc.cast(column, pa.string())
    if pa.types.is_timestamp(typ):
        utc = pc.cast(column, pa.timestamp("us", tz="UTC"))  # a tz change is metadata; a unit change is safe
        # A cast to text gives "YYYY-MM-DD HH:MM:SS.ffffff" (the same as strftime, some 30x faster).
        text = pc.cast(utc.cast(pa.timestamp("us")), pa.string())
        return pc.binary_join_element_wise(pc.utf8_replace_slice(text, 10, 11, "T"), "Z", "")
    if (
        pa.types.is_integer(typ)
        or pa.types.is_boolean(typ)
        or pa.types.is_date(typ)
        or pa.types.is_decimal(typ)
    ):
        return pc.cast(column, pa.string())
    raise TypeError(f"cannot render a column of type {typ} canonically")


def _render_value(value: object) -> bytes:
    if value is None:
        return NULL
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, datetime.datetime):
        v = value.astimezone(_UTC) if value.tzinfo is not None else value
        return (
            f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
            f".{v.microsecond:06d}Z"
        ).encode()
    if isinstance(value, datetime.date):
        return value.isoformat().encode()
    if isinstance(value, decimal.Decimal):
        return str(value).encode()
    raise TypeError(f"cannot render a value of type {type(value).__name__} canonically")


def canonical_row(values: Sequence[object]) -> bytes:
    """Canonical bytes of one row, from Python values: the slow reference for :func:`row_hashes`.

    Decimals must carry the column's scale (as read back from Arrow: ``Decimal('1.5000')``).

    >>> import datetime as dt, decimal
    >>> canonical_row(["张三", None, "", dt.date(2024, 1, 2), decimal.Decimal("1.5000")]).decode()
    '张三\\x1f\\x00\\x1f\\x1f2024-01-02\\x1f1.5000'
    >>> canonical_row([dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=8)))])
    b'2024-01-01T19:04:05.000006Z'
    """
    return SEPARATOR.join(_render_value(v) for v in values)


def leaf_hash(canonical: bytes) -> bytes:
    """The leaf hash of a row's canonical bytes: ``sha256(b"\\x00" + canonical)``."""
    return hashlib.sha256(LEAF_PREFIX + canonical).digest()


def row_hash_one(values: Sequence[object]) -> bytes:
    """The leaf hash of one row given as Python values (slow reference)."""
    return leaf_hash(canonical_row(values))


# --- vectorized row hashing ------------------------------------------------------------------------


def _hash_all(base: hashlib._Hash, messages: list[bytes]) -> bytes:
    """Concatenated ``sha256(prefix + m)`` digests; the per-message calls run in C (``map`` over methods)."""
    hashes = list(map(_HASH.copy, itertools.repeat(base, len(messages))))
    for _ in map(_HASH.update, hashes, messages):
        pass
    return b"".join(map(_HASH.digest, hashes))


def _join_batch(batch: pa.RecordBatch) -> pa.Array:
    """A chunk's canonical rows as one binary array (NULLs rendered, columns joined)."""
    cols = batch.columns
    if len(cols) == 1:
        joined = pc.fill_null(cols[0], NULL.decode())
    else:
        joined = pc.binary_join_element_wise(
            *cols, SEPARATOR.decode(), null_handling="replace", null_replacement=NULL.decode()
        )
    return joined.cast(pa.binary())


def row_hashes(table: pa.Table, columns: Sequence[str]) -> np.ndarray:
    """Leaf hashes of every row of ``table`` over ``columns`` (in that order): shape ``(n, 32)`` uint8.

    Rendering and joining run in Arrow; each row is then hashed from the joined binary column (Arrow
    hands the rows over as ``bytes``, several times faster than slicing memoryviews). Work goes in
    chunks of 65,536 rows, so memory beyond the result stays small.
    """
    n = table.num_rows
    out = np.empty((n, 32), dtype=np.uint8)
    if n == 0:
        return out
    if not columns:
        out[:] = np.frombuffer(leaf_hash(b""), dtype=np.uint8)
        return out
    rendered = pa.Table.from_arrays(
        [render_column(table.column(name)) for name in columns], names=[str(i) for i in range(len(columns))]
    )
    flat = out.reshape(-1)
    pos = 0
    for batch in rendered.to_batches(max_chunksize=_CHUNK_ROWS):
        messages = _join_batch(batch).to_numpy(zero_copy_only=False).tolist()
        digests = _hash_all(_LEAF_BASE, messages)
        flat[pos : pos + len(digests)] = np.frombuffer(digests, dtype=np.uint8)
        pos += len(digests)
    return out


# --- Merkle trees ----------------------------------------------------------------------------------


def _as_leaves(leaves: np.ndarray | Sequence[bytes]) -> np.ndarray:
    if isinstance(leaves, np.ndarray):
        arr = leaves
    else:
        items = list(leaves)
        if any(len(x) != 32 for x in items):
            raise ValueError("leaves must be 32-byte hashes")
        arr = np.frombuffer(b"".join(items), dtype=np.uint8).reshape(len(items), 32)
    if arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[1] != 32:
        raise ValueError(f"leaves must be an (n, 32) uint8 array, not {arr.dtype} {arr.shape}")
    return arr


def _next_level(level: np.ndarray) -> np.ndarray:
    """Hash groups of :data:`ARITY` nodes of ``level``; a lone last node is promoted unchanged."""
    m = len(level)
    full, rest = divmod(m, ARITY)
    up = np.empty((full + (1 if rest else 0), 32), dtype=np.uint8)
    if full:
        width = 32 * ARITY
        joined = np.ascontiguousarray(level[: full * ARITY]).reshape(full, width).view(np.dtype(f"V{width}"))
        digests = _hash_all(_NODE_BASE, joined.reshape(full).tolist())
        up[:full] = np.frombuffer(digests, dtype=np.uint8).reshape(full, 32)
    if rest == 1:
        up[full] = level[m - 1]
    elif rest:
        up[full] = np.frombuffer(
            hashlib.sha256(NODE_PREFIX + level[full * ARITY :].tobytes()).digest(), np.uint8
        )
    return up


def _levels(leaves: np.ndarray) -> Iterator[np.ndarray]:
    level = leaves
    yield level
    while len(level) > 1:
        level = _next_level(level)
        yield level


def merkle_root(leaves: np.ndarray | Sequence[bytes]) -> bytes:
    """The Merkle root (32 bytes) of ``leaves``.

    >>> merkle_root([]) == EMPTY_ROOT
    True
    >>> a, b, c = (bytes([i]) * 32 for i in range(3))
    >>> node = lambda *children: hashlib.sha256(b"\\x01" + b"".join(children)).digest()
    >>> merkle_root([a]) == a, merkle_root([a, b, c]) == node(a, b, c)
    (True, True)
    >>> merkle_root([a] * 17) == node(node(*[a] * 16), a)
    True
    """
    arr = _as_leaves(leaves)
    if len(arr) == 0:
        return EMPTY_ROOT
    level = arr
    while len(level) > 1:
        level = _next_level(level)
    return level[0].tobytes()


def merkle_proof(leaves: np.ndarray | Sequence[bytes], index: int) -> list[tuple[int, list[bytes]]]:
    """The audit path of leaf ``index`` from the bottom up: per level, the node's position among its
    siblings and the siblings in order (``node = H(1 + siblings[:pos] + node + siblings[pos:])``).

    Levels where the node is promoted alone add nothing.
    """
    arr = _as_leaves(leaves)
    if not 0 <= index < len(arr):
        raise IndexError(f"leaf index {index} out of range for {len(arr)} leaves")
    proof: list[tuple[int, list[bytes]]] = []
    i = index
    for level in _levels(arr):
        m = len(level)
        if m == 1:
            break
        start = (i // ARITY) * ARITY
        group = level[start : min(start + ARITY, m)]
        if len(group) > 1:
            pos = i - start
            proof.append((pos, [group[k].tobytes() for k in range(len(group)) if k != pos]))
        i //= ARITY
    return proof


def verify_proof(leaf: bytes, proof: Sequence[tuple[int, Sequence[bytes]]], root: bytes) -> bool:
    """Whether ``proof`` leads from ``leaf`` to ``root``; a malformed proof is simply ``False``."""
    node = bytes(leaf)
    for step in proof:
        try:
            pos, siblings = step
        except (TypeError, ValueError):
            return False
        if (
            not isinstance(pos, int)
            or isinstance(pos, bool)
            or not isinstance(siblings, list | tuple)
            or not 1 <= len(siblings) < ARITY
            or not 0 <= pos <= len(siblings)
            or any(not isinstance(x, bytes | bytearray) or len(x) != 32 for x in siblings)
        ):
            return False
        node = hashlib.sha256(
            NODE_PREFIX + b"".join(siblings[:pos]) + node + b"".join(siblings[pos:])
        ).digest()
    return node == bytes(root)
