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

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.standards.arrays import as_string_array, valid_mask

__all__ = ["KeyTracker", "hash_keys"]

#: Bits of the Bloom filter of spilled keys (16 MiB, whatever the extract's size).
BLOOM_BITS = 1 << 27
_BLOOM_PROBES = 3
#: Keys hashed and added to the filter at a time when a run spills (bounds the spill's transient memory).
_SPILL_CHUNK = 1 << 16
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def hash_keys(keys: pa.Array) -> np.ndarray:
    """64-bit hash of every string (nulls hash to 0)."""
    keys = as_string_array(keys)
    n = len(keys)
    dtype = np.int64 if keys.type in (pa.large_string(), pa.large_binary()) else np.int32
    offsets = np.frombuffer(keys.buffers()[1], dtype=dtype)[keys.offset : keys.offset + n + 1].astype(
        np.int64
    )
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


def _bloom_positions(h: np.ndarray) -> np.ndarray:
    """The filter's bit positions of each hash, probe by probe (double hashing of a remixed hash)."""
    with np.errstate(over="ignore"):
        z = h * np.uint64(0x9E3779B97F4A7C15)
        z ^= z >> np.uint64(31)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(29)
        a = (z >> np.uint64(37)).astype(np.int64)
        b = ((z & np.uint64(0xFFFFFFF)).astype(np.int64)) | 1
    return np.concatenate([(a + i * b) & (BLOOM_BITS - 1) for i in range(_BLOOM_PROBES)])


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


def _equal(a: pa.Array, b: pa.Array) -> np.ndarray:
    return pc.fill_null(pc.equal(a, b), False).to_numpy(zero_copy_only=False)


class KeyTracker:
    """Remembers the keys seen so far in one extract and their first row numbers.

    Hashes of the keys seen live in sorted runs whose sizes halve from the
    oldest to the newest (merged like a log-structured store), so recording a
    batch costs about its own size and a lookup visits a few runs. The keys
    themselves are kept compact (copied out of the batch), to confirm matches.

    With ``spill_dir``, memory stays bounded whatever the extract's size: once ``memory_keys`` keys
    are held they move to a sorted run on disk (hash, first row, key; a private file), and a Bloom
    filter of fixed size (:data:`BLOOM_BITS`) remembers every spilled key's hash. A key of a later
    batch is looked up on disk only when the filter says it may have been seen (a repeat, or a false
    positive: about 1 % at 10,000,000 keys), and confirmed there by the key itself.
    """

    def __init__(self, spill_dir: Path | None = None, memory_keys: int = 1 << 19) -> None:
        self._spill_dir = spill_dir
        self._memory_keys = max(1, memory_keys)
        self._held = 0  # keys held in memory
        self._spilled: list[Path] = []
        self._bloom: np.ndarray | None = None
        self._lost = False  # a spill failed part-way: keys seen are missing
        self._reset()

    def _reset(self) -> None:
        self._held = 0
        self._runs: list[_Run] = []
        self._pending: tuple[np.ndarray, np.ndarray] | None = None  # the last batch's, indexed when needed
        self._stored: list[tuple[np.ndarray, pa.Array]] = []  # per batch: rows of new keys, those keys
        self._starts: list[int] = []  # first row of each stored batch

    def _keys_at(self, rows: np.ndarray) -> pa.Array:
        """The stored keys of the given (earlier, first-occurrence) rows, in order."""
        which = np.searchsorted(np.array(self._starts), rows, side="right") - 1
        parts: list[pa.Array] = []
        positions: list[np.ndarray] = []
        for b in np.unique(which):
            sel = np.flatnonzero(which == b)
            stored_rows, stored_keys = self._stored[int(b)]
            parts.append(stored_keys.take(pa.array(np.searchsorted(stored_rows, rows[sel]))))
            positions.append(sel)
        combined = pa.concat_arrays(parts)
        inverse = np.empty(len(rows), dtype=np.int64)
        inverse[np.concatenate(positions)] = np.arange(len(rows))
        return combined.take(pa.array(inverse))

    def _index_pending(self) -> None:
        if self._pending is None:
            return
        hashes, rows = self._pending
        self._pending = None
        self._runs.append(_Run(hashes, rows))
        while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
            newer, older = self._runs.pop(), self._runs.pop()
            self._runs.append(
                _Run(np.concatenate([older.hashes, newer.hashes]), np.concatenate([older.rows, newer.rows]))
            )

    def _against_earlier(self, keys: pa.Array, h: np.ndarray, todo: np.ndarray, earlier: np.ndarray) -> None:
        self._index_pending()
        for run in self._runs:
            pos = run.first_match(h)
            cand = np.flatnonzero(todo & (pos >= 0) & (earlier == 0))
            if not len(cand):
                continue
            prev = run.rows[pos[cand]]
            same = _equal(self._keys_at(prev), keys.take(pa.array(cand)))
            earlier[cand[same]] = prev[same]
            for i in cand[~same]:  # a hash collision: look at the run's other entries with this hash
                key, j = keys[int(i)].as_py(), int(pos[i]) + 1
                while j < len(run) and run.hashes[j] == h[i]:
                    row = run.rows[j : j + 1]
                    if self._keys_at(row)[0].as_py() == key:
                        earlier[i] = row[0]
                        break
                    j += 1

    @staticmethod
    def _within(
        keys: pa.Array, h: np.ndarray, todo: np.ndarray, rows: np.ndarray, earlier: np.ndarray
    ) -> None:
        n = len(h)
        # Only rows whose hash shares a bucket with another row can repeat a key: sort just those.
        bits = max(10, int(n - 1).bit_length() + 2)
        buckets = (h >> np.uint64(64 - bits)).astype(np.int64)
        cand = np.flatnonzero((np.bincount(buckets, minlength=1 << bits)[buckets] > 1) & todo)
        if len(cand) < 2:
            return
        sc = cand[np.argsort(h[cand], kind="stable")]  # by hash, then by row
        hs = h[sc]
        starts = np.ones(len(sc), dtype=bool)
        starts[1:] = hs[1:] != hs[:-1]
        first = sc[starts][np.cumsum(starts) - 1]  # the first row of each run of equal hashes
        repeats = ~starts
        if not repeats.any():
            return
        same = _equal(keys.take(pa.array(sc[repeats])), keys.take(pa.array(first[repeats])))
        earlier[sc[repeats][same]] = rows[first[repeats][same]]
        clash = np.unique(first[repeats][~same])  # equal hashes, different keys: sort these out by key
        for group_first in clash:
            members = sc[first == group_first]
            seen: dict[str, int] = {}
            for i in members:  # row order
                key = keys[int(i)].as_py()
                earlier[i] = seen.get(key, 0)
                seen.setdefault(key, int(rows[i]))

    def add(self, keys: pa.Array, *, first_row: int) -> np.ndarray:
        """Record a batch whose first row is ``first_row``.

        Returns, per row, the row number of the earlier row with the same key,
        or 0 when the key is new (nulls are never duplicates).
        """
        if self._lost:
            raise RuntimeError("a spill of the keys seen failed: this tracker can no longer find repeats")
        keys = as_string_array(keys)
        n = len(keys)
        earlier = np.zeros(n, dtype=np.int64)
        if n == 0:
            return earlier
        h = hash_keys(keys)
        present = valid_mask(keys)
        rows = np.arange(first_row, first_row + n, dtype=np.int64)
        if self._stored or self._pending is not None:
            self._against_earlier(keys, h, present, earlier)
        if self._spilled:
            self._against_spilled(keys, h, present, earlier)
        self._within(keys, h, present & (earlier == 0), rows, earlier)
        new = np.flatnonzero(present & (earlier == 0))
        if len(new):
            self._pending = (h[new], rows[new])  # a single-batch extract never pays for the index
            self._stored.append((rows[new], keys.take(pa.array(new))))
            self._starts.append(first_row)
            self._held += len(new)
            if self._spill_dir is not None and self._held >= self._memory_keys:
                self._spill()
        return earlier

    # -- bounded memory: sorted runs on disk behind a Bloom filter -------------------------------------

    def _spill(self) -> None:
        """Move the keys held in memory to a sorted run on disk and into the Bloom filter.

        Done in pieces of :data:`_SPILL_CHUNK` keys where it can be, so a spill's own transient memory
        stays a few copies of the keys themselves: it happens every ``memory_keys`` keys of a run, and
        a peak made of a spill meeting full batches in flight should not grow with the extract.
        """
        assert self._spill_dir is not None
        rows = np.concatenate([r for r, _ in self._stored])
        keys = pa.concat_arrays([as_string_array(k) for _, k in self._stored])
        self._reset()  # the batches' own copies of the keys go now: the concatenation holds them
        h = np.concatenate(
            [hash_keys(keys.slice(lo, _SPILL_CHUNK)) for lo in range(0, len(keys), _SPILL_CHUNK)]
        )
        order = np.argsort(h, kind="stable")
        h, rows = h[order], rows[order]
        keys = keys.take(pa.array(order))
        del order
        run = pa.record_batch([pa.array(h), pa.array(rows), keys], names=["h", "row", "key"])
        path = self._spill_dir / f".keys-{os.getpid()}-{id(self):x}-{len(self._spilled) + 1:04d}.arrow"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the keys are personal data
            with open(fd, "wb", closefd=True) as fh, pa.ipc.new_file(fh, run.schema) as writer:
                writer.write_batch(run)
        except BaseException:
            # The keys held are gone from memory: the tracker refuses to go on rather than miss repeats.
            self._lost = True
            path.unlink(missing_ok=True)
            raise
        del run, keys, rows
        self._spilled.append(path)
        if self._bloom is None:
            self._bloom = np.zeros(BLOOM_BITS // 8, dtype=np.uint8)
        for lo in range(0, len(h), _SPILL_CHUNK):
            pos = _bloom_positions(h[lo : lo + _SPILL_CHUNK])
            np.bitwise_or.at(self._bloom, pos >> 3, (np.uint8(1) << (pos & 7).astype(np.uint8)))

    def _maybe_spilled(self, h: np.ndarray) -> np.ndarray:
        assert self._bloom is not None
        pos = _bloom_positions(h)
        hit = (self._bloom[pos >> 3] >> (pos & 7).astype(np.uint8)) & 1
        return hit.reshape(_BLOOM_PROBES, -1).all(axis=0)

    def _against_spilled(self, keys: pa.Array, h: np.ndarray, todo: np.ndarray, earlier: np.ndarray) -> None:
        cand = np.flatnonzero(todo & (earlier == 0))
        if not len(cand):
            return
        cand = cand[self._maybe_spilled(h[cand])]
        for path in self._spilled:
            if not len(cand):
                return
            with pa.memory_map(str(path)) as src:  # closed at once: only the pages looked at are read
                run = pa.ipc.open_file(src).get_batch(0)
                hashes = run.column(0).to_numpy()
                lo = np.searchsorted(hashes, h[cand], side="left")
                hi = np.searchsorted(hashes, h[cand], side="right")
                for i, a, b in zip(cand, lo, hi, strict=True):
                    if a == b:
                        continue
                    key = keys[int(i)].as_py()
                    stored = run.column(2).slice(int(a), int(b - a)).to_pylist()
                    if key in stored:  # equal hashes are only candidates: the key itself decides
                        earlier[i] = run.column(1)[int(a) + stored.index(key)].as_py()
                del run, hashes
            cand = cand[earlier[cand] == 0]

    def close(self) -> None:
        """Remove the runs spilled to disk."""
        for path in self._spilled:
            path.unlink(missing_ok=True)
        self._spilled = []
        self._bloom = None
