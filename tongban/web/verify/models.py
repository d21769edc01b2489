"""The typed bodies of the verification API (published in ``/openapi.json``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tongban.core.verification.purposes import PURPOSES
from tongban.web.errors import ErrorBody

__all__ = [
    "ERRORS",
    "BusinessClaim",
    "LicenseClaim",
    "PersonClaim",
    "Proof",
    "Purpose",
    "SearchAnswer",
    "StatusList",
    "VerifyAnswer",
]

Purpose = Literal[tuple(PURPOSES)]  # type: ignore[valid-type]

#: The error answers every verification route may give.
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": why}
    for code, why in (
        (401, "AUTH_REQUIRED, AUTH_INVALID, AUTH_REVOKED"),
        (403, "SCOPE_DATASET, SCOPE_DIVISION, SCOPE_SEARCH, SCOPE_DENIED"),
        (404, "RECORD_NOT_FOUND, STATUS_LIST_DATASET, NOT_FOUND"),
        (409, "PROOF_UNAVAILABLE"),
        (413, "REQUEST_TOO_LARGE"),
        (422, "REQUEST_INVALID, IDENTIFIER_INVALID, PURPOSE_REQUIRED, PURPOSE_UNKNOWN"),
        (429, "RATE_LIMITED"),
        (503, "NOT_READY, LIBRARY_UNREACHABLE"),
    )
}


class _Claim(BaseModel):
    model_config = ConfigDict(extra="forbid")
    purpose: Purpose = Field(description="用证事由 the purpose of the verification")  # type: ignore[valid-type]


class LicenseClaim(_Claim):
    """A presented license: its id or number (or both) and the holder's code."""

    license_id: str | None = Field(None, max_length=200, description="证照标识 GB/T 36904")
    license_number: str | None = Field(None, max_length=200, description="证照编号")
    holder_code: str = Field(max_length=64, description="持证主体代码（身份证号或统一社会信用代码）")


class PersonClaim(_Claim):
    """A presented person: citizen identity number and name."""

    id_number: str = Field(max_length=64, description="公民身份号码")
    name: str = Field(max_length=256, description="姓名")


class BusinessClaim(_Claim):
    """A presented business: its USCC and, optionally, its name."""

    uscc: str = Field(max_length=64, description="统一社会信用代码")
    name: str | None = Field(None, max_length=256, description="名称")


class Status(BaseModel):
    state: Literal["valid", "expired", "suspended", "revoked", "cancelled", "moved", "other"]
    code: str
    zh: str
    en: str
    moved_to: str | None = None
    moved_to_name: str | None = None


class VerifyAnswer(BaseModel):
    """The answer: result, status, masked record and the signed attestation (JWT, EdDSA)."""

    result: Literal["match", "mismatch", "not_found"]
    kind: Literal["license", "person", "business"]
    dataset: str
    mismatched: list[str] = Field(description="出示的哪些字段不一致 presented fields that differ")
    status: Status | None
    record: dict[str, Any] | None = Field(description="打码后的记录 the masked record (match only)")
    claim_digest: str
    checked_at: str
    issuer: str
    key_id: str
    provenance: dict[str, Any] | None
    attestation: str


class SearchItem(BaseModel):
    record: dict[str, Any]
    status: Status


class SearchAnswer(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[SearchItem]


class ProofHop(BaseModel):
    library: str
    batch_id: str
    index: int
    path: list[list[Any]]
    manifest: dict[str, Any]


class Proof(BaseModel):
    """A record's leaf, Merkle paths and signed manifests back to the issuing node's batch."""

    version: int
    dataset: str
    key: str
    leaf: str
    owner: str
    node: str
    hops: list[ProofHop]


class StatusEntry(BaseModel):
    key: str
    state: str
    code: str
    zh: str
    en: str
    moved_to: str | None = None
    changed_at: str


class StatusList(BaseModel):
    """A signed list of records no longer valid (since a time: the changes only)."""

    version: int
    kind: str
    dataset: str
    issuer: str
    key_id: str
    issued_at: str
    since: str | None
    entries: list[StatusEntry]
    signature: str
