"""Row hashing agrees with the slow reference; Merkle roots and proofs behave as RFC 6962 says."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tongban.core.trust.merkle import (
    EMPTY_ROOT,
    canonical_row,
    leaf_hash,
    merkle_proof,
    merkle_root,
    row_hash_one,
    row_hashes,
    verify_proof,
)

UTC = dt.UTC

# --- strategies: one column of each kind a contract uses, NULLs included ----------------------------

texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\x1f"), max_size=12
)
dates = st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31))
timestamps = st.datetimes(
    min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9998, 12, 31), timezones=st.just(UTC)
)
decimals = st.decimals(min_value=-(10**13), max_value=10**13, places=4, allow_nan=False, allow_infinity=False)
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)

COLUMNS = {
    "s": (pa.string(), texts),
    "d": (pa.date32(), dates),
    "t": (pa.timestamp("us", tz="UTC"), timestamps),
    "m": (pa.decimal128(18, 4), decimals),
    "i": (pa.int64(), ints),
    "b": (pa.bool_(), st.booleans()),
}


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    n = draw(st.integers(min_value=0, max_value=25))
    names = draw(st.lists(st.sampled_from(list(COLUMNS)), min_size=1, max_size=6))
    arrays = {}
    for i, name in enumerate(names):
        typ, values = COLUMNS[name]
        arrays[f"{name}{i}"] = pa.array(draw(st.lists(st.none() | values, min_size=n, max_size=n)), typ)
    return pa.table(arrays)


def reference(table: pa.Table, columns: list[str]) -> list[bytes]:
    rows = table.select(columns).to_pylist()
    return [row_hash_one([row[c] for c in columns]) for row in rows]


@settings(max_examples=150, deadline=None)
@given(tables(), st.randoms(use_true_random=False))
def test_row_hashes_agree_with_reference(table: pa.Table, rnd) -> None:
    columns = list(table.column_names)
    rnd.shuffle(columns)
    leaves = row_hashes(table, columns)
    assert leaves.shape == (table.num_rows, 32) and leaves.dtype == np.uint8
    assert [bytes(x) for x in leaves] == reference(table, columns)


def test_chunked_and_sliced_tables_agree() -> None:
    a = pa.chunked_array([["a", None, "c"], ["d", ""]])
    b = pa.chunked_array([[1, 2], [3, None, 5]])
    table = pa.table({"a": a, "b": b})
    assert [bytes(x) for x in row_hashes(table, ["a", "b"])] == reference(table, ["a", "b"])
    part = table.slice(1, 3)
    assert [bytes(x) for x in row_hashes(part, ["b", "a"])] == reference(part, ["b", "a"])


def test_many_rows_cross_chunk_boundaries() -> None:
    n = 70_000  # more than one internal chunk
    table = pa.table({"k": [str(i) for i in range(n)], "v": [i if i % 7 else None for i in range(n)]})
    leaves = row_hashes(table, ["k", "v"])
    for i in (0, 65_535, 65_536, n - 1):
        assert bytes(leaves[i]) == row_hash_one([str(i), i if i % 7 else None])


def test_null_differs_from_empty_string() -> None:
    table = pa.table({"a": pa.array([None, ""], pa.string())})
    leaves = row_hashes(table, ["a"])
    assert bytes(leaves[0]) != bytes(leaves[1])
    assert bytes(leaves[0]) == leaf_hash(b"\x00") and bytes(leaves[1]) == leaf_hash(b"")


def test_column_order_matters() -> None:
    table = pa.table({"a": ["x"], "b": ["y"]})
    assert bytes(row_hashes(table, ["a", "b"])[0]) != bytes(row_hashes(table, ["b", "a"])[0])


def test_leaf_is_domain_separated() -> None:
    table = pa.table({"a": ["x"], "b": [None]})
    assert bytes(row_hashes(table, ["a", "b"])[0]) == hashlib.sha256(b"\x00x\x1f\x00").digest()


def test_canonical_renderings() -> None:
    shanghai = dt.timezone(dt.timedelta(hours=8))
    assert canonical_row([dt.datetime(2024, 1, 1, 8, 0, tzinfo=shanghai)]) == b"2024-01-01T00:00:00.000000Z"
    assert canonical_row([dt.date(999, 1, 2)]) == b"0999-01-02"
    assert canonical_row([decimal.Decimal("12.3400"), -5, True]) == b"12.3400\x1f-5\x1ftrue"
    with pytest.raises(TypeError):
        canonical_row([1.5])


def test_other_time_zones_and_units_render_in_utc() -> None:
    moment = dt.datetime(2024, 3, 1, 12, 30, 15, 250000, tzinfo=UTC)
    table = pa.table(
        {
            "sh": pa.array([moment], pa.timestamp("us", tz="Asia/Shanghai")),
            "ms": pa.array([moment], pa.timestamp("ms", tz="UTC")),
            "naive": pa.array([moment.replace(tzinfo=None)], pa.timestamp("us")),
            "dict": pa.array(["甲"]).dictionary_encode(),
            "big": pa.array(["乙"], pa.large_string()),
        }
    )
    expected = row_hash_one([moment, moment, moment, "甲", "乙"])
    assert bytes(row_hashes(table, table.column_names)[0]) == expected


def test_wide_decimals_agree_with_decimal_str() -> None:
    values = [decimal.Decimal(v) for v in ("0", "1E-8", "-1.5", "12345678.9")]
    table = pa.table({"m": pa.array([*values, None], pa.decimal128(38, 10))})
    assert [bytes(x) for x in row_hashes(table, ["m"])] == reference(table, ["m"])


def test_unsupported_type_and_missing_column() -> None:
    with pytest.raises(TypeError):
        row_hashes(pa.table({"f": [1.5]}), ["f"])
    with pytest.raises(KeyError):
        row_hashes(pa.table({"a": ["x"]}), ["nope"])


def test_empty_inputs() -> None:
    assert row_hashes(pa.table({"a": pa.array([], pa.string())}), ["a"]).shape == (0, 32)
    assert merkle_root(np.empty((0, 32), np.uint8)) == EMPTY_ROOT == hashlib.sha256(b"").digest()


# --- Merkle trees -------------------------------------------------------------------------------------


def _node(*children: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + b"".join(children)).digest()


def _naive_root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return EMPTY_ROOT
    level = leaves
    while len(level) > 1:
        groups = [level[i : i + 16] for i in range(0, len(level), 16)]
        level = [g[0] if len(g) == 1 else _node(*g) for g in groups]
    return level[0]


def _leaves(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32), dtype=np.uint8)


@pytest.mark.parametrize("n", [1, 2, 3, 15, 16, 17, 31, 32, 33, 256, 257, 300, 4113])
def test_root_matches_naive(n: int) -> None:
    leaves = _leaves(n, n)
    assert merkle_root(leaves) == _naive_root([bytes(x) for x in leaves])
    assert merkle_root([bytes(x) for x in leaves]) == merkle_root(leaves)


def test_root_depends_on_order_and_content() -> None:
    leaves = _leaves(6)
    root = merkle_root(leaves)
    assert merkle_root(leaves[::-1].copy()) != root
    changed = leaves.copy()
    changed[3, 0] ^= 1
    assert merkle_root(changed) != root


def test_bad_leaves_rejected() -> None:
    with pytest.raises(ValueError):
        merkle_root(np.zeros((2, 31), np.uint8))
    with pytest.raises(ValueError):
        merkle_root([b"short"])
    with pytest.raises(IndexError):
        merkle_proof(_leaves(3), 3)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=600), st.integers(min_value=0, max_value=2**32 - 1), st.data())
def test_every_proof_verifies_and_a_flipped_bit_fails(n: int, seed: int, data: st.DataObject) -> None:
    leaves = _leaves(n, seed)
    root = merkle_root(leaves)
    for index in range(n):
        leaf = bytes(leaves[index])
        proof = merkle_proof(leaves, index)
        assert verify_proof(leaf, proof, root)
        assert len(proof) <= max(1, -(-(n - 1).bit_length() // 4))
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    leaf, proof = bytes(leaves[index]), merkle_proof(leaves, index)
    bit = data.draw(st.integers(min_value=0, max_value=255))
    flipped = bytearray(leaf)
    flipped[bit // 8] ^= 1 << (bit % 8)
    assert not verify_proof(bytes(flipped), proof, root)
    bad_root = bytearray(root)
    bad_root[bit // 8] ^= 1 << (bit % 8)
    assert not verify_proof(leaf, proof, bytes(bad_root))
    if proof:
        step = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        pos, siblings = proof[step]
        which = data.draw(st.integers(min_value=0, max_value=len(siblings) - 1))
        tampered = bytearray(siblings[which])
        tampered[bit // 8] ^= 1 << (bit % 8)
        changed = [*siblings[:which], bytes(tampered), *siblings[which + 1 :]]
        assert not verify_proof(leaf, [*proof[:step], (pos, changed), *proof[step + 1 :]], root)
        other = (pos + 1) % (len(siblings) + 1)
        if siblings[min(pos, len(siblings) - 1)] != leaf:
            assert not verify_proof(leaf, [*proof[:step], (other, siblings), *proof[step + 1 :]], root)


def test_malformed_proofs_are_false() -> None:
    leaves = _leaves(4)
    root = merkle_root(leaves)
    leaf = bytes(leaves[0])
    assert not verify_proof(leaf, [("X", [bytes(32)])], root)  # type: ignore[list-item]
    assert not verify_proof(leaf, [(0, [b"short"])], root)
    assert not verify_proof(leaf, [(5, [bytes(32)])], root)
    assert not verify_proof(leaf, [(0, [])], root)
    assert not verify_proof(leaf, ["nonsense"], root)  # type: ignore[list-item]
    assert not verify_proof(leaf, [], root)


def test_proof_from_table_rows() -> None:
    table = pa.table({"id": ["a", "b", "c"], "n": [1, None, 3]})
    leaves = row_hashes(table, ["id", "n"])
    root = merkle_root(leaves)
    assert verify_proof(row_hash_one(["b", None]), merkle_proof(leaves, 1), root)
    assert not verify_proof(row_hash_one(["b", 2]), merkle_proof(leaves, 1), root)
