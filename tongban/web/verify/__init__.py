"""The verification area (核验): the API for remote offices, the service-window page, health and metrics.

- :mod:`.access` offices as principals (bearer token, login, session re-check), rate limits, audit;
- :mod:`.models` the typed request and answer bodies of the API;
- :mod:`.api` ``/v1/verify/*``, ``/v1/licenses``, ``/v1/records/…/proof``, ``/v1/trust-list``,
  ``/v1/status-list/…``;
- :mod:`.page` the service-window page and the printable slip;
- :mod:`.health` ``/readyz`` and ``/metrics`` (``/healthz`` is the base's).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI

from tongban.web.verify import access, api, health, page

__all__ = ["router", "setup"]

router = APIRouter()
router.include_router(api.router)
router.include_router(page.router)
router.include_router(health.router)


def setup(app: FastAPI, settings: Any) -> None:
    """Register office logins, the verifier, metrics and the audit middleware on ``app``."""
    access.setup(app, settings)
    page.setup(app, settings)
