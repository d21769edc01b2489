"""Column building blocks: rows of bytes as uint8 matrices, turned into Arrow strings all at once.

>>> text(2, "ID", ascii_digits(np.array([7, 42]), 3)).to_pylist()
['ID007', 'ID042']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def ascii_digits(values: np.ndarray, width: int) -> np.ndarray:
    """``(n, width)`` uint8 matrix of the zero-padded decimal digits of non-negative integers."""
    rest = np.array(values, dtype=np.int64)
    if width <= 9:  # fits 32 bits, which divide faster
        rest = (rest % 10**width).astype(np.uint32)
    out = np.empty((len(rest), width), dtype=np.uint8)
    for j in range(width - 1, -1, -1):
        rest, digit = np.divmod(rest, 10)
        out[:, j] = digit + 48
    return out


def const(value: str, n: int) -> np.ndarray:
    """``(n, len)`` uint8 matrix repeating one ASCII/UTF-8 text."""
    return np.broadcast_to(np.frombuffer(value.encode(), dtype=np.uint8), (n, len(value.encode())))


def rows(texts: Sequence[str]) -> np.ndarray:
    """``(k, w)`` uint8 matrix of texts of equal UTF-8 length."""
    width = len(texts[0].encode()) if texts else 0
    return np.frombuffer("".join(texts).encode(), dtype=np.uint8).reshape(len(texts), width)


def strings(mat: np.ndarray, lengths: np.ndarray | None = None) -> pa.Array:
    """Arrow strings from the rows of a uint8 matrix (each row truncated to ``lengths`` when given)."""
    mat = np.ascontiguousarray(mat, dtype=np.uint8)
    n, width = mat.shape
    if lengths is None:
        offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
        data = mat.reshape(-1)
    else:
        offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
        data = mat[np.arange(width) < np.asarray(lengths)[:, None]]
    return pa.Array.from_buffers(
        pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    ).cast(pa.string())


def byte_rows(n: int, *parts: np.ndarray | str) -> np.ndarray:
    """Byte matrices and constant texts side by side: an ``(n, w)`` uint8 matrix of UTF-8 rows."""
    return np.hstack([const(p, n) if isinstance(p, str) else p for p in parts])


def text(n: int, *parts: np.ndarray | str) -> pa.Array:
    """Arrow strings concatenating byte matrices and constant texts, row by row."""
    return strings(byte_rows(n, *parts))


def join(*parts: pa.Array | str) -> pa.Array:
    """Arrow strings concatenating arrays and constant texts, row by row."""
    return pc.binary_join_element_wise(*parts, "")


@cache
def _labels(size: int, suffix: str) -> pa.Array:
    """``["0<suffix>", "1<suffix>", ...]``: small numbers with a unit, taken rather than formatted per row."""
    return pa.array([f"{i}{suffix}" for i in range(size)], pa.string())


def label(values: np.ndarray, suffix: str) -> pa.Array:
    """Small non-negative numbers followed by a unit (``12号``)."""
    values = np.asarray(values, dtype=np.int64)
    return _labels(int(values.max(initial=0)) + 1, suffix).take(pa.array(values))


def by_group(group: np.ndarray, builders: Sequence[Callable[[np.ndarray], pa.Array]]) -> pa.Array:
    """One string per row, built by ``builders[group[row]]`` for the rows of each group at once."""
    order = np.argsort(np.asarray(group, dtype=np.int16), kind="stable")
    bounds = np.searchsorted(group[order], np.arange(len(builders) + 1))
    parts = [
        builders[g](order[bounds[g] : bounds[g + 1]]).cast(pa.string())
        for g in range(len(builders))
        if bounds[g + 1] > bounds[g]
    ]
    if not parts:
        return pa.array([], pa.string())
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return pa.concat_arrays(parts).take(pa.array(inverse))


def _contains(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    pos = np.minimum(np.searchsorted(sorted_values, values), max(len(sorted_values) - 1, 0))
    return sorted_values[pos] == values if len(sorted_values) else np.zeros(len(values), dtype=bool)


def make_unique(
    keys_of: Callable[[np.ndarray], np.ndarray], redraw: Callable[[np.ndarray], None], n: int
) -> None:
    """Redraw rows (later ones first) until ``keys_of`` gives every row a distinct int64 key."""
    if n < 2:
        return
    keys = keys_of(np.arange(n))
    ordered = np.sort(keys)
    first = np.concatenate([[True], ordered[1:] != ordered[:-1]])
    taken = ordered[first]
    clashing = np.flatnonzero(_contains(ordered[1:][~first[1:]], keys))
    inner = np.argsort(keys[clashing], kind="stable")
    sub = keys[clashing][inner]
    pending = np.sort(clashing[inner][1:][sub[1:] == sub[:-1]])
    added = np.zeros(0, dtype=np.int64)
    for _ in range(100):
        if not len(pending):
            return
        redraw(pending)
        new = keys_of(pending)
        inner = np.argsort(new, kind="stable")
        repeated = np.zeros(len(new), dtype=bool)
        repeated[inner[1:][new[inner][1:] == new[inner][:-1]]] = True
        bad = _contains(taken, new) | _contains(added, new) | repeated
        added = np.sort(np.concatenate([added, new[~bad]]))
        pending = pending[bad]
    raise ValueError("could not draw enough distinct identifiers")


def pick(rng: np.random.Generator, candidates: np.ndarray, size: int, *, unique: bool = False) -> np.ndarray:
    """``size`` draws from ``candidates``, without repeats when ``unique`` and there are enough."""
    if unique and size <= len(candidates):
        return candidates[rng.permutation(len(candidates))[:size]]
    return candidates[rng.integers(0, len(candidates), size)]
