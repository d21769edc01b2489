"""``/readyz`` (library reachable, signing key loaded, trust list verifies and lists the node's key
unrevoked) and ``/metrics`` (Prometheus text)."""

from __future__ import annotations

import datetime as _dt
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from schemas.errors import TongbanError
from tongban.core.trust import TrustList, from_b64url
from tongban.web.deps import get_settings
from tongban.web.settings import WebSettings

__all__ = ["router"]

router = APIRouter(tags=["health"])


def _checks(request: Request, settings: WebSettings) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        with settings.library.connect() as conn:
            conn.execute(sa.text("select 1"))
        out["library"] = "ok"
    except (TongbanError, sa.exc.SQLAlchemyError) as exc:
        out["library"] = getattr(exc, "code", "LIBRARY_UNREACHABLE")
    try:
        kid, _ = request.app.state.verifier.signer()
        out["key"] = "ok"
    except TongbanError as exc:
        kid, out["key"] = None, exc.code
    try:
        pin = settings.library.pinned_root() if out["library"] == "ok" else None
        trust = TrustList.load(
            settings.exchange.trust_list, root_public_key=from_b64url(pin) if pin else None
        )
        entry = trust.entry(kid) if kid else None
        now = _dt.datetime.now(_dt.UTC)
        if entry is None or entry.node != settings.node:
            out["trust_list"] = "KEY_UNKNOWN"
        elif entry.revoked(now):
            out["trust_list"] = "KEY_REVOKED"
        elif not entry.valid_at(now):
            out["trust_list"] = "KEY_EXPIRED"
        else:
            out["trust_list"] = "ok"
    except TongbanError as exc:
        out["trust_list"] = exc.code
    return out


@router.get("/readyz", summary="就绪检查 readiness: library, key, trust list")
def readyz(request: Request, settings: Annotated[WebSettings, Depends(get_settings)]) -> Any:
    checks = _checks(request, settings)
    ready = all(v == "ok" for v in checks.values())
    body: dict[str, Any] = {
        "status": "ready" if ready else "not ready",
        "node": settings.node,
        "checks": checks,
    }
    if not ready:
        body |= {
            "code": "NOT_READY",
            "message": {"zh": "服务尚未就绪", "en": "the service is not ready"},
            "where": ",".join(k for k, v in checks.items() if v != "ok"),
        }
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus 指标 metrics", response_class=Response)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
