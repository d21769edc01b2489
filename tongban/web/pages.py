"""Server-rendered pages: Jinja2 templates, Chinese first with an English switch, vendored static."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

__all__ = ["LANG_COOKIE", "STATIC", "TEMPLATES", "lang_of", "register_templates", "render"]

HERE = Path(__file__).parent
STATIC = HERE / "static"
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
LANG_COOKIE = "tongban_lang"


def register_templates(directory: Path) -> None:
    """Let an area's own templates folder be found too (its names must not clash)."""
    loader = TEMPLATES.env.loader
    searchpath = getattr(loader, "searchpath", None)
    if searchpath is not None and str(directory) not in searchpath:
        searchpath.append(str(directory))


def lang_of(request: Request) -> str:
    """``zh`` unless the person chose English (``?lang=en`` sets a cookie)."""
    chosen = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE) or "zh"
    return "en" if chosen == "en" else "zh"


def render(request: Request, name: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    """A page in the person's language; ``t(zh, en)`` picks the text in templates."""
    from tongban.web.auth import csrf_token

    lang = lang_of(request)
    settings = getattr(request.app.state, "settings", None)
    principal = getattr(request.state, "principal", None)
    try:
        csrf = csrf_token(settings, request) if settings is not None else ""
    except Exception:  # a bad cookie: the page still renders, forms will be refused
        csrf = ""

    def t(zh: str, en: str) -> str:
        return en if lang == "en" else zh

    resp = TEMPLATES.TemplateResponse(
        request,
        name,
        {
            "t": t,
            "lang": lang,
            "csrf": csrf,
            "principal": principal,
            "node": settings.node if settings is not None else "",
            "nav": getattr(request.app.state, "nav", []),
            "base": request.scope.get("root_path", ""),
            **ctx,
        },
        status_code=status_code,
    )
    if request.query_params.get("lang") in ("zh", "en"):
        resp.set_cookie(LANG_COOKIE, lang, samesite="lax", max_age=365 * 86400, path="/")
    resp.headers.setdefault("Cache-Control", "no-store")
    return resp
