"""Duplicate-key tracking agrees with a plain dictionary, even when hashes collide."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from schemas import keys as keys_module
from schemas.keys import KeyTracker, hash_keys
from schemas.standards.dates import days_since_epoch, real_date


def _reference(batches: list[list[str | None]]) -> list[list[int]]:
    first: dict[str, int] = {}
    out, row = [], 1
    for batch in batches:
        result = []
        for key in batch:
            if key is None:
                result.append(0)
            elif key in first:
                result.append(first[key])
            else:
                first[key] = row
                result.append(0)
            row += 1
        out.append(result)
    return out


def _batches(seed: int) -> list[list[str | None]]:
    rng = np.random.default_rng(seed)
    pool = [
        f"K{int(x):0{int(w)}d}"
        for x, w in zip(rng.integers(0, 10**6, 400), rng.integers(1, 12, 400), strict=True)
    ]
    batches = []
    for size in rng.integers(0, 300, 6):
        picks = rng.integers(0, len(pool), size)
        batch: list[str | None] = [pool[i] for i in picks]
        for i in rng.integers(0, max(size, 1), size // 10):
            if size:
                batch[int(i)] = None
        batches.append(batch)
    return batches


@pytest.mark.parametrize("seed", range(8))
def test_tracker_matches_a_dictionary(seed: int) -> None:
    batches = _batches(seed)
    tracker, row, got = KeyTracker(), 1, []
    for batch in batches:
        got.append(tracker.add(pa.array(batch, pa.string()), first_row=row).tolist())
        row += len(batch)
    assert got == _reference(batches)


def test_colliding_hashes_never_make_a_false_duplicate(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every key hashes alike: the tracker must still tell them apart by their text.
    monkeypatch.setattr(keys_module, "hash_keys", lambda k: np.full(len(k), 42, dtype=np.uint64))
    batches = [["a", "b", "a", None], ["c", "b", "d", "c"]]
    tracker, row, got = KeyTracker(), 1, []
    for batch in batches:
        got.append(tracker.add(pa.array(batch), first_row=row).tolist())
        row += len(batch)
    assert got == _reference(batches) == [[0, 0, 1, 0], [0, 2, 0, 5]]


def test_hash_is_the_same_whatever_the_batch_holds() -> None:
    alone = hash_keys(pa.array(["110105194912310021"]))
    mixed = hash_keys(pa.array(["x", "110105194912310021", None, "a-much-longer-key-than-the-others"]))
    assert alone[0] == mixed[1]
    assert len(set(hash_keys(pa.array([f"{i:018d}" for i in range(50_000)])).tolist())) == 50_000


def test_large_key_types() -> None:
    got = KeyTracker().add(pa.array(["a", "b", "a"], pa.large_string()), first_row=10)
    assert got.tolist() == [0, 0, 10]


def test_civil_day_arithmetic_matches_datetime() -> None:
    rng = np.random.default_rng(3)
    offsets = rng.integers(-719_162, 2_932_896, 100_000)  # 0001-01-01 .. 9999-12-31
    days = [dt.date(1970, 1, 1) + dt.timedelta(days=int(x)) for x in offsets]
    year = np.array([d.year for d in days])
    month = np.array([d.month for d in days])
    day = np.array([d.day for d in days])
    assert (days_since_epoch(year, month, day) == offsets).all()
    assert real_date(year, month, day).all()


def test_real_date_rejects_what_datetime_rejects() -> None:
    rng = np.random.default_rng(4)
    year, month, day = (
        rng.integers(-5, 10_005, 50_000),
        rng.integers(-1, 15, 50_000),
        rng.integers(-1, 33, 50_000),
    )
    expected = []
    for y, m, d in zip(year.tolist(), month.tolist(), day.tolist(), strict=True):
        try:
            dt.date(y, m, d)
            expected.append(True)
        except ValueError:
            expected.append(False)
    assert real_date(year, month, day).tolist() == expected


# -- bounded memory: keys spilled to disk behind a Bloom filter -------------------------------------


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("memory_keys", [1, 7, 64])
def test_spilling_tracker_finds_every_repeat(tmp_path, seed: int, memory_keys: int) -> None:
    """Whatever moved to disk, every repeat is found with its first row, and nothing else."""
    batches = _batches(seed)
    tracker, row, got = KeyTracker(tmp_path, memory_keys=memory_keys), 1, []
    for batch in batches:
        got.append(tracker.add(pa.array(batch, pa.string()), first_row=row).tolist())
        row += len(batch)
    assert got == _reference(batches)
    spilled = list(tmp_path.iterdir())
    assert spilled and all(p.stat().st_mode & 0o077 == 0 for p in spilled)  # private: keys are personal data
    tracker.close()
    assert list(tmp_path.iterdir()) == []


def test_spilling_tracker_against_a_set_at_scale(tmp_path) -> None:
    """200,000 ID-like keys in 13 batches, 3 % repeated (some far apart), 4 spills: same as a set."""
    rng = np.random.default_rng(11)
    pool = [f"{int(x):018d}" for x in rng.choice(10**17, 194_000, replace=False)]
    keys = pool + [pool[int(i)] for i in rng.integers(0, len(pool), 6_000)]
    order = rng.permutation(len(keys))
    keys = [keys[int(i)] for i in order]
    batches = [keys[i : i + 16_384] for i in range(0, len(keys), 16_384)]
    tracker, row, got = KeyTracker(tmp_path, memory_keys=50_000), 1, []
    for batch in batches:
        got.append(tracker.add(pa.array(batch), first_row=row).tolist())
        row += len(batch)
    assert got == _reference(batches)  # type: ignore[arg-type]
    assert sum(x > 0 for b in got for x in b) == len(keys) - len(set(keys))
    assert len(list(tmp_path.iterdir())) >= 3
    tracker.close()


def test_spilled_colliding_hashes_are_told_apart_by_the_key(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys_module, "hash_keys", lambda k: np.full(len(k), 42, dtype=np.uint64))
    batches = [["a", "b"], ["c", "b"], ["d", "a", "e"], ["e", "f", "d"]]
    tracker, row, got = KeyTracker(tmp_path, memory_keys=2), 1, []
    for batch in batches:
        got.append(tracker.add(pa.array(batch), first_row=row).tolist())
        row += len(batch)
    assert got == _reference(batches)  # type: ignore[arg-type]
    tracker.close()


def test_bloom_filter_has_no_false_negatives() -> None:
    h = hash_keys(pa.array([f"{i:018d}" for i in range(100_000)]))
    bloom = np.zeros(keys_module.BLOOM_BITS // 8, dtype=np.uint8)
    pos = keys_module._bloom_positions(h[:50_000])
    np.bitwise_or.at(bloom, pos >> 3, np.uint8(1) << (pos & 7).astype(np.uint8))
    tracker = KeyTracker()
    tracker._bloom = bloom
    assert tracker._maybe_spilled(h[:50_000]).all()
    assert tracker._maybe_spilled(h[50_000:]).mean() < 0.001  # 50,000 keys in 2**27 bits


def test_a_spill_works_in_pieces(tmp_path) -> None:
    """Spilling 524,288 keys allocates a few MiB of numpy arrays at a time beyond the filter itself
    (measured: 78 MiB when the filter's positions and the keys' hashes were computed whole): a spill
    meets full batches in flight at some point of a long run, so its size is part of the run's peak."""
    import tracemalloc

    rng = np.random.default_rng(3)
    tracker, row = KeyTracker(tmp_path, memory_keys=1 << 19), 1
    tracemalloc.start()
    try:
        for _ in range(8):
            batch = pa.array([f"{int(x):018d}" for x in rng.integers(0, 10**17, 1 << 16)])
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            tracker.add(batch, first_row=row)
            row += len(batch)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert len(tracker._spilled) == 1  # the last batch spilled
    assert peak < 24 * 2**20, peak / 2**20
    tracker.close()


def test_a_failed_spill_stops_the_tracker_and_leaves_no_file(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spill that cannot write (a full disk) raises; the keys it held are gone from memory, so the
    tracker refuses any later batch rather than miss their repeats, and no half-written run stays."""
    tracker = KeyTracker(tmp_path, memory_keys=4)
    tracker.add(pa.array(["a", "b"]), first_row=1)

    def full(*args: object, **kw: object) -> object:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keys_module.pa.ipc, "new_file", full)
    with pytest.raises(OSError):
        tracker.add(pa.array(["c", "d"]), first_row=3)  # the fourth key spills
    monkeypatch.undo()
    with pytest.raises(RuntimeError):
        tracker.add(pa.array(["a"]), first_row=5)  # a repeat it could no longer see
    assert list(tmp_path.iterdir()) == []
