"""The signed status list of one dataset: records no longer valid (revoked, suspended, cancelled, moved,
expired), and with ``since`` only those changed after that time — including records valid again
(reinstated) — so an offline checker can keep a copy current with deltas.

The list is JSON signed by the publishing node's key over the RFC 8785 canonical form of every field
but ``signature``::

    {"version": 1, "kind": "status-list", "dataset", "issuer", "key_id", "issued_at", "since",
     "entries": [{"key", "state", "code", "zh", "en", "moved_to", "changed_at"}], "signature"}

Only datasets whose keys are not personal are published (license, business): a person's status is
personal data (STATUS_LIST_DATASET).
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

import rfc8785
import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import schemas
from tongban.core.store import Library
from tongban.core.trust import TrustError, TrustList, b64url, from_b64url, from_iso, iso
from tongban.core.verification.errors import VerifyError
from tongban.core.verification.status import VALID_CODES, describe

__all__ = ["MAX_ENTRIES", "PUBLISHED", "build", "load"]

PUBLISHED = ("license", "business")
MAX_ENTRIES = 500_000
VERSION = 1


def _check_dataset(dataset: str) -> None:
    if dataset not in PUBLISHED:
        raise VerifyError(
            "STATUS_LIST_DATASET",
            f"数据集 {dataset} 不发布状态列表（可用：{', '.join(PUBLISHED)}）",
            f"no status list for dataset {dataset} (published: {', '.join(PUBLISHED)})",
            dataset,
        )


def build(
    library: Library,
    dataset: str,
    *,
    node: str,
    kid: str,
    private_key: Ed25519PrivateKey,
    since: _dt.datetime | None = None,
    now: _dt.datetime | None = None,
) -> dict[str, Any]:
    """The signed status list of ``dataset`` in ``library`` (changes after ``since`` only, if given)."""
    _check_dataset(dataset)
    moment = now or _dt.datetime.now(_dt.UTC)
    t = library.tables[dataset]
    h = library.tables[f"{dataset}_history"]
    key = schemas.get(dataset).key
    not_valid = t.c.status != VALID_CODES[dataset]
    if dataset == "license":
        today = moment.date().isoformat()
        not_valid = sa.or_(not_valid, sa.and_(t.c.valid_until.is_not(None), t.c.valid_until < today))
    cols = [t.c[key], t.c.status, t.c._synced_at, t.c.updated_at]
    cols += [t.c.valid_until] if dataset == "license" else [t.c.moved_to]
    stmt = sa.select(*cols)
    if since is None:
        stmt = stmt.where(not_valid)
    else:
        changed_before = sa.exists(sa.select(h.c[key]).where(h.c[key] == t.c[key]))
        stmt = stmt.where(t.c._synced_at > since, sa.or_(not_valid, changed_before))
    stmt = stmt.order_by(t.c[key]).limit(MAX_ENTRIES)
    entries = []
    with library.connect() as conn:
        for row in conn.execute(stmt).mappings():
            d = describe(dataset, dict(row), today=moment.date())
            entries.append(
                {
                    "key": row[key],
                    "state": d["state"],
                    "code": d["code"],
                    "zh": d["zh"],
                    "en": d["en"],
                    "moved_to": d["moved_to"],
                    "changed_at": iso(row["_synced_at"]),
                }
            )
    body = {
        "version": VERSION,
        "kind": "status-list",
        "dataset": dataset,
        "issuer": node,
        "key_id": kid,
        "issued_at": iso(moment),
        "since": iso(since) if since else None,
        "entries": entries,
    }
    return {**body, "signature": b64url(private_key.sign(rfc8785.dumps(body)))}


def load(data: str | bytes | dict[str, Any], trust: TrustList, where: str = "status list") -> dict[str, Any]:
    """A status list read and verified against the trust list; VerifyError STATUS_LIST_INVALID otherwise."""

    def bad(zh: str, en: str) -> VerifyError:
        return VerifyError(
            "STATUS_LIST_INVALID", f"状态列表不可用：{zh}", f"the status list is unusable: {en}", where
        )

    try:
        doc = json.loads(data) if isinstance(data, str | bytes) else data
    except ValueError:
        raise bad("不是 JSON", "not JSON") from None
    if not isinstance(doc, dict) or doc.get("version") != VERSION or doc.get("kind") != "status-list":
        raise bad("不是第 1 版状态列表", "not a version 1 status list")
    for name in ("dataset", "issuer", "key_id", "issued_at", "signature"):
        if not isinstance(doc.get(name), str):
            raise bad(f"缺少 {name}", f"missing {name}")
    if not isinstance(doc.get("entries"), list) or not all(isinstance(e, dict) for e in doc["entries"]):
        raise bad("entries 应为对象列表", "entries must be a list of objects")
    try:
        issued = from_iso(doc["issued_at"])
        public = trust.lookup(doc["issuer"], doc["key_id"], issued)
        body = {k: v for k, v in doc.items() if k != "signature"}
        public.verify(from_b64url(doc["signature"]), rfc8785.dumps(body))
    except TrustError as exc:
        raise bad(exc.message_zh, exc.message_en) from None
    except (InvalidSignature, ValueError, rfc8785.CanonicalizationError):
        raise bad("签名与内容不符", "the signature does not match its content") from None
    return doc
