"""The 核验 API for remote offices: verify, search, proofs, the trust list and status lists."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Security
from fastapi.responses import JSONResponse

from schemas.errors import TongbanError
from tongban.core.trust import TrustError, from_iso
from tongban.core.verification.purposes import check_purpose
from tongban.core.verification.service import Verifier
from tongban.web.errors import ApiError
from tongban.web.settings import WebSettings
from tongban.web.verify.access import OfficeCaller, api_error, audit, office_caller, verifier, web_settings
from tongban.web.verify.models import (
    ERRORS,
    BusinessClaim,
    LicenseClaim,
    PersonClaim,
    Proof,
    Purpose,
    SearchAnswer,
    StatusList,
    VerifyAnswer,
)

__all__ = ["router", "run_verify"]

router = APIRouter(prefix="/v1", tags=["verify"], responses=ERRORS)

Caller = Annotated[OfficeCaller, Security(office_caller)]
Settings = Annotated[WebSettings, Depends(web_settings)]
TheVerifier = Annotated[Verifier, Depends(verifier)]


async def run_verify(
    request: Request, v: Verifier, caller: OfficeCaller, kind: str, body: dict[str, Any]
) -> Any:
    """One verification, audited (answered or refused) and counted.

    The lookup, comparison and signature run in the event loop (well under a millisecond: an indexed
    read and an Ed25519 signature); the audit entry is awaited until its group commit. The answer goes
    out as a ``JSONResponse`` (its shape is :class:`VerifyAnswer`, checked by the schema tests) to spare
    a second validation of every answer.
    """
    purpose = body.pop("purpose", None)
    request.state.audited = True
    writer = audit(request)
    try:
        check_purpose(purpose)
        answer = v.verify(kind, body, caller.scope)
    except TongbanError as exc:
        await writer.append_async(
            caller.actor,
            f"verify.{kind}",
            purpose=purpose if isinstance(purpose, str) else None,
            result="refused",
            reason=exc.code,
        )
        raise api_error(exc) from None
    await writer.append_async(
        caller.actor,
        f"verify.{kind}",
        purpose=purpose,
        dataset=answer["dataset"],
        claim_digest=answer["claim_digest"],
        result=answer["result"],
        detail={"status": (answer["status"] or {}).get("state"), "key_id": answer["key_id"]},
    )
    request.app.state.metrics.results.labels(kind, answer["result"]).inc()
    return JSONResponse(answer)


@router.post("/verify/license", response_model=VerifyAnswer, summary="核验证照 verify a license")
async def verify_license(body: LicenseClaim, request: Request, caller: Caller, v: TheVerifier) -> Any:
    return await run_verify(request, v, caller, "license", body.model_dump())


@router.post("/verify/person", response_model=VerifyAnswer, summary="核验人员 verify a person")
async def verify_person(body: PersonClaim, request: Request, caller: Caller, v: TheVerifier) -> Any:
    return await run_verify(request, v, caller, "person", body.model_dump())


@router.post("/verify/business", response_model=VerifyAnswer, summary="核验市场主体 verify a business")
async def verify_business(body: BusinessClaim, request: Request, caller: Caller, v: TheVerifier) -> Any:
    return await run_verify(request, v, caller, "business", body.model_dump())


@router.get("/licenses", response_model=SearchAnswer, summary="按持证主体检索证照 search licenses by holder")
def search_licenses(
    request: Request,
    caller: Caller,
    settings: Settings,
    v: TheVerifier,
    holder_code: Annotated[str, Query(max_length=64)],
    purpose: Annotated[Purpose, Query()],  # type: ignore[valid-type]
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> Any:
    request.state.audited = True
    try:
        found = v.search_licenses(holder_code, caller.scope, offset=offset, limit=limit)
    except TongbanError as exc:
        audit(request).append(
            caller.actor, "search.license", purpose=purpose, result="refused", reason=exc.code
        )
        raise api_error(exc) from None
    digest = hashlib.sha256(f"holder:{holder_code.strip().upper()}".encode()).hexdigest()
    audit(request).append(
        caller.actor,
        "search.license",
        purpose=purpose,
        dataset="license",
        claim_digest=digest,
        result=f"{found['total']} found",
    )
    return found


@router.get(
    "/records/{dataset}/{key}/proof",
    response_model=Proof,
    summary="记录的来源证明 a record's provenance proof",
)
def record_proof(
    request: Request,
    dataset: Literal["license", "business", "population"],
    key: Annotated[str, Path(max_length=200)],
    caller: Caller,
    settings: Settings,
    v: TheVerifier,
) -> Any:
    request.state.audited = True
    digest = hashlib.sha256(f"{dataset}:{key}".encode()).hexdigest()
    try:
        caller.scope.require_dataset(dataset)
        proof = v.proof(dataset, key)
        if not caller.scope.covers_division(proof["owner"]):  # the issuing node decides the scope
            raise ApiError("SCOPE_DIVISION", 403, dataset)
    except TongbanError as exc:
        audit(request).append(
            caller.actor, "proof", dataset=dataset, claim_digest=digest, result="refused", reason=exc.code
        )
        raise api_error(exc) from None
    except ApiError as exc:
        audit(request).append(
            caller.actor, "proof", dataset=dataset, claim_digest=digest, result="refused", reason=exc.code
        )
        raise
    audit(request).append(caller.actor, "proof", dataset=dataset, claim_digest=digest, result="ok")
    return proof


@router.get("/trust-list", summary="信任列表（根节点签名）the trust list, signed by the root")
def trust_list(request: Request, caller: Caller, settings: Settings) -> Any:
    request.state.audited = True
    try:
        text = settings.exchange.trust_list.read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, ValueError) as exc:
        raise api_error(
            TrustError(
                "TRUST_UNREADABLE", "无法读取信任列表", f"cannot read the trust list ({type(exc).__name__})"
            )
        ) from None
    audit(request).append(caller.actor, "trust-list", result="ok")
    return JSONResponse(data)


@router.get(
    "/status-list/{dataset}",
    response_model=StatusList,
    summary="状态列表（签名；可取增量）a signed status list (or the changes since a time)",
)
def status_list(
    request: Request,
    dataset: Literal["license", "business", "population"],
    caller: Caller,
    settings: Settings,
    v: TheVerifier,
    since: Annotated[str | None, Query(max_length=40, description="ISO 8601 with offset")] = None,
) -> Any:
    request.state.audited = True
    try:
        caller.scope.require_dataset(dataset)
        moment: _dt.datetime | None = None
        if since:
            try:
                moment = from_iso(since)
            except ValueError:
                raise ApiError(
                    "REQUEST_INVALID",
                    422,
                    "since",
                    zh="since 应为带时区的 ISO 8601 时间",
                    en="since must be an ISO 8601 time with an offset",
                ) from None
        listed = v.status_list(dataset, since=moment)
    except TongbanError as exc:
        audit(request).append(caller.actor, "status-list", dataset=dataset, result="refused", reason=exc.code)
        raise api_error(exc) from None
    except ApiError as exc:
        audit(request).append(caller.actor, "status-list", dataset=dataset, result="refused", reason=exc.code)
        raise
    audit(request).append(
        caller.actor, "status-list", dataset=dataset, result=f"{len(listed['entries'])} entries"
    )
    return listed
