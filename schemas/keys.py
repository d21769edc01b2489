"""Duplicate keys across the batches of one extract, found vectorized.

Keys are hashed to 64 bits column by column (FNV-1a over the bytes, then the
length); equal hashes are only candidates, confirmed by comparing the keys
themselves, so a hash collision can never reject a row.

>>> t = KeyTracker()
>>> t.add(pa.array(['a', 'b', 'a', None]), first_row=1).tolist()
[0, 0, 1, 0]
>>> t.add(pa.array(['c', 'b']), first_row=5).tolist()
[0, 2]
"""

from __future__ import annotations

import bisect

import numpy as np
import pyarrow as pa

from schemas.standards._arrow import as_string_array, valid_mask

__all__ = ["KeyTracker", "hash_keys"]

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def hash_keys(keys: pa.Array) -> np.ndarray:
    """64-bit hash of every string (nulls hash to 0)."""
    keys = as_string_array(keys)
    n = len(keys)
    dtype = np.int64 if keys.type in (pa.large_string(), pa.large_binary()) else np.int32
    offsets = np.frombuffer(keys.buffers()[1], dtype=dtype)[keys.offset : keys.offset + n + 1].astype(np.int64)
    lengths = np.diff(offsets)
    data_buf = keys.buffers()[2]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(1, np.uint8)
    longest = int(lengths.max()) if n else 0
    if n and longest and bool((lengths == longest).all()):
        first = int(offsets[0])
        matrix = data[first : first + n * longest].reshape(n, longest)
    else:
        matrix = np.zeros((n, longest), dtype=np.uint8)
        starts = offsets[:-1]
        for j in range(longest):
            active = lengths > j
            matrix[active, j] = data[starts[active] + j]
    h = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        # Hash 8-byte words (the last one zero padded), then the length.
        # A key's words depend on the key alone, so a key hashes alike in every batch.
        for k in range(0, longest, 8):
            chunk = matrix[:, k : k + 8]
            if chunk.shape[1] < 8:
                chunk = np.concatenate([chunk, np.zeros((n, 8 - chunk.shape[1]), dtype=np.uint8)], axis=1)
            mixed = h ^ np.ascontiguousarray(chunk).view(np.uint64).ravel()
            mixed *= _FNV_PRIME
            mixed ^= mixed >> np.uint64(29)
            h = mixed if bool((lengths > k).all()) else np.where(lengths > k, mixed, h)
        h ^= lengths.astype(np.uint64)
        h *= _FNV_PRIME
    h[~valid_mask(keys)] = 0
    return h


class _Run:
    """Sorted hashes of distinct keys with their first rows, indexed by the hashes' top bits."""

    def __init__(self, hashes: np.ndarray, rows: np.ndarray) -> None:
        order = np.argsort(hashes, kind="stable")  # merges two sorted runs in linear time
        self.hashes, self.rows = hashes[order], rows[order]
        self.bits = max(8, len(hashes).bit_length())
        top = (self.hashes >> np.uint64(64 - self.bits)).astype(np.int64)
        self.starts = np.zeros((1 << self.bits) + 1, dtype=np.int64)
        np.cumsum(np.bincount(top, minlength=1 << self.bits), out=self.starts[1:])

    def __len__(self) -> int:
        return len(self.hashes)

    def first_match(self, h: np.ndarray) -> np.ndarray:
        """Index of the first entry equal to each hash, or -1."""
        found = np.full(len(h), -1, dtype=np.int64)
        top = (h >> np.uint64(64 - self.bits)).astype(np.int64)
        lo, hi = self.starts[top], self.starts[top + 1]
        rows = np.flatnonzero(lo < hi)
        step = 0
        while len(rows):  # a bucket holds one entry or so: a few vectorized steps
            idx = lo[rows] + step
            hit = self.hashes[idx] == h[rows]
            found[rows[hit]] = idx[hit]
            rows = rows[~hit & (idx + 1 < hi[rows])]
            step += 1
        return found


class KeyTracker:
    """Remembers the keys seen so far in one extract and their first row numbers.

    Seen keys live in sorted runs whose sizes halve from the oldest to the
    newest (merged like a log-structured store), so recording a batch costs
    about its own size, and a lookup visits a few runs.
    """

    def __init__(self) -> None:
        self._runs: list[_Run] = []
        self._pending: tuple[np.ndarray, np.ndarray] | None = None  # the last batch's, indexed when needed
        self._batches: list[pa.Array] = []
        self._batch_starts: list[int] = []

    def _key_at(self, row: int) -> str:
        i = bisect.bisect_right(self._batch_starts, row) - 1
        return self._batches[i][row - self._batch_starts[i]].as_py()

    def _index_pending(self) -> None:
        if self._pending is None:
            return
        hashes, rows = self._pending
        self._pending = None
        self._runs.append(_Run(hashes, rows))
        while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
            newer, older = self._runs.pop(), self._runs.pop()
            self._runs.append(_Run(np.concatenate([older.hashes, newer.hashes]),
                                   np.concatenate([older.rows, newer.rows])))

    def add(self, keys: pa.Array, *, first_row: int) -> np.ndarray:
        """Record a batch whose first row is ``first_row``.

        Returns, per row, the row number of the earlier row with the same key,
        or 0 when the key is new (nulls are never duplicates).
        """
        keys = as_string_array(keys)
        n = len(keys)
        earlier = np.zeros(n, dtype=np.int64)
        if n == 0:
            return earlier
        h = hash_keys(keys)
        present = valid_mask(keys)
        rows = np.arange(first_row, first_row + n, dtype=np.int64)

        # Against earlier batches; equal hashes are confirmed on the keys themselves.
        self._index_pending()
        for run in self._runs:
            pos = run.first_match(h)
            for i in np.flatnonzero(present & (pos >= 0) & (earlier == 0)):
                key = keys[int(i)].as_py()
                j = int(pos[i])
                while j < len(run) and run.hashes[j] == h[i]:
                    if self._key_at(int(run.rows[j])) == key:
                        earlier[i] = run.rows[j]
                        break
                    j += 1

        # Within this batch: only rows whose hash shares a bucket with another row can repeat a key,
        # so only those are sorted; equal hashes are then confirmed on the keys themselves.
        bits = max(10, int(n - 1).bit_length() + 2)
        buckets = (h >> np.uint64(64 - bits)).astype(np.int64)
        crowded = np.bincount(buckets, minlength=1 << bits)[buckets] > 1
        cand = np.flatnonzero(crowded & present)
        if len(cand) > 1:
            hc = h[cand]
            order = np.argsort(hc)
            hs = hc[order]
            same = np.flatnonzero(hs[1:] == hs[:-1])
            if len(same):
                first_of: dict[tuple[int, str], int] = {}
                for i in np.unique(cand[np.concatenate([order[same], order[same + 1]])]):  # row order
                    if earlier[i]:
                        continue
                    ident = (int(h[i]), keys[int(i)].as_py())
                    if ident in first_of:
                        earlier[i] = first_of[ident]
                    else:
                        first_of[ident] = int(rows[i])

        new = present & (earlier == 0)
        if new.any():
            self._pending = (h[new], rows[new])  # a single-batch extract never pays for the index
            self._batches.append(keys)
            self._batch_starts.append(first_row)
        return earlier
