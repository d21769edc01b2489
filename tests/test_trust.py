"""Key store and trust list: round trip, tampering, rotation with overlap, revocation, wrong keys."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tongban.core.trust import (
    KeyStore,
    TrustError,
    TrustList,
    b64url,
    from_b64url,
    init_trust,
    key_id,
    revoke,
    rotate,
)

UTC = dt.UTC
ROOT = "000000"
NODES = ["630000", "630104"]
T0 = dt.datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys")


@pytest.fixture
def trust_path(tmp_path: Path, store: KeyStore) -> Path:
    path = tmp_path / "trust.json"
    init_trust(store, NODES, root=ROOT, path=path, now=T0)
    return path


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# --- key store ----------------------------------------------------------------------------------------


def test_key_id_is_sha256_prefix_of_raw_key() -> None:
    private = Ed25519PrivateKey.generate()
    kid = key_id(private.public_key())
    assert len(kid) == 16 and kid == key_id(_raw(private.public_key()))


def test_keystore_files_and_modes(store: KeyStore) -> None:
    kid = store.generate("630104")
    pem = store.folder / "630104" / f"{kid}.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert pem.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert (store.folder / "630104" / "current").read_text().strip() == kid
    signed_kid, private = store.signer("630104")
    assert key_id(private.public_key()) == kid
    assert signed_kid == kid and key_id(store.public("630104", kid)) == kid
    assert store.nodes() == ["630104"]
    newer = store.generate("630104")
    assert newer != kid and store.signer("630104")[0] == newer
    assert key_id(store.public("630104", kid)) == kid  # the old key is kept


def test_keystore_missing_and_invalid(store: KeyStore) -> None:
    with pytest.raises(TrustError) as err:
        store.signer("630104")
    assert err.value.code == "KEY_MISSING" and err.value.message_zh
    with pytest.raises(TrustError) as err:
        store.generate("../evil")
    assert err.value.code == "NODE_INVALID"


def test_keystore_passphrase(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "k", passphrase=b"secret")
    kid = store.generate(ROOT)
    assert b"ENCRYPTED" in (tmp_path / "k" / ROOT / f"{kid}.pem").read_bytes()
    assert store.signer(ROOT)[0] == kid
    with pytest.raises(TrustError) as err:
        KeyStore(tmp_path / "k", passphrase=b"wrong").signer(ROOT)
    assert err.value.code == "KEY_UNREADABLE"


# --- trust list ---------------------------------------------------------------------------------------


def test_init_round_trip_and_idempotent(store: KeyStore, trust_path: Path) -> None:
    trust = TrustList.load(trust_path)
    assert trust.root == ROOT
    assert sorted(e.node for e in trust.entries) == sorted([ROOT, *NODES])
    data = json.loads(trust_path.read_text())
    assert data["version"] == 1 and set(data) >= {"root", "issued_at", "entries", "signature"}
    assert all(len(from_b64url(e["public_key"])) == 32 for e in data["entries"])
    before = {n: store.current(n) for n in [ROOT, *NODES]}
    text = trust_path.read_text()
    again = init_trust(store, NODES, root=ROOT, path=trust_path)
    assert {n: store.current(n) for n in [ROOT, *NODES]} == before
    assert trust_path.read_text() == text  # nothing changed, nothing rewritten
    assert len(again.entries) == 3
    init_trust(store, [*NODES, "632523"], root=ROOT, path=trust_path)  # a new county joins
    assert "632523" in {e.node for e in TrustList.load(trust_path).entries}
    with pytest.raises(TrustError) as err:
        init_trust(store, NODES, root="630000", path=trust_path)
    assert err.value.code == "TRUST_ROOT_MISMATCH"


def test_pinned_root_key(store: KeyStore, trust_path: Path) -> None:
    root_key = _raw(store.public(ROOT, store.current(ROOT)))
    assert TrustList.load(trust_path, root_public_key=root_key).root == ROOT
    other = _raw(Ed25519PrivateKey.generate().public_key())
    with pytest.raises(TrustError) as err:
        TrustList.load(trust_path, root_public_key=other)
    assert err.value.code == "TRUST_SIGNATURE"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d["entries"][1].update(valid_until="2099-01-01T00:00:00.000000Z"),
        lambda d: d["entries"][2].update(node="999999"),
        lambda d: d.update(issued_at="2030-01-01T00:00:00.000000Z"),
        lambda d: d["entries"].pop(1),
    ],
)
def test_tampered_list_rejected(trust_path: Path, tamper) -> None:
    data = json.loads(trust_path.read_text())
    tamper(data)
    trust_path.write_text(json.dumps(data))
    with pytest.raises(TrustError) as err:
        TrustList.load(trust_path)
    assert err.value.code == "TRUST_SIGNATURE"
    assert "签名" in err.value.message_zh and str(trust_path) == err.value.where


def test_list_signed_by_a_non_root_key_rejected(store: KeyStore, trust_path: Path) -> None:
    """Swapping in another key and re-signing with it does not pass as the root."""
    trust = TrustList.load(trust_path)
    county_kid, county_key = store.signer("630104")
    trust.key_id = county_kid
    trust.signature = b64url(county_key.sign(trust.canonical_bytes()))
    trust_path.write_text(trust.to_json())
    with pytest.raises(TrustError) as err:
        TrustList.load(trust_path)
    assert err.value.code == "TRUST_SIGNATURE"


@pytest.mark.parametrize("text", ["", "not json", "[]", '{"version": 2}', '{"version": 1, "root": "000000"}'])
def test_unreadable_list(tmp_path: Path, text: str) -> None:
    path = tmp_path / "trust.json"
    path.write_text(text)
    with pytest.raises(TrustError) as err:
        TrustList.load(path)
    assert err.value.code == "TRUST_UNREADABLE"
    with pytest.raises(TrustError) as err:
        TrustList.load(tmp_path / "missing.json")
    assert err.value.code == "TRUST_UNREADABLE"


def test_bad_entry_is_unreadable(trust_path: Path) -> None:
    data = json.loads(trust_path.read_text())
    data["entries"][0]["key_id"] = "0" * 16  # does not match its public key
    trust_path.write_text(json.dumps(data))
    with pytest.raises(TrustError) as err:
        TrustList.load(trust_path)
    assert err.value.code == "TRUST_UNREADABLE"


# --- lookup -------------------------------------------------------------------------------------------


def test_lookup_ok_unknown_and_wrong_node(store: KeyStore, trust_path: Path) -> None:
    trust = TrustList.load(trust_path)
    kid = store.current("630104")
    at = T0 + dt.timedelta(days=1)
    assert key_id(trust.lookup("630104", kid, at)) == kid
    with pytest.raises(TrustError) as err:
        trust.lookup("630104", "0123456789abcdef", at)
    assert err.value.code == "KEY_UNKNOWN"
    with pytest.raises(TrustError) as err:
        trust.lookup("630000", kid, at)
    assert err.value.code == "KEY_NODE_MISMATCH" and "630104" in err.value.message_en
    with pytest.raises(TrustError) as err:
        trust.lookup("630104", kid, T0 - dt.timedelta(seconds=1))  # before valid_from
    assert err.value.code == "KEY_EXPIRED"


def test_rotation_overlap(store: KeyStore, trust_path: Path) -> None:
    old = store.current("630104")
    rotated_at = T0 + dt.timedelta(days=30)
    new = rotate(store, trust_path, "630104", overlap_seconds=86400, now=rotated_at)
    assert new != old and store.current("630104") == new
    trust = TrustList.load(trust_path)
    old_entry, new_entry = trust.entry(old), trust.entry(new)
    assert old_entry is not None and new_entry is not None
    assert old_entry.valid_until == rotated_at + dt.timedelta(days=1)
    assert new_entry.valid_from == rotated_at and new_entry.valid_until is None
    later = rotated_at + dt.timedelta(days=10)
    # a batch made with the old key inside the overlap still verifies, even checked later
    assert key_id(trust.lookup("630104", old, rotated_at + dt.timedelta(hours=12), now=later)) == old
    # one made after the overlap does not
    with pytest.raises(TrustError) as err:
        trust.lookup("630104", old, rotated_at + dt.timedelta(days=2), now=later)
    assert err.value.code == "KEY_EXPIRED"
    assert key_id(trust.lookup("630104", new, later, now=later)) == new


def test_root_rotation_keeps_list_verifiable(store: KeyStore, trust_path: Path) -> None:
    old_root = store.current(ROOT)
    new_root = rotate(store, trust_path, ROOT, now=T0 + dt.timedelta(days=1))
    trust = TrustList.load(trust_path)
    assert trust.key_id == new_root != old_root
    new_raw = _raw(store.public(ROOT, new_root))
    assert TrustList.load(trust_path, root_public_key=new_raw).root == ROOT


def test_revocation_refuses_at_once(store: KeyStore, trust_path: Path) -> None:
    kid = store.current("630104")
    batch_time = dt.datetime.now(UTC) - dt.timedelta(minutes=5)  # signed before the revocation
    revoke(store, trust_path, kid, "key leaked / 密钥泄露")
    trust = TrustList.load(trust_path)
    entry = trust.entry(kid)
    assert (
        entry is not None and entry.revoked_at is not None and entry.revoked_reason == "key leaked / 密钥泄露"
    )
    with pytest.raises(TrustError) as err:
        trust.lookup("630104", kid, batch_time)
    assert err.value.code == "KEY_REVOKED" and "密钥泄露" in err.value.message_zh
    first = entry.revoked_at
    revoke(store, trust_path, kid, "again")  # idempotent: the first time stays
    assert TrustList.load(trust_path).entry(kid).revoked_at == first  # type: ignore[union-attr]


def test_future_revocation_applies_from_its_time(store: KeyStore, trust_path: Path) -> None:
    kid = store.current("630000")
    revoked_at = T0 + dt.timedelta(days=5)
    revoke(store, trust_path, kid, "scheduled", now=revoked_at)
    trust = TrustList.load(trust_path)
    before = T0 + dt.timedelta(days=1)
    assert key_id(trust.lookup("630000", kid, before, now=before)) == kid
    with pytest.raises(TrustError) as err:
        trust.lookup("630000", kid, before, now=revoked_at)
    assert err.value.code == "KEY_REVOKED"


def test_revoke_root_current_refused_and_unknown(store: KeyStore, trust_path: Path) -> None:
    with pytest.raises(TrustError) as err:
        revoke(store, trust_path, store.current(ROOT), "no")
    assert err.value.code == "ROOT_REVOKE" and "rotate" in err.value.message_en
    with pytest.raises(TrustError) as err:
        revoke(store, trust_path, "0123456789abcdef", "no")
    assert err.value.code == "KEY_UNKNOWN"
    old_root = store.current(ROOT)
    rotate(store, trust_path, ROOT)
    revoke(store, trust_path, old_root, "retired")  # after rotation the old root key may go
    assert TrustList.load(trust_path).entry(old_root).revoked_at is not None  # type: ignore[union-attr]


def test_error_is_bilingual_dict(store: KeyStore) -> None:
    with pytest.raises(TrustError) as err:
        store.signer(ROOT)
    d = err.value.as_dict()
    assert set(d) == {"code", "message_zh", "message_en", "where"} and d["message_zh"] != d["message_en"]
