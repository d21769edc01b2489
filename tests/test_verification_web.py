"""The verification API over real HTTP (uvicorn on a loopback port): every endpoint, and everything a
hostile or careless caller can send — the right 4xx with a code, never a 5xx, a trace, or a record
outside the office's scope; every request audited; the audit log's tampering caught by the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests import proofcheck
from tests.verifyworld import build_world, rows
from tests.webutil import live_server
from tongban.cli import main
from tongban.core.verification import offices
from tongban.core.verification.scope import Scope
from tongban.web.app import create_app
from tongban.web.settings import WebSettings


class Served:
    def __init__(self, url: str, settings: WebSettings, config: str, tokens: dict[str, str]) -> None:
        self.url, self.settings, self.config, self.tokens = url, settings, config, tokens
        self.lib = settings.library

    def h(self, office: str = "all") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[office]}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("verify-web")
    ex = build_world(root)
    settings = WebSettings.for_node(ex, extra={"checkpoint_seconds": 0.0})
    lib = settings.library
    lib.migrate()
    everything = Scope(datasets=("license", "population", "business"), search=True)
    tokens = {
        "all": offices.add(lib, "ALL-1", "全部", everything, 100_000)[1],
        "qh": offices.add(
            lib, "QH-1", "青海窗口", Scope(datasets=("license",), divisions=("630000",)), 100_000
        )[1],
        "slow": offices.add(lib, "SLOW-1", "限速窗口", Scope(datasets=("license",)), 5)[1],
        "gone": offices.add(lib, "GONE-1", "已吊销", everything, 1000)[1],
    }
    offices.revoke(lib, "GONE-1", "test")
    with live_server(create_app(settings)) as url:
        yield Served(url, settings, str(root / "exchange.yaml"), tokens)
    settings.libraries.dispose()


def _no_trace(resp: httpx.Response) -> None:
    assert resp.status_code < 500, resp.text
    assert "Traceback" not in resp.text and 'File "' not in resp.text


def _code(resp: httpx.Response) -> str:
    _no_trace(resp)
    return str(resp.json()["code"])


def _license(s: Served, where: str = "1=1") -> Any:
    return rows(s.lib, f"select * from license where {where} limit 1")[0]


def test_verify_each_kind_over_http(served: Served) -> None:
    s = served
    r = _license(s, "status='07'")
    resp = httpx.post(
        f"{s.url}/v1/verify/license",
        json={"purpose": "tax", "license_id": r.license_id, "holder_code": r.holder_code},
        headers=s.h(),
    )
    body = resp.json()
    assert resp.status_code == 200 and body["result"] == "match"
    assert body["status"]["state"] == "revoked" and body["status"]["zh"] == "已吊销"
    assert body["attestation"].count(".") == 2 and body["claim_digest"] != r.license_id
    p = rows(s.lib, "select id_number, name from population limit 1")[0]
    person = httpx.post(
        f"{s.url}/v1/verify/person",
        json={"purpose": "social_insurance", "id_number": p.id_number, "name": p.name},
        headers=s.h(),
    )
    assert person.json()["result"] == "match"
    assert p.id_number not in person.text and p.name not in person.text  # masked, and no raw claim
    b = rows(s.lib, "select uscc from business limit 1")[0]
    biz = httpx.post(
        f"{s.url}/v1/verify/business", json={"purpose": "market_registration", "uscc": b.uscc}, headers=s.h()
    )
    assert biz.json()["result"] == "match"


def test_search_proof_lists_health_metrics_over_http(served: Served) -> None:
    s = served
    r = _license(s, "holder_code_type='111'")
    verified = httpx.post(  # one answer of its own for the metrics below (tests may run in any order)
        f"{s.url}/v1/verify/license",
        json={"purpose": "tax", "license_id": r.license_id, "holder_code": r.holder_code},
        headers=s.h(),
    )
    assert verified.json()["result"] == "match"
    found = httpx.get(
        f"{s.url}/v1/licenses", params={"holder_code": r.holder_code, "purpose": "tax"}, headers=s.h()
    ).json()
    assert found["total"] >= 1 and r.holder_code not in json.dumps(found)
    proof = httpx.get(f"{s.url}/v1/records/license/{r.license_id}/proof", headers=s.h())
    assert proof.status_code == 200
    trust = httpx.get(f"{s.url}/v1/trust-list", headers=s.h()).json()
    assert proofcheck.check(proof.json(), trust, answering="000000", owner=r.division, leaf=r._hash) == []
    listed = httpx.get(f"{s.url}/v1/status-list/license", headers=s.h()).json()
    assert listed["entries"] and all(e["state"] != "valid" for e in listed["entries"])
    delta = httpx.get(
        f"{s.url}/v1/status-list/license", params={"since": "2999-01-01T00:00:00Z"}, headers=s.h()
    )
    assert delta.json()["entries"] == []
    assert _code(httpx.get(f"{s.url}/v1/status-list/population", headers=s.h())) == "STATUS_LIST_DATASET"
    assert httpx.get(f"{s.url}/healthz").json()["status"] == "ok"
    ready = httpx.get(f"{s.url}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {
        "library": "ok",
        "key": "ok",
        "trust_list": "ok",
    }
    text = httpx.get(f"{s.url}/metrics").text
    assert 'tongban_verifications_total{kind="license",result="match"}' in text
    assert "tongban_request_seconds_bucket" in text and "tongban_refusals_total" in text


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "AUTH_REQUIRED"),
        ({"Authorization": "Bearer nope"}, "AUTH_INVALID"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "AUTH_INVALID"),
        ({"Authorization": "Bearer tbo_ALL-1_" + "A" * 43}, "AUTH_INVALID"),
        ({"Authorization": "Bearer " + "x" * 5000}, "AUTH_INVALID"),
    ],
)
def test_no_or_wrong_token(served: Served, headers: dict[str, str], code: str) -> None:
    r = _license(served)
    for path, kw in (
        (
            "/v1/verify/license",
            {"json": {"purpose": "tax", "license_id": r.license_id, "holder_code": r.holder_code}},
        ),
        ("/v1/trust-list", {}),
    ):
        method = httpx.post if "verify" in path else httpx.get
        resp = method(served.url + path, headers=headers, **kw)
        assert resp.status_code == 401 and _code(resp) == code
        assert r.holder_name not in resp.text


def test_revoked_and_rotated_tokens(served: Served) -> None:
    s = served
    resp = httpx.get(f"{s.url}/v1/trust-list", headers=s.h("gone"))
    assert resp.status_code == 401 and _code(resp) == "AUTH_REVOKED"
    _, token = offices.add(s.lib, "ROT-1", "轮换", Scope(datasets=("license",)), 1000)
    assert (
        httpx.get(f"{s.url}/v1/trust-list", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    )
    assert main(["offices", "rotate", "ROT-1", "--config", s.config]) == 0
    assert (
        _code(httpx.get(f"{s.url}/v1/trust-list", headers={"Authorization": f"Bearer {token}"}))
        == "AUTH_INVALID"
    )


def test_scope_misses_never_show_the_record(served: Served) -> None:
    s = served
    outside = _license(s, "division not like '63%'")
    inside = _license(s, "division like '63%'")
    claim = {"purpose": "tax", "license_id": outside.license_id, "holder_code": outside.holder_code}
    resp = httpx.post(f"{s.url}/v1/verify/license", json=claim, headers=s.h("qh"))
    assert resp.status_code == 403 and _code(resp) == "SCOPE_DIVISION"
    assert outside.holder_name not in resp.text and outside.license_number not in resp.text
    ok = httpx.post(
        f"{s.url}/v1/verify/license",
        json={"purpose": "tax", "license_id": inside.license_id, "holder_code": inside.holder_code},
        headers=s.h("qh"),
    )
    assert ok.json()["result"] == "match"
    p = rows(s.lib, "select id_number, name from population limit 1")[0]
    person = httpx.post(
        f"{s.url}/v1/verify/person",
        json={"purpose": "tax", "id_number": p.id_number, "name": p.name},
        headers=s.h("qh"),
    )
    assert person.status_code == 403 and _code(person) == "SCOPE_DATASET"
    search = httpx.get(
        f"{s.url}/v1/licenses",
        params={"holder_code": inside.holder_code, "purpose": "tax"},
        headers=s.h("qh"),
    )
    assert search.status_code == 403 and _code(search) == "SCOPE_SEARCH"
    proof = httpx.get(f"{s.url}/v1/records/license/{outside.license_id}/proof", headers=s.h("qh"))
    assert (
        proof.status_code == 403
        and _code(proof) == "SCOPE_DIVISION"
        and "hops" not in proof.text
        and outside._hash not in proof.text
    )


@pytest.mark.parametrize(
    ("body", "code", "where"),
    [
        ({"license_id": "X", "holder_code": "11010519491231002X"}, "REQUEST_INVALID", "purpose"),
        (
            {"purpose": "curiosity", "license_id": "X", "holder_code": "11010519491231002X"},
            "REQUEST_INVALID",
            "purpose",
        ),
        (
            {"purpose": "tax", "license_id": "1.2.156.3005.2.bad", "holder_code": "11010519491231002X"},
            "IDENTIFIER_INVALID",
            "license_id",
        ),
        (
            {"purpose": "tax", "license_number": "A1", "holder_code": "110105194912310021"},
            "IDENTIFIER_INVALID",
            "holder_code",
        ),
        ({"purpose": "tax", "holder_code": "11010519491231002X"}, "IDENTIFIER_INVALID", "license_id"),
        (
            {"purpose": "tax", "license_id": ["a"], "holder_code": "11010519491231002X"},
            "REQUEST_INVALID",
            "license_id",
        ),
        (
            {"purpose": "tax", "license_id": "a" * 500, "holder_code": "11010519491231002X"},
            "REQUEST_INVALID",
            "license_id",
        ),
        ({"purpose": "tax", "license_id": "X", "holder_code": "1", "extra": 1}, "REQUEST_INVALID", "extra"),
    ],
)
def test_bad_bodies(served: Served, body: dict[str, Any], code: str, where: str) -> None:
    resp = httpx.post(f"{served.url}/v1/verify/license", json=body, headers=served.h())
    assert resp.status_code == 422 and _code(resp) == code and resp.json()["where"] == where


def test_oversized_nested_and_broken_bodies(served: Served) -> None:
    s = served
    big = {"purpose": "tax", "holder_code": "1", "license_id": "x" * (70 * 1024)}
    before = s.settings.audit.head().seq
    resp = httpx.post(f"{s.url}/v1/verify/license", json=big, headers=s.h())
    assert resp.status_code == 413 and _code(resp) == "REQUEST_TOO_LARGE"
    (entry,) = s.settings.audit.entries(after_seq=before)  # refused at the edge, audited all the same
    assert entry.reason == "REQUEST_TOO_LARGE" and entry.result == "refused 413"
    nested = "[" * 5000 + '"x"' + "]" * 5000
    deep = httpx.post(
        f"{s.url}/v1/verify/license",
        content='{"purpose": "tax", "holder_code": ' + nested + "}",
        headers={**s.h(), "Content-Type": "application/json"},
    )
    assert deep.status_code in (400, 413, 422) and _code(deep) in ("REQUEST_INVALID", "REQUEST_TOO_LARGE")
    for content in (b"{", b"\xff\xfe", b"null", b"[]", b'{"purpose": "tax"'):
        resp = httpx.post(
            f"{s.url}/v1/verify/license",
            content=content,
            headers={**s.h(), "Content-Type": "application/json"},
        )
        assert resp.status_code == 422 and _code(resp) == "REQUEST_INVALID"
    assert (
        _code(httpx.get(f"{s.url}/v1/records/license/{'x' * 300}/proof", headers=s.h())) == "REQUEST_INVALID"
    )
    assert _code(httpx.get(f"{s.url}/v1/records/nothing/x/proof", headers=s.h())) == "REQUEST_INVALID"
    missing = httpx.get(f"{s.url}/v1/records/license/no-such/proof", headers=s.h())
    assert missing.status_code == 404 and _code(missing) == "RECORD_NOT_FOUND"
    assert (
        _code(httpx.get(f"{s.url}/v1/status-list/license", params={"since": "yesterday"}, headers=s.h()))
        == "REQUEST_INVALID"
    )


def test_flood_beyond_the_rate_limit(served: Served) -> None:
    s = served
    r = _license(s)
    claim = {"purpose": "tax", "license_id": r.license_id, "holder_code": r.holder_code}
    codes = [
        httpx.post(f"{s.url}/v1/verify/license", json=claim, headers=s.h("slow")).status_code
        for _ in range(12)
    ]
    assert codes[:5] == [200] * 5 and set(codes[5:]) == {429}
    resp = httpx.post(f"{s.url}/v1/verify/license", json=claim, headers=s.h("slow"))
    assert _code(resp) == "RATE_LIMITED" and int(resp.headers["Retry-After"]) >= 1
    assert (
        httpx.post(f"{s.url}/v1/verify/license", json=claim, headers=s.h()).status_code == 200
    )  # others go on


def test_every_request_is_audited_without_personal_data(served: Served) -> None:
    s = served
    before = s.settings.audit.head().seq
    p = rows(s.lib, "select id_number, name from population limit 1")[0]
    httpx.post(
        f"{s.url}/v1/verify/person",
        json={"purpose": "tax", "id_number": p.id_number, "name": p.name},
        headers=s.h(),
    )
    httpx.post(f"{s.url}/v1/verify/person", json={"id_number": p.id_number, "name": p.name}, headers=s.h())
    httpx.get(f"{s.url}/v1/trust-list")
    httpx.get(f"{s.url}/v1/trust-list", headers=s.h("gone"))
    new = s.settings.audit.entries(after_seq=before)
    assert len(new) == 4
    assert new[0].actor == "office:ALL-1" and new[0].purpose == "tax" and new[0].result == "match"
    assert new[0].claim_digest and len(new[0].claim_digest) == 64 and new[0].dataset == "population"
    assert (
        new[1].reason == "REQUEST_INVALID"
        and new[2].actor == "anonymous"
        and new[2].reason == "AUTH_REQUIRED"
    )
    assert new[3].reason == "AUTH_REVOKED"
    dump = json.dumps([e.as_dict() for e in new], ensure_ascii=False)
    assert p.id_number not in dump and p.name not in dump


def _audit(s: Served, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(["audit", "verify", "--config", s.config])
    return rc, capsys.readouterr().err


def test_audit_verify_catches_altered_deleted_inserted_and_rewritten(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    s = served
    r = _license(s)
    for _ in range(6):
        httpx.post(
            f"{s.url}/v1/verify/license",
            json={"purpose": "tax", "license_id": r.license_id, "holder_code": r.holder_code},
            headers=s.h(),
        )
    assert _audit(s, capsys)[0] == 0
    engine = s.lib.engine
    head = s.settings.audit.head().seq
    target = head - 3
    with engine.begin() as c:
        original = dict(
            c.execute(sa.text("select * from audit_log where seq=:s"), {"s": target}).mappings().one()
        )
    try:
        with engine.begin() as c:  # altered
            c.execute(sa.text("update audit_log set result='mismatch' where seq=:s"), {"s": target})
        rc, err = _audit(s, capsys)
        assert rc == 4 and "AUDIT_BROKEN" in err and f"entry {target} " in err and "altered" in err
        with engine.begin() as c:  # deleted
            c.execute(sa.text("delete from audit_log where seq=:s"), {"s": target})
        rc, err = _audit(s, capsys)
        assert rc == 4 and f"entry {target + 1} " in err and "removed" in err
        with engine.begin() as c:  # inserted in its place: a well-formed entry that does not chain
            row = dict(original, result="mismatch", prev_hash="0" * 64)
            from tongban.core.audit import AuditEntry, entry_hash

            row["detail"] = json.loads(row["detail"])
            row["hash"] = entry_hash(AuditEntry(**{k: v for k, v in row.items() if k != "hash"}))
            row["detail"] = json.dumps(row["detail"])
            c.execute(
                sa.text(f"insert into audit_log ({','.join(row)}) values ({','.join(':' + k for k in row)})"),
                row,
            )
        rc, err = _audit(s, capsys)
        assert rc == 4 and f"entry {target} " in err and "inserted" in err
    finally:
        with engine.begin() as c:
            c.execute(sa.text("delete from audit_log where seq=:s"), {"s": target})
            c.execute(
                sa.text(
                    f"insert into audit_log ({','.join(original)}) values ({','.join(':' + k for k in original)})"
                ),
                original,
            )
    assert _audit(s, capsys)[0] == 0
    _rewrite_from(s, target)
    rc, err = _audit(s, capsys)
    assert rc == 4 and "rewritten" in err


def _rewrite_from(s: Served, start: int) -> None:
    """An attacker with the database: change an entry and re-hash the chain after it (all links hold)."""
    from tongban.core.audit import AuditEntry, entry_hash

    with s.lib.engine.begin() as c:
        rows_ = [
            dict(r)
            for r in c.execute(
                sa.text("select * from audit_log where seq>=:s order by seq"), {"s": start}
            ).mappings()
        ]
        prev = c.execute(sa.text("select hash from audit_log where seq=:s"), {"s": start - 1}).scalar()
        for i, row in enumerate(rows_):
            row["detail"] = json.loads(row["detail"])
            if i == 0:
                row["result"] = "mismatch"
            row["prev_hash"] = prev
            row["hash"] = entry_hash(AuditEntry(**{k: v for k, v in row.items() if k != "hash"}))
            prev = row["hash"]
            c.execute(
                sa.text("update audit_log set result=:r, prev_hash=:p, hash=:h where seq=:s"),
                {"r": row["result"], "p": row["prev_hash"], "h": row["hash"], "s": row["seq"]},
            )
    assert s.settings.audit.verify() is None  # the chain alone no longer shows it


def test_offices_cli_and_verify_offline_from_the_slip_qr(
    served: Served, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    s = served
    capsys.readouterr()
    assert (
        main(["offices", "add", "CLI-1", "--config", s.config, "--datasets", "license,business", "--json"])
        == 0
    )
    added = json.loads(capsys.readouterr().out)
    assert added["token"].startswith("tbo_CLI-1_") and added["scopes"]["datasets"] == ["license", "business"]
    assert main(["offices", "list", "--config", s.config, "--json"]) == 0
    listed = capsys.readouterr().out
    assert "CLI-1" in listed and added["token"] not in listed
    assert main(["offices", "add", "CLI-1", "--config", s.config]) == 2
    assert "OFFICE_EXISTS" in capsys.readouterr().err
    assert main(["offices", "add", "bad code!", "--config", s.config]) == 2
    assert main(["offices", "revoke", "CLI-1", "--config", s.config]) == 2  # no reason
    r = _license(s, "status='01'")
    answer = httpx.post(
        f"{s.url}/v1/verify/license",
        json={"purpose": "tax", "license_id": r.license_id, "holder_code": r.holder_code},
        headers={"Authorization": f"Bearer {added['token']}"},
    ).json()
    trust = tmp_path / "trust.json"
    trust.write_text(httpx.get(f"{s.url}/v1/trust-list", headers=s.h()).text, encoding="utf-8")
    from tongban.core.verification.qr import png

    image = tmp_path / "slip.png"
    image.write_bytes(png(answer["attestation"]))
    assert main(["verify-offline", str(image), "--trust-list", str(trust)]) == 0
    assert "核验通过" in capsys.readouterr().out
    token = answer["attestation"]
    for forged, code in (
        (token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"), "ATTEST_SIGNATURE"),
        (token[: len(token) // 2], "ATTEST_MALFORMED"),
        ("not a token", "ATTEST_MALFORMED"),
    ):
        assert main(["verify-offline", forged, "--trust-list", str(trust)]) == 2
        assert code in capsys.readouterr().err
    (tmp_path / "noise.png").write_bytes(png("x")[:40])
    assert main(["verify-offline", str(tmp_path / "noise.png"), "--trust-list", str(trust)]) == 2
    assert "QR_UNREADABLE" in capsys.readouterr().err
    status = tmp_path / "status.json"
    with s.lib.engine.begin() as c:
        c.execute(
            sa.text("update license set status='07', _synced_at=:t where license_id=:k"),
            {"t": "2999-01-01 00:00:00.000000", "k": r.license_id},
        )
    status.write_text(httpx.get(f"{s.url}/v1/status-list/license", headers=s.h()).text, encoding="utf-8")
    assert main(["verify-offline", str(image), "--trust-list", str(trust), "--status-list", str(status)]) == 2
    assert "ATTEST_RECORD_CHANGED" in capsys.readouterr().err
    assert main(["offices", "revoke", "CLI-1", "--reason", "test", "--config", s.config]) == 0
