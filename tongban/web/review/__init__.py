"""The review page: operators see what failed, why and where, repair it, and watch it arrive.

- ``GET /review`` — the overview: open failures by node, dataset and code, failures and loads per day,
  each edge's lag and last success; charts (vendored ECharts) each with its numbers as a table;
- ``GET /review/failures`` — the list: filters, sort, keyset pages, actions on the selected rows or on
  everything the filter selects;
- ``GET /review/failures/{NODE:ID}`` — one failure, masked: its codes with the field each concerns,
  where it came from, its history; the edit form (resubmit) and the actions;
- ``POST …/reveal`` — the same unmasked, for operators allowed to (``review:reveal``), audited;
- ``POST …/act`` and ``POST /review/act`` — retry, resubmit, discard, resolve (CSRF on every form).

Operators log in on the app's login page (kind ``operator``, accounts from ``tongban operators``);
a disabled operator's session ends at its next request. Every action goes through
:mod:`tongban.core.review` and is appended to the node's audit log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter

from tongban.core.review import operators
from tongban.web import auth
from tongban.web.auth import Principal
from tongban.web.pages import register_templates
from tongban.web.review import forms, views
from tongban.web.settings import WebSettings

__all__ = ["router", "setup"]

router = APIRouter()
router.include_router(views.router)
router.include_router(forms.router)


def _login(settings: WebSettings, username: str, secret: str) -> Principal | None:
    op = operators.authenticate(settings.library, username, secret)
    if op is None:
        return None
    return Principal(
        kind="operator", id=op.username, name=op.name, scopes=op.scopes, attrs={"accounts": "review"}
    )


def _still_valid(settings: WebSettings, principal: Principal) -> bool:
    """An operator account of this area must still exist and be enabled (other logins of kind
    ``operator``, e.g. Airflow's, are not this area's to check)."""
    if principal.attrs.get("accounts") != "review":
        return True
    op = operators.get(settings.library, principal.id)
    return op is not None and not op.disabled


def setup(app: Any, settings: WebSettings) -> None:
    """Operators' login, the navigation link and the area's templates."""
    if "operator" not in auth.login_kinds():  # (a deployment may log operators in another way)
        auth.register_login("operator", _login, ("运维人员", "Operator"))
    auth.register_session_check("operator", _still_valid)
    register_templates(Path(__file__).parent / "templates")
    nav = app.state.nav
    if not any(item.get("path") == "/review" for item in nav):
        nav.append({"path": "/review", "zh": "失败传输复核", "en": "Failed transfers", "kind": "operator"})
