"""One verification end to end: check the claim, look the record up, compare, apply the office's scope,
describe the status, mask, and sign the answer as an attestation.

The answering node's key is read from the key store once and again whenever its ``current`` file names
another key (a rotation takes effect without a restart).
"""

from __future__ import annotations

import datetime as _dt
import threading
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import schemas
from tongban.core.store import Library
from tongban.core.trust import KeyStore
from tongban.core.verification import attestation
from tongban.core.verification.compare import DATASET_OF, Claim, claim_for, compare
from tongban.core.verification.errors import VerifyError
from tongban.core.verification.proof import build_proof
from tongban.core.verification.records import find
from tongban.core.verification.scope import Scope
from tongban.core.verification.status import describe
from tongban.core.verification.statuslist import PUBLISHED
from tongban.core.verification.statuslist import build as build_status_list

__all__ = ["DEFAULT_TTL", "Verifier"]

DEFAULT_TTL = _dt.timedelta(days=30)
_KEY_RECHECK = 30.0  # seconds between looks at the key store's current key


class Verifier:
    """Answers verifications from ``library`` (the node ``node``'s), signing with the node's key."""

    def __init__(
        self,
        library: Library,
        node: str,
        keystore: KeyStore,
        *,
        ttl: _dt.timedelta = DEFAULT_TTL,
        libraries: Callable[[str], Library] | None = None,
    ) -> None:
        self.library = library
        self.node = node
        self.keystore = keystore
        self.ttl = ttl
        self.libraries = libraries or (lambda code: library)
        self._lock = threading.Lock()
        self._key: tuple[str, Ed25519PrivateKey] | None = None
        self._key_checked = 0.0

    # -- the signing key --

    def signer(self) -> tuple[str, Ed25519PrivateKey]:
        """The node's current key id and private key (re-read after a rotation)."""
        import time

        now = time.monotonic()
        with self._lock:
            if self._key is None or now - self._key_checked > _KEY_RECHECK:
                kid = self.keystore.current(self.node)
                if self._key is None or kid != self._key[0]:
                    self._key = self.keystore.signer(self.node)
                self._key_checked = now
            return self._key

    # -- verification --

    def verify(
        self, kind: str, presented: dict[str, Any], scope: Scope, *, now: _dt.datetime | None = None
    ) -> dict[str, Any]:
        """The answer to one verification (VerifyError for bad input or a scope miss)."""
        if kind not in DATASET_OF:
            raise VerifyError("IDENTIFIER_INVALID", f"未知核验类型 {kind}", f"unknown kind {kind}", "kind")
        dataset = DATASET_OF[kind]
        scope.require_dataset(dataset)
        claim = claim_for(kind, presented)
        outcome = compare(self.library, claim)
        record = outcome.record
        if record is not None and not scope.covers_record(dataset, record):
            raise VerifyError(
                "SCOPE_DIVISION",
                "该记录所在行政区划不在本窗口的授权范围内",
                "the record's division is outside this office's scope",
                dataset,
            )
        moment = now or _dt.datetime.now(_dt.UTC)
        shown = outcome.result == "match" and record is not None
        status = describe(dataset, record, today=moment.date()) if shown and record else None
        prov = self._prov(dataset, record) if shown and record else None
        kid, private = self.signer()
        digest = claim.digest()
        token = attestation.issue(
            node=self.node,
            kid=kid,
            private_key=private,
            kind=kind,
            dataset=dataset,
            claim_digest=digest,
            result=outcome.result,
            status={"state": status["state"], "code": status["code"]} if status else None,
            prov=prov,
            checked_at=moment,
            ttl=self.ttl,
        )
        return {
            "result": outcome.result,
            "kind": kind,
            "dataset": dataset,
            "mismatched": outcome.mismatched,
            "status": status,
            "record": scope.show(dataset, record) if shown and record else None,
            "claim_digest": digest,
            "checked_at": moment.isoformat(),
            "issuer": self.node,
            "key_id": kid,
            "provenance": prov,
            "attestation": token,
        }

    @staticmethod
    def _prov(dataset: str, record: dict[str, Any]) -> dict[str, Any]:
        key = record.get(schemas.get(dataset).key)
        prov = {
            "leaf": record.get("_hash"),
            "batch": record.get("_batch"),
            "index": record.get("_leaf"),
            "owner": record.get("_owner"),
        }
        if dataset in PUBLISHED:  # license ids and USCCs are not personal
            prov["key"] = key
        return prov

    def claim(self, kind: str, presented: dict[str, Any]) -> Claim:
        return claim_for(kind, presented)

    # -- search, proofs, status lists --

    def search_licenses(
        self, holder_code: str, scope: Scope, *, offset: int = 0, limit: int = 20
    ) -> dict[str, Any]:
        """Licenses of a holder (检索): only for scopes that allow search; masked; in scope only; paged."""
        from tongban.core.verification import identifiers

        scope.require_dataset("license")
        scope.require_search()
        code = identifiers.holder_code(holder_code)
        found = [
            r for r in find(self.library, "license", "holder_code", code) if scope.covers_record("license", r)
        ]
        page = found[offset : offset + limit]
        moment = _dt.datetime.now(_dt.UTC)
        return {
            "total": len(found),
            "offset": offset,
            "limit": limit,
            "items": [
                {"record": scope.show("license", r), "status": describe("license", r, today=moment.date())}
                for r in page
            ],
        }

    def proof(self, dataset: str, key: str) -> dict[str, Any]:
        return build_proof(self.libraries, self.node, dataset, key)

    def status_list(self, dataset: str, since: _dt.datetime | None = None) -> dict[str, Any]:
        kid, private = self.signer()
        return build_status_list(
            self.library, dataset, node=self.node, kid=kid, private_key=private, since=since
        )
