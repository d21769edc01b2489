"""What the review page's forms post: an action on one failure, on many, or a reveal.

Every form carries the session's CSRF token (:func:`tongban.web.deps.verify_csrf`) and the version of
the failure the operator saw: if another operator acted since, the action is refused with
FAILED_CHANGED and nothing is applied. Refusals come back on the same page with their code.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

import schemas
from schemas.errors import TongbanError
from tongban.core import review
from tongban.core.review import Ref, ReviewError
from tongban.core.review.operators import REVEAL, REVIEW
from tongban.web.auth import Principal
from tongban.web.deps import get_settings, require_scope, verify_csrf
from tongban.web.errors import ApiError
from tongban.web.pages import render
from tongban.web.review.views import PAGE_SIZES, detail_context, list_filter
from tongban.web.settings import WebSettings

__all__ = ["router"]

router = APIRouter(prefix="/review", tags=["review"], include_in_schema=False)

Operator = Annotated[Principal, Depends(require_scope(REVIEW, page=True))]
Settings = Annotated[WebSettings, Depends(get_settings)]
Csrf = Annotated[None, Depends(verify_csrf)]

#: The most rows one form acts on (selected, or matched by the filter: the rest by posting it again).
MAX_SELECTED = 1000
_STATUS = {"FAILED_CHANGED": 409, "FAILED_CLOSED": 409, "FAILED_IN_FLIGHT": 409, "REVEAL_FORBIDDEN": 403}


def _text(form: Any, name: str, limit: int = 500) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ApiError("REQUEST_INVALID", 422, name)
    return value


def _version(form: Any) -> int | None:
    value = _text(form, "version", 20)
    if value in (None, ""):
        return None
    try:
        return int(value)  # type: ignore[arg-type]
    except ValueError:
        raise ApiError("REQUEST_INVALID", 422, "version") from None


@router.post("/failures/{ident}/act", response_class=HTMLResponse)
async def act_one(request: Request, ident: str, who: Operator, settings: Settings, _csrf: Csrf) -> Response:
    ref = Ref.parse(ident)
    form = await request.form()
    action = _text(form, "action", 20) or ""
    if action not in review.ACTIONS:
        raise ApiError("REQUEST_INVALID", 422, "action")
    edit: dict[str, Any] | None = None
    if action == "resubmit":
        row = review.get(settings.exchange, settings.libraries, ref)
        names = schemas.get(row["dataset"]).names if row["dataset"] in schemas.DATASETS else []
        edit = {}
        for name in names:
            value = _text(form, f"f_{name}", 4096)
            if value is not None and value != "":
                edit[name] = value.strip()
            if form.get(f"clear_{name}") == "1":
                edit[name] = None
        # Fields the dataset does not have are named too, so the refusal can say which.
        for key in form:
            if key.startswith("f_") and key[2:] not in names and form.get(key):
                edit[key[2:64]] = str(form.get(key))[:100]
    try:
        review.act(
            settings.exchange,
            settings.libraries,
            ref,
            action,
            actor=who.actor,
            audit=settings.audit,
            reason=_text(form, "reason"),
            edit=edit,
            expect_version=_version(form),
        )
    except ReviewError as exc:
        return _detail_with_error(request, settings, who, ref, exc)
    base = request.scope.get("root_path", "")
    return RedirectResponse(f"{base}/review/failures/{ref}?done={action}", status_code=303)


def _detail_with_error(
    request: Request, settings: WebSettings, who: Principal, ref: Ref, exc: TongbanError
) -> Response:
    try:
        ctx = detail_context(settings, ref)
    except TongbanError:
        raise ApiError.of(exc, _STATUS.get(exc.code, 422)) from None
    return render(
        request,
        "review_detail.html",
        status_code=_STATUS.get(exc.code, 422),
        **ctx,
        ref=str(ref),
        may_reveal=who.has(REVEAL),
        done=None,
        error={"code": exc.code, "zh": exc.message_zh, "en": exc.message_en, "where": exc.where},
    )


@router.post("/failures/{ident}/reveal", response_class=HTMLResponse)
async def reveal(request: Request, ident: str, who: Operator, settings: Settings, _csrf: Csrf) -> Response:
    ref = Ref.parse(ident)
    form = await request.form()
    try:
        review.reveal(
            settings.exchange,
            settings.libraries,
            ref,
            actor=who.actor,
            allowed=who.has(REVEAL),
            audit=settings.audit,
            purpose=(_text(form, "purpose", 60) or None),
        )
    except ReviewError as exc:
        return _detail_with_error(request, settings, who, ref, exc)
    return render(
        request,
        "review_detail.html",
        **detail_context(settings, ref, reveal=True),
        ref=str(ref),
        may_reveal=True,
        done=None,
        error=None,
    )


@router.post("/act", response_class=HTMLResponse)
async def act_many(request: Request, who: Operator, settings: Settings, _csrf: Csrf) -> Response:
    form = await request.form()
    action = _text(form, "action", 20) or ""
    if action not in ("retry", "discard", "resolve"):
        raise ApiError("REQUEST_INVALID", 422, "action")
    scope = _text(form, "scope", 20) or "selected"
    reason = _text(form, "reason")
    ex, libs = settings.exchange, settings.libraries
    remaining = 0
    try:
        if scope == "filter":
            where = list_filter(settings, form)
            outcomes = review.act_many(
                ex,
                libs,
                action,
                actor=who.actor,
                audit=settings.audit,
                where=where,
                reason=reason,
                limit=MAX_SELECTED,
            )
            remaining = review.count(ex, libs, where) if len(outcomes) >= MAX_SELECTED else 0
        elif scope == "selected":
            picked = form.getlist("pick")
            if len(picked) > MAX_SELECTED:
                raise ApiError("REQUEST_INVALID", 422, "pick")
            refs: list[tuple[Ref, int | None]] = []
            for item in picked:
                if not isinstance(item, str):
                    raise ApiError("REQUEST_INVALID", 422, "pick")
                ident, _, version = item.partition("@")
                refs.append((Ref.parse(ident), int(version) if version.isdigit() else None))
            if not refs:
                raise ReviewError("FAILED_NO_FILTER", "没有选中任何一行", "no row is selected", "pick")
            outcomes = review.act_many(
                ex, libs, action, actor=who.actor, audit=settings.audit, refs=refs, reason=reason
            )
        else:
            raise ApiError("REQUEST_INVALID", 422, "scope")
    except ReviewError as exc:
        raise ApiError.of(exc, _STATUS.get(exc.code, 422)) from None
    applied = [o for o in outcomes if o.ok]
    refused = [o for o in outcomes if not o.ok]
    return render(
        request,
        "review_results.html",
        action=action,
        applied=applied,
        refused=refused,
        back=request.headers.get("referer") if _same_site(request) else None,
        remaining=remaining,
        sizes=PAGE_SIZES,
    )


def _same_site(request: Request) -> bool:
    referer = request.headers.get("referer") or ""
    return referer.startswith(str(request.base_url).rstrip("/") + "/review")
