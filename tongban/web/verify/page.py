"""The service-window page (办事窗口): choose what was presented, type it in or paste a scanned code,
pick the purpose, read the answer in large words, print or download the slip with its QR code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from schemas.errors import TongbanError
from tongban.core.trust import TrustList
from tongban.core.verification import attestation, qr
from tongban.core.verification.purposes import PURPOSES, check_purpose
from tongban.core.verification.scope import Scope
from tongban.web.auth import Principal
from tongban.web.deps import get_settings, require_kind, verify_csrf
from tongban.web.errors import ApiError
from tongban.web.pages import register_templates, render
from tongban.web.settings import WebSettings
from tongban.web.verify.access import audit

__all__ = ["headline", "router", "setup"]

router = APIRouter(include_in_schema=False)
Office = Annotated[Principal, Depends(require_kind("office", page=True))]
KINDS = {
    "license": ("证照", "License"),
    "person": ("人员", "Person"),
    "business": ("市场主体", "Business"),
}
_LICENSE_ID = re.compile(r"1\.2\.156\.3005\.2\.[0-9A-Za-z.]{10,150}")
_CODE18 = re.compile(r"(?<![0-9A-Za-z])[0-9A-Za-z]{18}(?![0-9A-Za-z])")


def setup(app: FastAPI, settings: WebSettings) -> None:
    register_templates(Path(__file__).parent / "templates")
    app.state.nav.append({"path": "/verify", "zh": "核验", "en": "Verify", "kind": "office"})


def headline(answer: dict[str, Any]) -> tuple[str, str, str]:
    """(zh, en, css class) of the big answer a clerk reads."""
    if answer["result"] == "not_found":
        return "未找到", "Not found", "bad"
    if answer["result"] == "mismatch":
        return "不一致", "Does not match", "bad"
    status = answer.get("status") or {}
    if status.get("state") == "valid":
        return "核验通过", "Verified", "ok"
    return status.get("zh", "状态异常"), status.get("en", "not valid"), "bad"


def _from_scan(kind: str, scanned: str, fields: dict[str, str]) -> dict[str, str]:
    """Fill the empty fields from a pasted scanned code (a license id, an ID number or a USCC)."""
    text = scanned[:2000]
    found = _LICENSE_ID.search(text)
    if kind == "license" and found and not fields.get("license_id"):
        fields["license_id"] = found.group(0)
        text = text.replace(found.group(0), " ")
    codes = _CODE18.findall(text)
    target = {"license": "holder_code", "person": "id_number", "business": "uscc"}[kind]
    if codes and not fields.get(target):
        fields[target] = codes[0]
    return fields


def _scope(principal: Principal) -> Scope:
    try:
        return Scope.from_dict(principal.attrs)
    except TongbanError:
        raise ApiError("AUTH_INVALID", 401, "session") from None


@router.get("/verify", response_class=HTMLResponse)
def verify_page(request: Request, office: Office, kind: str = "license") -> Response:
    kind = kind if kind in KINDS else "license"
    return render(request, "verify.html", kind=kind, kinds=KINDS, purposes=PURPOSES, form={}, answer=None)


@router.post("/verify", response_class=HTMLResponse)
def verify_post(
    request: Request,
    office: Office,
    settings: Annotated[WebSettings, Depends(get_settings)],
    _: Annotated[None, Depends(verify_csrf)],
    kind: Annotated[str, Form(max_length=16)] = "license",
    purpose: Annotated[str, Form(max_length=64)] = "",
    scanned: Annotated[str, Form(max_length=2000)] = "",
    license_id: Annotated[str, Form(max_length=200)] = "",
    license_number: Annotated[str, Form(max_length=200)] = "",
    holder_code: Annotated[str, Form(max_length=64)] = "",
    id_number: Annotated[str, Form(max_length=64)] = "",
    name: Annotated[str, Form(max_length=256)] = "",
    uscc: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    kind = kind if kind in KINDS else "license"
    names = {"license": ("license_id", "license_number", "holder_code"), "person": ("id_number", "name")}
    names["business"] = ("uscc", "name")
    given = {
        "license_id": license_id,
        "license_number": license_number,
        "holder_code": holder_code,
        "id_number": id_number,
        "name": name,
        "uscc": uscc,
    }
    fields = {n: given[n].strip() for n in names[kind] if given[n].strip()}
    if scanned.strip():
        fields = _from_scan(kind, scanned, fields)
    ctx: dict[str, Any] = {"kind": kind, "kinds": KINDS, "purposes": PURPOSES, "purpose": purpose}
    limiter = request.app.state.rate_limiter
    rate = int(office.attrs.get("rate_limit") or 60)
    try:
        if not limiter.allow(office.id, rate):
            raise TongbanError(
                "RATE_LIMITED", "请求过于频繁，请稍后再试", "too many requests; try again shortly"
            )
        check_purpose(purpose or None)
        answer = request.app.state.verifier.verify(kind, dict(fields), _scope(office))
    except TongbanError as exc:
        audit(request).append(
            office.actor,
            f"verify.{kind}",
            purpose=purpose if purpose in PURPOSES else None,
            result="refused",
            reason=exc.code,
            detail={"via": "page"},
        )
        return render(request, "verify.html", status_code=422, form={}, answer=None, error=exc, **ctx)
    audit(request).append(
        office.actor,
        f"verify.{kind}",
        purpose=purpose,
        dataset=answer["dataset"],
        claim_digest=answer["claim_digest"],
        result=answer["result"],
        detail={"via": "page", "status": (answer["status"] or {}).get("state")},
    )
    request.app.state.metrics.results.labels(kind, answer["result"]).inc()
    zh, en, css = headline(answer)
    return render(
        request,
        "verify.html",
        form={},
        answer=answer,
        headline=(zh, en, css),
        qr_svg=qr.svg(answer["attestation"], scale=3),
        **ctx,
    )


@router.get("/verify/slip", response_class=HTMLResponse)
def slip(
    request: Request,
    office: Office,
    settings: Annotated[WebSettings, Depends(get_settings)],
    a: Annotated[str, Query(max_length=attestation.MAX_LENGTH)],
    download: bool = False,
) -> Response:
    """The printable slip of an attestation this node signed (checked before it is shown)."""
    try:
        claims = attestation.check(a, TrustList.load(settings.exchange.trust_list))
    except TongbanError as exc:
        raise ApiError.of(exc, 422) from None
    answer = {"result": claims["result"], "status": claims.get("status")}
    status = claims.get("status") or {}
    if status:
        from tongban.core.verification.status import STATES

        zh_en = STATES.get(status.get("state", ""), ("", ""))
        answer["status"] = {**status, "zh": zh_en[0], "en": zh_en[1]}
    zh, en, css = headline(answer)
    resp = render(
        request,
        "slip.html",
        claims=claims,
        token=a,
        headline=(zh, en, css),
        qr_svg=qr.svg(a, scale=4),
        purposes=PURPOSES,
        kinds=KINDS,
    )
    if download:
        resp.headers["Content-Disposition"] = f'attachment; filename="tongban-slip-{claims["jti"]}.html"'
    return resp


@router.get("/verify/slip.png")
def slip_png(
    office: Office,
    settings: Annotated[WebSettings, Depends(get_settings)],
    a: Annotated[str, Query(max_length=attestation.MAX_LENGTH)],
) -> Response:
    """The slip's QR code as a PNG image (the attestation checked first)."""
    try:
        claims = attestation.check(a, TrustList.load(settings.exchange.trust_list))
    except TongbanError as exc:
        raise ApiError.of(exc, 422) from None
    return Response(
        qr.png(a, scale=6),
        media_type="image/png",
        headers={"Content-Disposition": f'attachment; filename="tongban-slip-{claims["jti"]}.png"'},
    )
