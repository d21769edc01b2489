"""Every refusal as JSON with a stable code from :mod:`schemas.errors` (or a page, for a browser).

``{"code": "...", "message": {"zh": "...", "en": "..."}, "where": "..."}`` — never a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas.errors import CATALOGUE, TongbanError, lookup

__all__ = ["ApiError", "ErrorBody", "error_response", "install"]

log = logging.getLogger("tongban.web")

#: The HTTP status a code answers with when the raiser does not say.
STATUS = {
    "AUTH_REQUIRED": 401,
    "AUTH_INVALID": 401,
    "AUTH_THROTTLED": 429,
    "SESSION_EXPIRED": 401,
    "CSRF_INVALID": 403,
    "SCOPE_DENIED": 403,
    "REQUEST_INVALID": 422,
    "REQUEST_TOO_LARGE": 413,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "INTERNAL": 500,
}


class ApiError(Exception):
    """A refusal with a catalogue code; the messages default to the catalogue's meaning."""

    def __init__(
        self,
        code: str,
        status: int | None = None,
        where: str | None = None,
        *,
        zh: str | None = None,
        en: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        entry = lookup(code)
        self.code = code if code in CATALOGUE else "INTERNAL"
        self.status = status or STATUS.get(self.code, 400)
        self.where = where
        self.zh = zh or entry.zh
        self.en = en or entry.en
        self.headers = headers or {}
        super().__init__(f"{self.code}: {self.en}")

    @classmethod
    def of(cls, exc: TongbanError, status: int = 400) -> ApiError:
        """A core refusal, as an answer."""
        return cls(exc.code, status, exc.where or None, zh=exc.message_zh, en=exc.message_en)

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": {"zh": self.zh, "en": self.en}, "where": self.where}


try:  # a typed model of the error body, for the OpenAPI document
    from pydantic import BaseModel

    class _Message(BaseModel):
        zh: str
        en: str

    class ErrorBody(BaseModel):
        """Every error answer."""

        code: str
        message: _Message
        where: str | None = None
except ImportError:  # pragma: no cover
    ErrorBody = dict  # type: ignore[misc,assignment]


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept and not request.url.path.startswith(("/v1/", "/api/"))


def error_response(request: Request, err: ApiError) -> Response:
    """JSON for programs, a page for a person's browser."""
    if _wants_html(request):
        from tongban.web.pages import render

        resp = render(request, "error.html", status_code=err.status, error=err)
        for k, v in err.headers.items():
            resp.headers[k] = v
        return resp
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or ".".join(str(p) for p in loc)


def install(app: FastAPI) -> None:
    """Route every exception the app can meet to a coded answer."""

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> Response:
        return error_response(request, exc)

    @app.exception_handler(TongbanError)
    async def _core(request: Request, exc: TongbanError) -> Response:
        status = STATUS.get(exc.code) or (503 if exc.retryable else 400)
        return error_response(request, ApiError.of(exc, status))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        where = _where(tuple(errors[0].get("loc", ()))) if errors else None
        msg = str(errors[0].get("msg", ""))[:200] if errors else ""
        err = ApiError(
            "REQUEST_INVALID",
            422,
            where,
            zh=f"请求字段缺失或无效：{where}（{msg}）",
            en=f"a request field is missing or invalid: {where} ({msg})",
        )
        return error_response(request, err)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "REQUEST_TOO_LARGE"}.get(
            exc.status_code, "REQUEST_INVALID"
        )
        return error_response(request, ApiError(code, exc.status_code, request.url.path))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        log.error("internal error on %s: %s", request.url.path, type(exc).__name__)
        return error_response(request, ApiError("INTERNAL", 500, request.url.path))
