"""Attestations: a verification answer as a JWT (JWS, EdDSA) signed by the answering node's key, and
the offline check of one with only the trust list (and, optionally, a status list).

Header ``{"alg": "EdDSA", "typ": "JWT", "kid": <key id>}``; claims::

    iss          the answering node          iat / exp    issued at / expires (seconds)
    jti          a random id                 checked_at   ISO 8601 UTC
    kind         license | person | business dataset     the dataset read
    claim_digest sha256 hex of the RFC 8785 canonical claim (never the claim itself)
    result       match | mismatch | not_found
    status       {state, code} of the record (null unless a match)
    prov         {leaf, batch, index, owner, key?} the record's provenance reference (null unless a
                 match; ``key`` only where it is not personal: license ids and USCCs)

:func:`check` says why an attestation fails, in this order: malformed (ATTEST_MALFORMED), the key
(ATTEST_KEY_UNKNOWN, ATTEST_KEY_REVOKED, ATTEST_KEY_EXPIRED), the signature (ATTEST_SIGNATURE), the
expiry (ATTEST_EXPIRED), and with a status list, a record no longer valid since (ATTEST_RECORD_CHANGED).
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import secrets
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tongban.core.trust import TrustError, TrustList, b64url, from_b64url, from_iso, iso
from tongban.core.verification.errors import VerifyError

__all__ = ["MAX_LENGTH", "check", "issue", "peek"]

#: Longer text is not an attestation (bounded work for whatever is pasted or scanned).
MAX_LENGTH = 8192
_REQUIRED = ("iss", "iat", "exp", "jti", "kind", "dataset", "claim_digest", "result", "checked_at")
_KEY_CODES = {
    "KEY_UNKNOWN": "ATTEST_KEY_UNKNOWN",
    "KEY_NODE_MISMATCH": "ATTEST_KEY_UNKNOWN",
    "KEY_REVOKED": "ATTEST_KEY_REVOKED",
    "KEY_EXPIRED": "ATTEST_KEY_EXPIRED",
}


def issue(
    *,
    node: str,
    kid: str,
    private_key: Ed25519PrivateKey,
    kind: str,
    dataset: str,
    claim_digest: str,
    result: str,
    status: dict[str, Any] | None,
    prov: dict[str, Any] | None,
    checked_at: _dt.datetime,
    ttl: _dt.timedelta,
) -> str:
    """Sign an answer; returns the compact JWT."""
    claims = {
        "iss": node,
        "iat": int(checked_at.timestamp()),
        "exp": int((checked_at + ttl).timestamp()),
        "jti": secrets.token_hex(8),
        "kind": kind,
        "dataset": dataset,
        "claim_digest": claim_digest,
        "result": result,
        "status": status,
        "prov": prov,
        "checked_at": iso(checked_at),
    }
    # A compact JWS (RFC 7515) built directly: the same bytes PyJWT would sign, without its per-call
    # checks; every check of an attestation goes through PyJWT's decode (:func:`check`).
    signing_input = f"{_header(kid)}.{b64url(json.dumps(claims, separators=(',', ':')).encode())}"
    return f"{signing_input}.{b64url(private_key.sign(signing_input.encode('ascii')))}"


@functools.lru_cache(maxsize=64)
def _header(kid: str) -> str:
    return b64url(json.dumps({"alg": "EdDSA", "kid": kid, "typ": "JWT"}, separators=(",", ":")).encode())


def _malformed(zh: str, en: str) -> VerifyError:
    return VerifyError(
        "ATTEST_MALFORMED", f"核验凭证无法读取：{zh}", f"the attestation cannot be read: {en}", "attestation"
    )


def peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of ``token`` *unverified* (shape checked); ATTEST_MALFORMED otherwise."""
    if not isinstance(token, str) or not token.strip():
        raise _malformed("为空", "it is empty")
    token = token.strip()
    if len(token) > MAX_LENGTH:
        raise _malformed(f"超过 {MAX_LENGTH} 个字符", f"longer than {MAX_LENGTH} characters")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise _malformed("应为三段以点分隔的 JWT", "a JWT has three dot-separated parts")
    try:
        header = json.loads(from_b64url(parts[0]))
        claims = json.loads(from_b64url(parts[1]))
        from_b64url(parts[2])
    except (ValueError, UnicodeDecodeError) as exc:
        raise _malformed("不是 base64url 编码的 JSON", f"not base64url JSON ({type(exc).__name__})") from None
    if not isinstance(header, dict) or header.get("alg") != "EdDSA" or not isinstance(header.get("kid"), str):
        raise _malformed("头部应为 EdDSA 并给出 kid", "the header must say EdDSA and name its kid")
    if not isinstance(claims, dict):
        raise _malformed("内容应为 JSON 对象", "the claims must be a JSON object")
    missing = [n for n in _REQUIRED if n not in claims]
    if missing:
        raise _malformed(f"缺少 {', '.join(missing)}", f"missing {', '.join(missing)}")
    for name in ("iat", "exp"):
        if not isinstance(claims[name], int) or isinstance(claims[name], bool):
            raise _malformed(f"{name} 应为整数", f"{name} must be an integer")
    if not isinstance(claims["iss"], str):
        raise _malformed("iss 应为文本", "iss must be text")
    return header, claims


def check(
    token: str,
    trust: TrustList,
    *,
    status_list: dict[str, Any] | None = None,
    now: _dt.datetime | None = None,
) -> dict[str, Any]:
    """The verified claims of ``token``; VerifyError with the first reason it fails (module docstring).

    ``status_list`` must already be verified (:func:`tongban.core.verification.statuslist.load`).
    """
    header, claims = peek(token)
    moment = now or _dt.datetime.now(_dt.UTC)
    try:  # the exact moment of the check (iat is whole seconds: it may precede a new key's valid_from)
        issued = from_iso(claims["checked_at"])
    except (TypeError, ValueError):
        raise _malformed("checked_at 不是带时区的时间", "checked_at is not a time with an offset") from None
    if abs(issued.timestamp() - claims["iat"]) > 2:
        raise _malformed("checked_at 与 iat 不符", "checked_at and iat disagree")
    try:
        public = trust.lookup(claims["iss"], header["kid"], issued, now=moment)
    except TrustError as exc:
        raise VerifyError(
            _KEY_CODES.get(exc.code, "ATTEST_KEY_UNKNOWN"),
            f"签发凭证的密钥不可用：{exc.message_zh}",
            f"the attestation's signing key is refused: {exc.message_en}",
            f"{claims['iss']}/{header['kid']}",
        ) from None
    try:
        jwt.decode(
            token.strip(),
            public,
            algorithms=["EdDSA"],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_aud": False},
        )
    except jwt.PyJWTError:
        raise VerifyError(
            "ATTEST_SIGNATURE",
            f"核验凭证签名无效：内容被改动或不是节点 {claims['iss']} 的密钥 {header['kid']} 所签",
            f"the attestation's signature is invalid: altered, or not signed by key {header['kid']} of {claims['iss']}",
            "attestation",
        ) from None
    expires = _dt.datetime.fromtimestamp(claims["exp"], _dt.UTC)
    if expires <= moment:
        raise VerifyError(
            "ATTEST_EXPIRED",
            f"核验凭证已于 {iso(expires)} 过期，请重新核验",
            f"the attestation expired at {iso(expires)}: verify again",
            "attestation",
        )
    if status_list is not None:
        _against_status(claims, status_list)
    return claims


def _against_status(claims: dict[str, Any], status_list: dict[str, Any]) -> None:
    """ATTEST_RECORD_CHANGED when the list says the attested record is no longer what was attested."""
    prov = claims.get("prov") or {}
    status = claims.get("status") or {}
    key = prov.get("key") if isinstance(prov, dict) else None
    if not key or status_list.get("dataset") != claims.get("dataset"):
        return
    for entry in status_list.get("entries", []):
        if entry.get("key") != key:
            continue
        now_state = entry.get("state")
        if now_state != "valid" and (
            now_state != status.get("state") or str(entry.get("changed_at", "")) > str(claims["checked_at"])
        ):
            raise VerifyError(
                "ATTEST_RECORD_CHANGED",
                f"核验后该记录已变为「{entry.get('zh', now_state)}」（{entry.get('changed_at')}），凭证不再可信",
                f"since the check the record became {entry.get('en', now_state)} ({entry.get('changed_at')}): "
                "the attestation no longer holds",
                f"{claims.get('dataset')}/{key}",
            )
