"""Verification's core on a synced demo exchange: matching, status meanings, scopes, attestations checked
offline, status lists, provenance proofs checked independently, office tokens."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests import proofcheck
from tests.verifyworld import build_world, rows
from tongban.core import engine
from tongban.core.config import Exchange
from tongban.core.trust import KeyStore, TrustList, revoke, rotate
from tongban.core.verification import attestation, offices, statuslist
from tongban.core.verification.errors import VerifyError
from tongban.core.verification.scope import Scope
from tongban.core.verification.service import Verifier

ALL = Scope(datasets=("license", "population", "business"))
LICENSE_FIELDS = [
    "license_id",
    "license_type_code",
    "license_type_name",
    "license_number",
    "holder_name",
    "holder_code",
    "holder_code_type",
    "issuer_name",
    "issuer_code",
    "issue_date",
    "valid_from",
    "valid_until",
    "division",
    "status",
    "surface",
    "updated_at",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    ex = build_world(tmp_path_factory.mktemp("verify-core"))
    libs = engine.Libraries(ex)
    lib = libs.get("000000")
    yield ex, libs, lib, Verifier(lib, "000000", KeyStore(ex.keys_dir), libraries=libs.get)
    libs.dispose()


def _code(exc: pytest.ExceptionInfo[VerifyError]) -> str:
    return exc.value.code


def test_license_match_mismatch_not_found_never_shows_stored_values(world: Any) -> None:
    _, _, lib, v = world
    r = rows(lib, "select * from license where status='01' and holder_code_type='111' limit 1")[0]
    ok = v.verify("license", {"license_id": r.license_id, "holder_code": r.holder_code.lower()}, ALL)
    assert ok["result"] == "match" and ok["status"]["state"] in ("valid", "expired")
    assert ok["record"]["holder_code"] != r.holder_code and "*" in ok["record"]["holder_code"]  # masked
    assert ok["record"]["holder_name"] != r.holder_name
    by_number = v.verify("license", {"license_number": r.license_number, "holder_code": r.holder_code}, ALL)
    assert by_number["result"] == "match"
    other = "11010519491231002X" if r.holder_code != "11010519491231002X" else "360426199101010071"
    bad = v.verify("license", {"license_id": r.license_id, "holder_code": other}, ALL)
    assert bad["result"] == "mismatch" and bad["mismatched"] == ["holder_code"]
    assert bad["record"] is None and bad["status"] is None
    text = json.dumps(bad, ensure_ascii=False)
    assert r.holder_code not in text and r.holder_name not in text
    gone = v.verify("license", {"license_id": _other_license_id(r.license_id), "holder_code": other}, ALL)
    assert gone["result"] == "not_found" and gone["record"] is None


def _other_license_id(license_id: str) -> str:
    """A well-formed GB/T 36904 id (valid check character) that the library does not hold."""
    from schemas.standards import gbt36904

    parts = gbt36904.split(license_id)
    serial = "Z" * len(parts["serial"])
    return gbt36904.compose(parts["type_code"], parts["issuer_code"], serial, parts["version"])


def test_person_and_business(world: Any) -> None:
    _, _, lib, v = world
    p = rows(lib, "select id_number, name from population where status='normal' limit 1")[0]
    assert v.verify("person", {"id_number": p.id_number, "name": f" {p.name} "}, ALL)["result"] == "match"
    wrong = v.verify("person", {"id_number": p.id_number, "name": p.name + "某"}, ALL)
    assert wrong["mismatched"] == ["name"] and p.name not in json.dumps(wrong, ensure_ascii=False)
    b = rows(lib, "select uscc, name from business limit 1")[0]
    assert v.verify("business", {"uscc": b.uscc}, ALL)["result"] == "match"
    assert v.verify("business", {"uscc": b.uscc, "name": "不是这家公司"}, ALL)["mismatched"] == ["name"]


def test_every_license_status_reads_as_a_clerk_would(world: Any) -> None:
    _, _, lib, v = world
    expect = {"01": ("valid", "expired"), "02": ("suspended",), "03": ("revoked",), "04": ("cancelled",)}
    expect |= {"05": ("expired",), "06": ("moved",), "07": ("revoked",), "99": ("other",)}
    seen = set()
    for r in rows(lib, "select license_id, holder_code, status from license"):
        if r.status in seen:
            continue
        seen.add(r.status)
        answer = v.verify("license", {"license_id": r.license_id, "holder_code": r.holder_code}, ALL)
        assert answer["status"]["state"] in expect[r.status], r.status
        assert answer["status"]["zh"] and answer["status"]["en"]
        if r.status == "07":
            assert answer["status"]["zh"] == "已吊销"
    assert {"01", "07"} <= seen


def test_moved_person_names_where_it_went(world: Any) -> None:
    _, libs, _, _ = world
    ex: Exchange = world[0]
    for county in ex.counties():
        lib = libs.get(county.code)
        moved = rows(lib, "select id_number, name, moved_to from population where status='moved_out' limit 1")
        if moved:
            v = Verifier(lib, county.code, KeyStore(ex.keys_dir))
            a = v.verify("person", {"id_number": moved[0].id_number, "name": moved[0].name}, ALL)
            assert a["status"]["state"] == "moved" and a["status"]["moved_to"] == moved[0].moved_to
            return
    pytest.skip("the generated data holds no moved person")


@pytest.mark.parametrize(
    ("kind", "claim", "field"),
    [
        ("person", {"id_number": "110105194912310021", "name": "张三"}, "id_number"),  # check digit
        ("person", {"id_number": "11010519491231002X' OR 1=1 --", "name": "张三"}, "id_number"),
        ("person", {"id_number": "11010519491231002X", "name": "张\x00三"}, "name"),
        ("person", {"id_number": "11010519491231002X", "name": "长" * 300}, "name"),
        ("business", {"uscc": "91110000600037341X"}, "uscc"),
        ("license", {"license_id": "1.2.156.3005.2.x", "holder_code": "11010519491231002X"}, "license_id"),
        ("license", {"holder_code": "11010519491231002X"}, "license_id"),
        ("license", {"license_number": "A1", "holder_code": 12345}, "holder_code"),
        ("license", {"license_number": "<script>", "holder_code": "11010519491231002X"}, "license_number"),
    ],
)
def test_malformed_identifiers_are_refused_naming_the_field(
    world: Any, kind: str, claim: dict, field: str
) -> None:
    v = world[3]
    with pytest.raises(VerifyError) as exc:
        v.verify(kind, claim, ALL)
    assert _code(exc) == "IDENTIFIER_INVALID" and exc.value.where == field
    assert "OR 1=1" not in exc.value.message_en


def test_scope_misses(world: Any) -> None:
    _, _, lib, v = world
    r = rows(lib, "select license_id, holder_code, division from license where division like '63%' limit 1")[
        0
    ]
    claim = {"license_id": r.license_id, "holder_code": r.holder_code}
    with pytest.raises(VerifyError) as exc:
        v.verify("license", claim, Scope(datasets=("business",)))
    assert _code(exc) == "SCOPE_DATASET"
    with pytest.raises(VerifyError) as exc:
        v.verify("license", claim, Scope(datasets=("license",), divisions=("430000",)))
    assert _code(exc) == "SCOPE_DIVISION"
    assert (
        v.verify("license", claim, Scope(datasets=("license",), divisions=("630000",)))["result"] == "match"
    )
    with pytest.raises(VerifyError) as exc:
        v.search_licenses(r.holder_code, Scope(datasets=("license",)))
    assert _code(exc) == "SCOPE_SEARCH"
    found = v.search_licenses(r.holder_code, Scope(datasets=("license",), divisions=("630000",), search=True))
    assert found["total"] >= 1 and all(i["record"]["division"].startswith("63") for i in found["items"])
    outside = v.search_licenses(
        r.holder_code, Scope(datasets=("license",), divisions=("430000",), search=True)
    )
    assert outside["total"] == 0


def _answer(v: Verifier, lib: Any, status: str = "01") -> tuple[dict[str, Any], Any]:
    r = rows(lib, "select license_id, holder_code from license where status=:s limit 1", s=status)[0]
    return v.verify("license", {"license_id": r.license_id, "holder_code": r.holder_code}, ALL), r


def test_attestation_checks_offline_and_says_why_it_fails(world: Any, tmp_path: Path) -> None:
    ex, _, lib, v = world
    trust = TrustList.load(ex.trust_list)
    answer, _ = _answer(v, lib)
    token = answer["attestation"]
    claims = attestation.check(token, trust)
    assert claims["result"] == "match" and claims["iss"] == "000000"
    assert "holder_code" not in json.dumps(claims) and claims["claim_digest"] == answer["claim_digest"]
    header, body, sig = token.split(".")

    def code(t: str, **kw: Any) -> str:
        with pytest.raises(VerifyError) as exc:
            attestation.check(t, trust, **kw)
        return exc.value.code

    forged_body = json.loads(proofcheck.b64(body))
    forged_body["result"] = "match"
    forged_body["status"] = {"state": "valid", "code": "01"}
    forged_body["claim_digest"] = "0" * 64
    import base64

    fb = base64.urlsafe_b64encode(json.dumps(forged_body).encode()).rstrip(b"=").decode()
    assert code(f"{header}.{fb}.{sig}") == "ATTEST_SIGNATURE"
    assert code(token[: len(token) // 2]) == "ATTEST_MALFORMED"
    assert code(f"{header}.{body}") == "ATTEST_MALFORMED"
    assert code("x" * 10000) == "ATTEST_MALFORMED"
    stranger = Ed25519PrivateKey.generate()
    own = jwt.encode(forged_body, stranger, algorithm="EdDSA", headers={"kid": "0123456789abcdef"})
    assert code(own) == "ATTEST_KEY_UNKNOWN"
    kid = jwt.get_unverified_header(token)["kid"]
    with_kid = jwt.encode(forged_body, stranger, algorithm="EdDSA", headers={"kid": kid})
    assert code(with_kid) == "ATTEST_SIGNATURE"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
    assert code(token, now=later) == "ATTEST_EXPIRED"


def test_status_list_catches_a_record_revoked_since(world: Any) -> None:
    ex, _, lib, v = world
    trust = TrustList.load(ex.trust_list)
    answer, r = _answer(v, lib)
    listed = v.status_list("license")
    assert all(e["state"] != "valid" for e in listed["entries"]) and listed["entries"]
    doc = statuslist.load(json.dumps(listed), trust)
    attestation.check(answer["attestation"], trust, status_list=doc)  # still valid: not listed
    since = dt.datetime.now(dt.UTC)
    with lib.engine.begin() as conn:
        conn.exec_driver_sql(
            "update license set status='07', _synced_at=? where license_id=?",
            ((since + dt.timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S.%f"), r.license_id),
        )
    delta = v.status_list("license", since=since)
    assert [e["key"] for e in delta["entries"]] == [r.license_id] and delta["since"]
    with pytest.raises(VerifyError) as exc:
        attestation.check(answer["attestation"], trust, status_list=statuslist.load(json.dumps(delta), trust))
    assert exc.value.code == "ATTEST_RECORD_CHANGED"
    tampered = dict(delta, entries=[])
    with pytest.raises(VerifyError) as exc:
        statuslist.load(json.dumps(tampered), trust)
    assert exc.value.code == "STATUS_LIST_INVALID"
    with pytest.raises(VerifyError) as exc:
        v.status_list("population")
    assert exc.value.code == "STATUS_LIST_DATASET"


def test_national_record_proof_reaches_the_county_signature_independently_checked(world: Any) -> None:
    ex, _, lib, v = world
    r = rows(lib, "select * from license where status = '04' limit 1")[0]._mapping
    proof = v.proof("license", r["license_id"])
    assert len(proof["hops"]) == 2 and proof["owner"] == r["_owner"]
    values = [r[f] for f in LICENSE_FIELDS] + [r["_owner"]]
    values[LICENSE_FIELDS.index("updated_at")] = proofcheck.sqlite_timestamp(r["updated_at"])
    leaf = proofcheck.leaf_of(values)
    assert leaf == r["_hash"]
    trust_json = json.loads(Path(ex.trust_list).read_text(encoding="utf-8"))
    assert proofcheck.check(proof, trust_json, answering="000000", owner=r["division"], leaf=leaf) == []
    # Tampering anywhere is caught by the same independent checker.
    bad = json.loads(json.dumps(proof))
    bad["hops"][1]["manifest"]["rows"] += 1
    assert "hop 1: bad signature" in proofcheck.check(
        bad, trust_json, answering="000000", owner=r["division"], leaf=leaf
    )
    short = dict(proof, hops=proof["hops"][:1])
    assert proofcheck.check(short, trust_json, answering="000000", owner=r["division"], leaf=leaf)
    other = proofcheck.leaf_of([*values[:-1], "999999"])
    assert proofcheck.check(proof, trust_json, answering="000000", owner=r["division"], leaf=other)
    with pytest.raises(VerifyError) as exc:
        v.proof("license", "no-such-license")
    assert exc.value.code == "RECORD_NOT_FOUND"


def test_office_tokens(world: Any) -> None:
    _, _, lib, _ = world
    _, token = offices.add(lib, "QH-T1", "西宁窗口", Scope(datasets=("license",), divisions=("630000",)), 60)
    assert offices.authenticate(lib, token).code == "QH-T1"
    stored = rows(lib, "select token_hash from offices where code='QH-T1'")[0].token_hash
    assert token not in stored and len(stored) == 64
    with pytest.raises(VerifyError) as exc:
        offices.add(lib, "QH-T1", "again", Scope(datasets=("license",)))
    assert exc.value.code == "OFFICE_EXISTS"
    for bad in ("", "tbo_QH-T1_" + "A" * 43, token + "x", "Bearer " + token, "tbo_" + "a" * 500):
        with pytest.raises(VerifyError) as exc:
            offices.authenticate(lib, bad)
        assert exc.value.code == "AUTH_INVALID"
    new = offices.rotate(lib, "QH-T1")
    with pytest.raises(VerifyError):
        offices.authenticate(lib, token)
    assert offices.authenticate(lib, new).code == "QH-T1"
    offices.revoke(lib, "QH-T1", "test")
    with pytest.raises(VerifyError) as exc:
        offices.authenticate(lib, new)
    assert exc.value.code == "AUTH_REVOKED"


def test_a_revoked_key_fails_attestations_at_once(world: Any) -> None:
    ex, _, lib, v = world
    answer, _ = _answer(v, lib)
    keys = KeyStore(ex.keys_dir)
    old = keys.current("000000")
    rotate(keys, ex.trust_list, "000000")  # the root signs with a new key; the old one can be revoked
    revoke(keys, ex.trust_list, old, "test: leaked")
    with pytest.raises(VerifyError) as exc:
        attestation.check(answer["attestation"], TrustList.load(ex.trust_list))
    assert exc.value.code == "ATTEST_KEY_REVOKED"
    fresh = Verifier(lib, "000000", keys).verify(
        "business", {"uscc": rows(lib, "select uscc from business limit 1")[0].uscc}, ALL
    )
    assert attestation.check(fresh["attestation"], TrustList.load(ex.trust_list))["result"] == "match"


def test_fast_canonical_json_is_rfc8785() -> None:
    """The C-encoder path of ``rfc8785_bytes`` gives exactly the ``rfc8785`` package's bytes."""
    import rfc8785
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from tongban.core.trust.canonical import rfc8785_bytes

    scalars = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20)
    values = st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=20,
    )

    @settings(max_examples=400, deadline=None)
    @given(values)
    def same(value: object) -> None:
        assert rfc8785_bytes(value) == rfc8785.dumps(value)

    same()


def test_step_3_adds_the_lookup_indexes_to_an_older_library(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from tongban.core.store import SCHEMA_VERSION, Library, Vault

    vault = Vault("630104", tmp_path / "keys")
    vault.create()
    lib = Library(f"sqlite:///{tmp_path / 'old.sqlite'}", "630104", vault)
    lib.migrate()
    with lib.engine.begin() as conn:  # as a version 2 library was: no lookup indexes
        conn.exec_driver_sql("DROP INDEX ix_license_number")
        conn.exec_driver_sql("UPDATE tongban_meta SET value='2' WHERE name='schema_version'")
    assert lib.migrate() == SCHEMA_VERSION
    names = {i["name"] for i in sa.inspect(lib.engine).get_indexes("license")}
    # The plain license number has a plain index; the sealed holder code its keyed hash's (step 6).
    assert {"ix_license_number", "ix_license_ix_holder_code"} <= names
    lib.dispose()
