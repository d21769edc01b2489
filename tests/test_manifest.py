"""Batch manifests: seal, verify, and every way a batch is refused."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.population import DATASET
from tongban.core.trust import KeyStore, TrustList, init_trust, revoke, rotate
from tongban.core.trust.manifest import (
    Manifest,
    ManifestError,
    batch_id_for,
    schema_fingerprint,
    seal,
    verify,
)
from tongban.core.trust.merkle import merkle_root, row_hashes

UTC = dt.UTC
ROOT, PROVINCE, COUNTY = "000000", "630000", "630104"
EDGE = f"population.{COUNTY}.{PROVINCE}"
T0 = dt.datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    keys = KeyStore(tmp_path / "keys")
    for node in (ROOT, PROVINCE, COUNTY):
        keys.generate(node)
    return keys


@pytest.fixture
def trust_path(tmp_path: Path, store: KeyStore) -> Path:
    path = tmp_path / "trust.json"
    init_trust(store, [PROVINCE, COUNTY], root=ROOT, path=path, now=T0)
    return path


@pytest.fixture
def trust(trust_path: Path) -> TrustList:
    return TrustList.load(trust_path)


def _table(n: int = 5) -> pa.Table:
    return pa.table(
        {
            "id_number": [f"63010419900101{i:04d}" for i in range(n)],
            "name": [f"张{i}" for i in range(n)],
            "moved_to": [None if i % 2 else "630121" for i in range(n)],
        }
    )


COLS = ["id_number", "name", "moved_to"]


def _seal(store: KeyStore, leaves: np.ndarray, prev: str = "", *, node: str = COUNTY, **kw) -> Manifest:
    kid, key = store.signer(node)
    args = dict(
        dataset="population",
        edge=EDGE,
        source=COUNTY,
        target=PROVINCE,
        cursor_from=None,
        cursor_to={"updated_at": "2025-01-02T00:00:00.000000Z", "key": "630104199001010004"},
        rows=len(leaves),
        rejected=2,
        merkle_root=merkle_root(leaves),
        prev_hash=prev,
        schema=schema_fingerprint(DATASET.schema),
        key_id=kid,
        private_key=key,
        created_at=T0 + dt.timedelta(days=1),
    )
    args.update(kw)
    return seal(**args)


def _code(exc: pytest.ExceptionInfo[ManifestError]) -> str:
    return exc.value.code


def test_seal_and_verify_round_trip(store: KeyStore, trust: TrustList) -> None:
    leaves = row_hashes(_table(), COLS)
    m = _seal(store, leaves)
    assert m.signature and m.created_at == "2025-01-02T00:00:00.000000Z" and len(m.batch_id) == 32
    verify(m, trust, expected_prev="", leaves=leaves, rows=5, schema=schema_fingerprint(DATASET))
    again = Manifest.from_json(m.to_json())
    assert again == m and again.hash == m.hash
    assert json.loads(m.canonical_bytes()).keys() == m.to_dict().keys() - {"signature"}
    # the next batch chains to this one
    m2 = _seal(store, leaves[:3], prev=m.hash)
    verify(m2, trust, expected_prev=m.hash, leaves=leaves[:3])


def test_batch_id_is_deterministic(store: KeyStore) -> None:
    leaves = row_hashes(_table(), COLS)
    a = _seal(store, leaves)
    b = _seal(store, leaves, created_at=T0 + dt.timedelta(days=2))
    assert a.batch_id == b.batch_id == batch_id_for(EDGE, "", a.merkle_root, a.cursor_to)
    assert _seal(store, leaves, prev="ab" * 32).batch_id != a.batch_id
    assert _seal(store, leaves[:4]).batch_id != a.batch_id


def test_hash_covers_signature(store: KeyStore) -> None:
    m = _seal(store, row_hashes(_table(), COLS))
    assert dataclasses.replace(m, signature="").hash != m.hash
    other = dataclasses.replace(m, signature=("B" if m.signature[0] == "A" else "A") + m.signature[1:])
    assert other.hash != m.hash


@pytest.mark.parametrize(
    "change",
    [
        {"rows": 6},
        {"rejected": 0},
        {"target": "630000x"},
        {"cursor_to": {"updated_at": "2099-01-01T00:00:00.000000Z", "key": "x"}},
        {"merkle_root": "00" * 32},
        {"created_at": "2025-01-02T00:00:01.000000Z"},
        {"schema": "other"},
        {"signature": ""},
        {"signature": "!!not base64!!"},
    ],
)
def test_tampered_field_fails_signature(store: KeyStore, trust: TrustList, change: dict) -> None:
    m = dataclasses.replace(_seal(store, row_hashes(_table(), COLS)), **change)
    with pytest.raises(ManifestError) as err:
        verify(m, trust, expected_prev="")
    assert _code(err) == "BATCH_SIGNATURE" and err.value.message_zh and m.batch_id in err.value.where


def test_wrong_prev_fails_chain(store: KeyStore, trust: TrustList) -> None:
    leaves = row_hashes(_table(), COLS)
    first = _seal(store, leaves)
    second = _seal(store, leaves, prev=first.hash)
    with pytest.raises(ManifestError) as err:  # replay of the first batch after the second
        verify(first, trust, expected_prev=second.hash)
    assert _code(err) == "BATCH_CHAIN"
    assert second.hash[:12] in err.value.message_en and "(none)" in err.value.message_en
    with pytest.raises(ManifestError) as err:  # a batch skipped
        verify(second, trust, expected_prev="")
    assert _code(err) == "BATCH_CHAIN" and first.hash[:12] in err.value.message_zh


def test_altered_row_fails_root(store: KeyStore, trust: TrustList) -> None:
    table = _table()
    m = _seal(store, row_hashes(table, COLS))
    names = table.column("name").to_pylist()
    names[3] = "李四"
    altered = table.set_column(1, "name", pa.array(names))
    with pytest.raises(ManifestError) as err:
        verify(m, trust, expected_prev="", leaves=row_hashes(altered, COLS))
    assert _code(err) == "BATCH_ROOT"


def test_row_count_mismatch(store: KeyStore, trust: TrustList) -> None:
    leaves = row_hashes(_table(), COLS)
    m = _seal(store, leaves)
    with pytest.raises(ManifestError) as err:
        verify(m, trust, expected_prev="", rows=4)
    assert _code(err) == "BATCH_ROWS"
    with pytest.raises(ManifestError) as err:  # a dropped row is a count mismatch before a root mismatch
        verify(m, trust, expected_prev="", leaves=leaves[:4])
    assert _code(err) == "BATCH_ROWS"


def test_schema_mismatch_when_asked(store: KeyStore, trust: TrustList) -> None:
    m = _seal(store, row_hashes(_table(), COLS))
    with pytest.raises(ManifestError) as err:
        verify(m, trust, expected_prev="", schema=schema_fingerprint(pa.schema([("x", pa.string())])))
    assert _code(err) == "BATCH_SCHEMA"


def test_unknown_key(store: KeyStore, trust: TrustList, tmp_path: Path) -> None:
    stranger = KeyStore(tmp_path / "stranger")
    stranger.generate(COUNTY)
    m = _seal(stranger, row_hashes(_table(), COLS))
    with pytest.raises(ManifestError) as err:
        verify(m, trust, expected_prev="")
    assert _code(err) == "BATCH_KEY_UNKNOWN"


def test_key_of_another_node(store: KeyStore, trust: TrustList) -> None:
    m = _seal(store, row_hashes(_table(), COLS), node=PROVINCE)  # province key, source says county
    with pytest.raises(ManifestError) as err:
        verify(m, trust, expected_prev="")
    assert _code(err) == "BATCH_KEY_NODE"


def test_revoked_key_refused_at_once(store: KeyStore, trust_path: Path) -> None:
    leaves = row_hashes(_table(), COLS)
    m = _seal(store, leaves, created_at=dt.datetime.now(UTC) - dt.timedelta(minutes=1))
    verify(m, TrustList.load(trust_path), expected_prev="", leaves=leaves)
    revoke(store, trust_path, m.key_id, "compromised")
    with pytest.raises(ManifestError) as err:
        verify(m, TrustList.load(trust_path), expected_prev="", leaves=leaves)
    assert _code(err) == "BATCH_KEY_REVOKED" and "compromised" in err.value.message_en


def test_rotation_overlap_and_expiry(store: KeyStore, trust_path: Path) -> None:
    leaves = row_hashes(_table(), COLS)
    rotated = T0 + dt.timedelta(days=10)
    old_kid, old_key = store.signer(COUNTY)
    rotate(store, trust_path, COUNTY, overlap_seconds=7 * 86400, now=rotated)
    trust = TrustList.load(trust_path)
    later = rotated + dt.timedelta(days=30)
    inside = _seal(
        store, leaves, key_id=old_kid, private_key=old_key, created_at=rotated + dt.timedelta(days=3)
    )
    verify(inside, trust, expected_prev="", leaves=leaves, now=rotated + dt.timedelta(days=4))
    with pytest.raises(ManifestError) as err:  # loaded after the key expired: no longer
        verify(inside, trust, expected_prev="", leaves=leaves, now=later)
    assert _code(err) == "BATCH_KEY_EXPIRED"
    outside = _seal(
        store, leaves, key_id=old_kid, private_key=old_key, created_at=rotated + dt.timedelta(days=8)
    )
    with pytest.raises(ManifestError) as err:
        verify(outside, trust, expected_prev="", now=later)
    assert _code(err) == "BATCH_KEY_EXPIRED"
    current = _seal(store, leaves, created_at=rotated + dt.timedelta(days=8))  # signed by the new key
    assert current.key_id != old_kid
    verify(current, trust, expected_prev="", leaves=leaves, now=later)


def test_check_order_key_before_signature(store: KeyStore, trust: TrustList, tmp_path: Path) -> None:
    stranger = KeyStore(tmp_path / "s")
    stranger.generate(COUNTY)
    m = dataclasses.replace(_seal(stranger, row_hashes(_table(), COLS)), rows=99)
    with pytest.raises(ManifestError) as err:
        verify(m, trust, expected_prev="bad", rows=1)
    assert _code(err) == "BATCH_KEY_UNKNOWN"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("merkle_root"),
        lambda d: d.update(rows=-1),
        lambda d: d.update(rows=True),
        lambda d: d.update(rows="5"),
        lambda d: d.update(merkle_root="XYZ"),
        lambda d: d.update(prev_hash="abc"),
        lambda d: d.update(created_at="yesterday"),
        lambda d: d.update(created_at="2025-01-01T00:00:00"),
        lambda d: d.update(cursor_to=[1, 2]),
        lambda d: d.update(extra=1),
        lambda d: d.update(source=""),
    ],
)
def test_from_json_rejects_bad_fields(store: KeyStore, mutate) -> None:
    data = _seal(store, row_hashes(_table(), COLS)).to_dict()
    mutate(data)
    with pytest.raises(ManifestError) as err:
        Manifest.from_json(json.dumps(data), where="inbox/batch.json")
    assert _code(err) == "MANIFEST_INVALID" and err.value.where == "inbox/batch.json"


@pytest.mark.parametrize("text", ["", "{", "[]", "null", b"\xff"])
def test_from_json_rejects_garbage(text) -> None:
    with pytest.raises(ManifestError) as err:
        Manifest.from_json(text)
    assert _code(err) == "MANIFEST_INVALID"


def test_seal_refuses_malformed_input(store: KeyStore) -> None:
    with pytest.raises(ManifestError):
        _seal(store, row_hashes(_table(), COLS), prev="not-a-hash")


@settings(max_examples=30, deadline=None)
@given(
    field=st.sampled_from(["dataset", "edge", "source", "target", "key_id", "batch_id"]),
    suffix=st.text(min_size=1, max_size=3),
)
def test_any_string_field_change_breaks_signature(field: str, suffix: str, tmp_path_factory) -> None:
    folder = tmp_path_factory.mktemp("p")
    store = KeyStore(folder / "keys")
    trust = init_trust(store, [PROVINCE, COUNTY], root=ROOT, path=folder / "t.json", now=T0)
    m = _seal(store, row_hashes(_table(2), COLS))
    changed = dataclasses.replace(m, **{field: getattr(m, field) + suffix})
    with pytest.raises(ManifestError) as err:
        verify(changed, trust, expected_prev="")
    assert err.value.code in {"BATCH_SIGNATURE", "BATCH_KEY_UNKNOWN", "BATCH_KEY_NODE"}
